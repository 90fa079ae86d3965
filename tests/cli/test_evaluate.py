"""``iport-cds evaluate FILE``: offline, one patient, a readable table or the card extension."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import demo
from cds_cards import extension
from policy import Policy, evaluate
from policy.loading import policy_names
from tests.builders import PID, demo_record, type1_meets
from tests.cli.conftest import TODAY, Run, one_line_error
from valuesets import ValueSetLibrary

Cli = Callable[..., Run]
NEEDLE = demo.get_patient("t1-mdi-needle-phobia")


def test_table_for_a_demo_bundle(cli: Cli) -> None:
    run = cli("evaluate", str(NEEDLE.path), "--today", TODAY.isoformat())
    assert run.code == 0, run.err
    assert "Outcome    MEETS CRITERIA (type 1 diabetes pathway)" in run.out
    assert f"Patient/{NEEDLE.patient_id}" in run.out
    assert "Evaluated  2026-11-21 (Europe/London)" in run.out
    for line in ("Needle phobia", "HbA1c 78 mmol/mol", "Not on the deciding pathway:"):
        assert line in run.out
    assert "Assumed in reading the policy:" in run.out
    assert run.err == ""


def test_the_hybrid_closed_loop_policy_evaluates_offline(cli: Cli) -> None:
    child = demo.get_patient("t1-hcl-child-on-omnipod-5")
    run = cli(
        "evaluate", "--policy", "nice-hybrid-closed-loop", str(child.path), "--today", "2026-11-21"
    )
    assert run.code == 0, run.err
    assert "TA943" in run.out
    assert "MEETS CRITERIA (child or young person (TA943 1.2) pathway)" in run.out
    assert "Already using a hybrid closed loop" in run.out
    assert "Conditions of use" in run.out  # 1.4-1.5, stated on every decision


def test_json_is_the_card_extension_the_core_computes(
    cli: Cli, vsl: ValueSetLibrary, iport_policy: Policy
) -> None:
    for p in demo.list_patients():
        run = cli("evaluate", str(p.path), "--json", "--today", TODAY.isoformat())
        assert run.code == 0, run.err
        record = demo_record(p, vsl, iport_policy.info.criteria_system, TODAY)
        assert json.loads(run.out) == extension(evaluate(iport_policy, record, TODAY))
        assert json.loads(run.out)["outcome"] == p.expected[policy_names()[0]].outcome


def test_ndjson_and_a_bare_list_of_resources(cli: Cli, tmp_path: Path) -> None:
    resources = demo.bundle_resources(demo.get_patient("t2-specialist-bd-insulin").bundle(TODAY))
    ndjson = tmp_path / "patient.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in resources) + "\n\n")
    as_list = tmp_path / "patient-list.json"
    as_list.write_text(json.dumps(resources))
    unnamed = tmp_path / "export.txt"  # NDJSON under another name is recognised too
    unnamed.write_text(ndjson.read_text())
    for f in (ndjson, as_list, unnamed):
        run = cli("evaluate", str(f), "--json", "--today", TODAY.isoformat())
        assert run.code == 0, run.err
        assert json.loads(run.out)["outcome"] == "meets-criteria"
        assert json.loads(run.out)["pathway"] == "type-2"


def test_a_single_resource_names_no_patient(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "condition.json"
    f.write_text(json.dumps({"resourceType": "Condition", "code": {"text": "Asthma"}}))
    run = cli("evaluate", str(f), "--today", TODAY.isoformat())
    assert run.code == 0
    assert "(not named in the file)" in run.out
    assert "DOES NOT MEET CRITERIA" in run.out


def test_choosing_a_patient_in_a_file_with_several(cli: Cli, tmp_path: Path) -> None:
    both = [
        *demo.bundle_resources(demo.get_patient("no-diabetes").bundle(TODAY)),
        *demo.bundle_resources(NEEDLE.bundle(TODAY)),
    ]
    f = tmp_path / "two.json"
    f.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": r} for r in both],
            }
        )
    )
    run = cli("evaluate", str(f), "--today", TODAY.isoformat())
    assert run.code == 2
    assert "holds 2 patients; choose one with --patient ID" in one_line_error(run)
    run = cli(
        "evaluate", str(f), "--patient", NEEDLE.patient_id, "--json", "--today", TODAY.isoformat()
    )
    assert json.loads(run.out)["outcome"] == "meets-criteria"
    run = cli("evaluate", str(f), "--patient", "nobody", "--today", TODAY.isoformat())
    assert run.code == 2
    assert "no patient with id 'nobody'" in one_line_error(run)


def test_relative_dates_follow_today(cli: Cli) -> None:
    """The same demo file on another day: its HbA1c is still 6 weeks old, so still met."""
    run = cli("evaluate", str(NEEDLE.path), "--json", "--today", "2030-07-01")
    assert json.loads(run.out)["outcome"] == "meets-criteria"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{not json",
            "not valid JSON (Expecting property name enclosed in double quotes at line 1",
        ),
        ("", "is empty"),
        ('{"hello": "world"}', "not a FHIR resource or Bundle"),
        ('[{"resourceType": "Patient"}, 3]', "a JSON list must hold only FHIR resources"),
        ('{"resourceType": "Bundle", "entry": {}}', "Bundle.entry is not a list"),
        ('{"resourceType": "Foo"}', "not a patient record: no Patient and no clinical resource"),
        ('{"resourceType": "Bundle", "entry": []}', "not a patient record"),
        ('[{"resourceType": "Medication", "id": "m"}]', "(found Medication)"),
    ],
)
def test_bad_files_are_usage_errors(cli: Cli, tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    run = cli("evaluate", str(f))
    assert run.code == 2
    assert message in one_line_error(run)
    assert run.out == ""


def test_bad_ndjson_line(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "bad.ndjson"
    f.write_text('{"resourceType": "Patient", "id": "a"}\n{oops\n')
    run = cli("evaluate", str(f))
    assert run.code == 2
    assert "line 2 is not valid JSON" in one_line_error(run)
    f.write_text('{"resourceType": "Patient", "id": "a"}\n[1, 2]\n')
    assert "line 2 is not a FHIR resource" in one_line_error(cli("evaluate", str(f)))


def test_not_utf8(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "latin1.json"
    f.write_bytes(b'{"resourceType": "Patient", "name": "\xe9"}')
    assert "cannot read as UTF-8 text" in one_line_error(cli("evaluate", str(f)))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "/no/such/file.json"], "/no/such/file.json: no such file"),
        (["evaluate"], "give either FILE or --population DIR"),
        (["evaluate", "x.json", "--population", "dir"], "give either FILE or --population DIR"),
        (["evaluate", "x.json", "--today", "21/11/2026"], "not a date (YYYY-MM-DD)"),
        (["evaluate", "x.json", "--policy", "no-such-policy"], "choose one of: iport-advance"),
        (["evaluate", "x.json", "--valueset-extra-dir", "/no/such/dir"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors(cli: Cli, argv: list[str], message: str) -> None:
    run = cli(*argv)
    assert run.code == 2
    assert message in one_line_error(run)


def test_a_folder_is_not_a_file(cli: Cli, tmp_path: Path) -> None:
    assert "use --population DIR" in one_line_error(cli("evaluate", str(tmp_path)))


def test_help_and_version(cli: Cli) -> None:
    run = cli("--help")
    assert run.code == 0
    for command in ("serve", "demo", "evaluate", "hook"):
        assert command in run.out
    run = cli("--version")
    assert run.code == 0
    assert run.out.startswith("iport-cds ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x.json", "--out", "o.csv"], "--out cannot be used with FILE"),
        (["x.json", "--workers", "2", "--summary-json", "s"], "--workers, --summary-json cannot"),
        (["--population", "d", "--json"], "--json cannot be used with --population"),
        (["--population", "d", "--patient", "p"], "--patient cannot be used with --population"),
    ],
)
def test_options_of_the_other_mode_are_refused(cli: Cli, argv: list[str], message: str) -> None:
    run = cli("evaluate", *argv)
    assert run.code == 2
    assert message in one_line_error(run)


def test_an_unknown_policy_lists_the_valid_names(cli: Cli) -> None:
    run = cli("evaluate", str(NEEDLE.path), "--policy", "nope")
    assert run.code == 2
    message = one_line_error(run)
    assert "--policy 'nope' is not a policy" in message
    assert ", ".join(policy_names()) in message
    assert "Errno" not in message


def test_a_bundle_file_whose_urn_uuid_names_two_patients_is_not_read_as_the_patients(
    cli: Cli, tmp_path: Path
) -> None:
    """Two Patients under one urn:uuid fullUrl: the needle phobia naming that urn:uuid is not
    shown to be this patient's, so the i-Port criteria are not met from it."""
    urn = "urn:uuid:00000000-0000-4000-8000-000000000008"
    resources = type1_meets()
    other = {**resources[0], "id": "someone-else"}
    phobia = {**resources[-1], "subject": {"reference": urn}}
    entries = [{"fullUrl": f"https://gp.example.nhs.uk/fhir/{r['resourceType']}/{r['id']}",
                "resource": r} for r in resources[:-1]]  # fmt: skip
    entries += [{"fullUrl": urn, "resource": resources[0]}, {"fullUrl": urn, "resource": other}]
    entries += [{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000009", "resource": phobia}]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    run = cli("evaluate", str(path), "--patient", PID, "--json", "--today", TODAY.isoformat())
    assert run.code == 0, run.err
    decision = json.loads(run.out)
    assert decision["outcome"] != "meets-criteria"
    (phobia_result,) = [c for c in decision["criteria"] if c["id"] == "needle-phobia"]
    assert phobia_result["result"] == "unknown"
