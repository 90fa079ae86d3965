"""`iport-cds policy check FILE…`: a policy file is checked as the service loads it, and a
fault is one line naming the file and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policy.loading import PARTS_DIR, POLICY_DIR, policy_document, policy_names
from tests.cli.conftest import Run, one_line_error

Cli = Callable[..., Run]


def pump_doc() -> dict[str, Any]:
    doc: dict[str, Any] = policy_document("nice-insulin-pump")
    return doc


def criterion(doc: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(c for c in doc["criteria"] if c["rule"] == rule)


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "local-pump.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_shipped_policies_pass(cli: Cli) -> None:
    files = sorted(str(p) for p in POLICY_DIR.glob("*.json"))
    run = cli("policy", "check", *files)
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == len(files) == len(policy_names())
    assert all(": ok (" in line for line in run.out.splitlines())


def test_a_misspelt_rule_parameter_is_named(cli: Cli, tmp_path: Path) -> None:
    doc = pump_doc()
    params = criterion(doc, "disabling-hypoglycaemia")["params"]
    params["minDay"] = params.pop("minDays")
    run = cli("policy", "check", write(tmp_path, doc))
    assert run.code == 2
    message = one_line_error(run)
    assert "local-pump.json: criteria['disabling-hypoglycaemia'].params" in message
    assert "rule 'disabling-hypoglycaemia' has no parameter 'minDay'" in message
    assert "minDays" in message  # the parameters it does have


def test_a_parameter_of_the_wrong_kind_is_named(cli: Cli, tmp_path: Path) -> None:
    doc = pump_doc()
    criterion(doc, "age-at-least")["params"]["years"] = "twelve"
    message = one_line_error(cli("policy", "check", write(tmp_path, doc)))
    assert "params.years: 'twelve' is not a int" in message


def test_a_value_set_that_is_not_loaded_is_named(cli: Cli, tmp_path: Path) -> None:
    doc = pump_doc()
    criterion(doc, "diagnosis")["params"]["valueSet"] = "type-1-diabetes-local"
    run = cli("policy", "check", write(tmp_path, doc))
    assert run.code == 2
    message = one_line_error(run)
    assert message.endswith(
        "local-pump.json: value sets required by the policy are missing: ['type-1-diabetes-local']"
    )


@pytest.mark.parametrize("field", ["summaries", "sourceLabel", "patientViewSummary"])
def test_a_missing_presentation_field_is_named(cli: Cli, tmp_path: Path, field: str) -> None:
    doc = pump_doc()
    del doc["presentation"][field]
    message = one_line_error(cli("policy", "check", write(tmp_path, doc)))
    assert message.endswith(f"local-pump.json: presentation: missing field '{field}'")


def test_a_field_the_policy_does_not_use_is_not_required(cli: Cli, tmp_path: Path) -> None:
    # No patient-view service: no patient-view wording needed. No rule reads HbA1c: no lookback.
    doc = pump_doc()
    doc["services"] = []
    del doc["presentation"]["patientViewSummary"]
    run = cli("policy", "check", write(tmp_path, doc))
    assert run.code == 0, run.err
    hcl: dict[str, Any] = policy_document("nice-hybrid-closed-loop")
    hcl["criteria"] = [c for c in hcl["criteria"] if not c["rule"].startswith("hba1c")]
    hcl["derived"] = []
    hcl["pathways"] = [p for p in hcl["pathways"] if p["id"] == "pregnancy"]
    hcl["pathways"][0]["expression"] = {"all": ["type-1-diabetes", "pregnant"]}
    hcl["parameters"].pop("hba1cLookbackMonths")
    hcl["assumptions"] = []
    hcl["presentation"].pop("notChecked")  # it names the derived criteria removed above
    run = cli("policy", "check", write(tmp_path, hcl))
    assert run.code == 0, run.err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(service=[]), "policy: unknown field 'service'"),
        (lambda d: d["metadata"].update(reviewDate="2030-01-01"),
         "metadata: unknown field 'reviewDate'"),
        (lambda d: d["criteria"][0].update(param={}), "unknown field 'param'"),
        (lambda d: d["presentation"].update(silenceWhenMett=[]),
         "presentation: unknown field 'silenceWhenMett'"),
        (lambda d: d["presentation"]["topic"].pop("code"),
         "presentation.topic: missing field 'code'"),
        (lambda d: d["presentation"]["notChecked"].update({"needle-phobya": "a clause"}),
         "presentation.notChecked names undefined criterion 'needle-phobya'"),
    ],
)  # fmt: skip
def test_an_unknown_or_missing_key_is_an_error_naming_it(
    cli: Cli, tmp_path: Path, change: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    doc = pump_doc()
    change(doc)
    message = one_line_error(cli("policy", "check", write(tmp_path, doc)))
    assert "local-pump.json: " in message
    assert expected in message


def test_a_part_is_checked_as_policies_include_it(cli: Cli, tmp_path: Path) -> None:
    parts = sorted(str(p) for p in PARTS_DIR.glob("*.json"))
    run = cli("policy", "check", *parts)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        f"{parts[0]}: ok (part nice-ta151-pump-criteria: 6 criteria, 10 parameters)",
        f"{parts[1]}: ok (part technology-in-use: 0 criteria, 6 parameters)",
    ]
    part = json.loads(Path(parts[0]).read_text(encoding="utf-8"))
    part["criteria"][0]["params"]["valueSet"] = "type-1-diabetes-local"
    path = tmp_path / "local-part.json"
    path.write_text(json.dumps(part), encoding="utf-8")
    message = one_line_error(cli("policy", "check", str(path)))
    assert message.endswith(
        "local-part.json: value sets required by the policy are missing: ['type-1-diabetes-local']"
    )
