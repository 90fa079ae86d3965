"""``iport-cds evaluate --population DIR``: one CSV row per patient and policy of a Bulk FHIR
export, the same decision ``evaluate FILE`` gives for each of them, with who the person is
(age band, sex, place, deprivation), their latest HbA1c and current pump / i-Port use."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from facts import extract_record
from policy import Policy, evaluate, load_policy
from population.engine import run_population
from population.uptake import PERSON_COLUMNS
from tests.cli.conftest import TODAY, Run, by_patient, generate_population, one_line_error
from valuesets import ValueSetLibrary

Cli = Callable[..., Run]
PATIENTS = 200


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_population(tmp_path_factory, PATIENTS, seed=7)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_generated_export_looks_like_bulk_fhir(population: Path) -> None:
    names = sorted(p.name for p in population.iterdir())
    assert names == [
        "Condition.ndjson",
        "DeviceRequest.ndjson",
        "MedicationRequest.ndjson",
        "Observation.ndjson",
        "Patient.ndjson",
        "Procedure.ndjson",
    ]
    grouped = by_patient(population)
    assert len(grouped) == PATIENTS
    kinds = Counter(r["resourceType"] for rs in grouped.values() for r in rs)
    assert kinds["Patient"] == PATIENTS
    assert kinds["Observation"] > PATIENTS / 2
    assert kinds["MedicationRequest"] > PATIENTS / 10
    assert kinds["Procedure"] > 0  # pumps in use
    patients = [r for rs in grouped.values() for r in rs if r["resourceType"] == "Patient"]
    practices = [p for p in patients if p.get("generalPractitioner")]
    assert 0.85 * PATIENTS < len(practices) < PATIENTS
    assert all(p["address"][0]["postalCode"] for p in patients)
    # one identifier per person: a population run counts Patients sharing one as one person
    assert len({p["identifier"][0]["value"] for p in patients}) == PATIENTS


def test_one_row_per_patient_matching_the_per_patient_decision(
    cli: Cli,
    population: Path,
    tmp_path: Path,
    vsl: ValueSetLibrary,
    iport_policy: Policy,
) -> None:
    out = tmp_path / "out.csv"
    summary_file = tmp_path / "summary.json"
    run = cli(
        "evaluate", "--population", str(population), "--out", str(out), "--workers", "2",
        "--chunk-size", "16", "--summary-json", str(summary_file), "--today", TODAY.isoformat(),
        "--policy", "iport-advance",
    )  # fmt: skip
    assert run.code == 0, run.err
    rows = read_csv(out.read_text())
    assert len(rows) == PATIENTS
    assert list(rows[0]) == [*PERSON_COLUMNS, *iport_policy.criterion_ids]
    assert [r["patient_ref"] for r in rows] == sorted(r["patient_ref"] for r in rows)
    grouped = by_patient(population)
    assert {r["patient_ref"] for r in rows} == set(grouped)
    assert {r["policy_id"] for r in rows} == {"hny-iport-advance"}
    assert {r["policy_version"] for r in rows} == {iport_policy.info.version}
    assert {r["evaluation_date"] for r in rows} == {TODAY.isoformat()}
    for row in rows:  # every row is what the pure core decides for that patient alone
        record = extract_record(
            grouped[row["patient_ref"]],
            vsl,
            patient_id=row["patient_ref"],
            criteria_system=iport_policy.info.criteria_system,
        )
        d = evaluate(iport_policy, record, TODAY)
        assert row["outcome"] == d.outcome.value
        assert row["pathway"] == (d.pathway or "")
        for c in iport_policy.criterion_ids:
            assert row[c] == d.criteria[c].result.value
    outcomes = Counter(r["outcome"] for r in rows)
    assert len(outcomes) == 3  # the generated mix reaches every outcome
    summary = json.loads(summary_file.read_text())
    assert summary["patients"] == PATIENTS
    assert summary["outcomes"] == {"hny-iport-advance": dict(outcomes)}
    assert (tmp_path / "out.html").is_file()  # the report, beside the CSV
    assert summary["workers"] == 2
    assert summary["peak_rss_worker_mb"] > 0
    assert "evaluating (2 workers): 200 / 200 patients (100%)" in run.err
    assert f"{PATIENTS} patients" in run.err
    assert "hny-iport-advance, by outcome:" in run.err
    for pid in grouped:  # progress and summary never name a patient
        assert pid not in run.err


def test_rows_agree_with_evaluate_file(cli: Cli, population: Path, tmp_path: Path) -> None:
    """A sample of patients, each written to its own NDJSON file and run through ``evaluate``."""
    run = cli(
        "evaluate", "--population", str(population), "--workers", "1", "--today",
        TODAY.isoformat(), "--policy", "iport-advance",
    )  # fmt: skip
    assert run.code == 0
    rows = {r["patient_ref"]: r for r in read_csv(run.out)}
    assert len(rows) == PATIENTS
    grouped = by_patient(population)
    sample = sorted(grouped)[:: PATIENTS // 20]
    for pid in sample:
        f = tmp_path / "one.ndjson"
        f.write_text("\n".join(json.dumps(r) for r in grouped[pid]))
        single = cli("evaluate", str(f), "--json", "--today", TODAY.isoformat())
        ext = json.loads(single.out)
        assert rows[pid]["outcome"] == ext["outcome"]
        assert rows[pid]["pathway"] == (ext["pathway"] or "")
        assert {c["id"]: c["result"] for c in ext["criteria"]} == {
            k: v for k, v in rows[pid].items() if k not in PERSON_COLUMNS
        }


def test_the_hybrid_closed_loop_policy_over_a_population(
    cli: Cli, population: Path, vsl: ValueSetLibrary
) -> None:
    """The HCL uptake gap offline: the same export read against NICE TA943."""
    hcl = load_policy("nice-hybrid-closed-loop")
    run = cli(
        "evaluate", "--population", str(population), "--policy", "nice-hybrid-closed-loop",
        "--workers", "1", "--today", TODAY.isoformat(),
    )  # fmt: skip
    assert run.code == 0, run.err
    rows = read_csv(run.out)
    assert len(rows) == PATIENTS
    assert list(rows[0]) == [*PERSON_COLUMNS, *hcl.criterion_ids]
    assert {r["policy_id"] for r in rows} == {hcl.info.id}
    grouped = by_patient(population)
    for row in rows[:: PATIENTS // 20]:
        record = extract_record(
            grouped[row["patient_ref"]],
            vsl,
            patient_id=row["patient_ref"],
            criteria_system=hcl.info.criteria_system,
        )
        d = evaluate(hcl, record, TODAY)
        assert (row["outcome"], row["pathway"]) == (d.outcome.value, d.pathway or "")


def test_medication_references_bad_lines_and_unassigned_resources(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    lines = {
        "Patient.ndjson": [
            {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"},
            {"resourceType": "Patient", "id": "p2", "birthDate": "1980-01-01"},
        ],
        "Condition.ndjson": [
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            },
        ],
        "MedicationRequest.ndjson": [
            {
                "resourceType": "MedicationRequest",
                "id": "m1",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "medicationReference": {"reference": "Medication/humulin"},
                "dosageInstruction": [{"text": "twice daily"}],
            }
        ],
        "Medication.ndjson": [
            {
                "resourceType": "Medication",
                "id": "humulin",
                "code": {"text": "Humulin M3 KwikPen"},
            }
        ],
        "Practitioner.ndjson": [{"resourceType": "Practitioner", "id": "dr"}],
    }
    for name, resources in lines.items():
        (export / name).write_text("".join(json.dumps(r) + "\n" for r in resources))
    with (export / "Condition.ndjson").open("a") as f:
        f.write("{truncated\n")
    out, err = io.StringIO(), io.StringIO()
    summary = run_population(export, out, err, today=TODAY, workers=1, policies=["iport-advance"])
    rows = {r["patient_ref"]: r for r in read_csv(out.getvalue())}
    assert set(rows) == {"p1", "p2"}
    assert rows["p1"]["insulin-more-than-once-daily"] == "met"  # via the referenced Medication
    assert rows["p2"]["outcome"] == "does-not-meet-criteria"
    assert summary.skipped_lines == 1
    assert summary.skipped_examples == ["Condition.ndjson:2"]
    assert summary.unassigned_resources == 1
    assert "skipped 1 line(s)" in err.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "not a folder of NDJSON files"),
        (lambda d: d, "no *.ndjson files"),
    ],
)
def test_population_usage_errors(
    cli: Cli, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    run = cli("evaluate", "--population", str(make(tmp_path)))
    assert run.code == 2
    assert message in one_line_error(run)


def test_unwritable_output(cli: Cli, population: Path, tmp_path: Path) -> None:
    run = cli("evaluate", "--population", str(population), "--out", str(tmp_path / "no" / "x.csv"))
    assert run.code == 2
    assert "cannot write" in one_line_error(run)


def test_generate_population_usage_errors(cli: Cli, tmp_path: Path) -> None:
    run = cli("demo", "generate-population", "--patients", "0", "--out", str(tmp_path))
    assert run.code == 2
    assert "must be at least 1" in one_line_error(run)
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = cli("demo", "generate-population", "--patients", "3", "--out", str(blocker))
    assert run.code == 2
    assert "cannot write" in one_line_error(run)


def test_a_population_run_does_not_use_evidence_about_another_person(tmp_path: Path) -> None:
    """The same attribution as a hook call: p1's HbA1c is their mother's (its focus) and p1's
    needle phobia is their husband's; p2's record, otherwise the same, meets."""
    from tests.builders import type1_meets

    export = tmp_path / "export"
    export.mkdir()
    theirs, own = type1_meets(pid="p1"), type1_meets(pid="p2")
    for r in theirs:
        if r["resourceType"] == "Observation":
            r["focus"] = [{"reference": "RelatedPerson/p1-mother"}]
        if r.get("code", {}).get("text") == "Needle phobia":
            r["code"]["text"] = "Needle phobia - husband"
    by_type: dict[str, list[dict[str, object]]] = {}
    for r in [*theirs, *own]:
        by_type.setdefault(str(r["resourceType"]), []).append(r)
    for rtype, resources in by_type.items():
        (export / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources))
    out, err = io.StringIO(), io.StringIO()
    run_population(export, out, err, today=TODAY, workers=1, policies=["iport-advance"])
    rows = {r["patient_ref"]: r for r in read_csv(out.getvalue())}
    assert rows["p2"]["outcome"] == "meets-criteria"
    assert rows["p1"]["outcome"] != "meets-criteria"
    assert rows["p1"]["hba1c-69-or-above-on-mdi"] == "unknown"
    assert rows["p1"]["needle-phobia"] == "unknown"
