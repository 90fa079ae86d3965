"""Criteria several policies share are written once, in a part, and included.

The NICE insulin pump criteria (TA151, as the i-Port commissioning position quotes them) are
one part, ``policies/parts/nice-ta151-pump-criteria.json``, included by the i-Port policy and
the NICE pump policy: both read them from the same definitions, and a name defined twice, a
missing part or a quote for a criterion the policy owns is an error naming it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from policy import PolicyError, load_policy, parse_policy
from policy.loading import PARTS_DIR, expand_includes, policy_document, read_part

PART = "nice-ta151-pump-criteria"
TECHNOLOGY_PART = "technology-in-use"  # included by every policy: one reading of technology
SHARED = [
    "type-1-diabetes",
    "age-12-or-over",
    "disabling-hypoglycaemia",
    "hba1c-69-or-above-on-mdi",
    "mdi-impractical",
]


def raw(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (PARTS_DIR.parent / f"{name}.json").read_text(encoding="utf-8")
    )
    return doc


def part_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((PARTS_DIR / f"{PART}.json").read_text(encoding="utf-8"))
    return doc


def test_both_pump_policies_include_the_nice_part_and_define_none_of_it_themselves() -> None:
    part = part_doc()
    part_ids = {c["id"] for c in [*part["criteria"], *part["derived"]]}
    assert part_ids == {*SHARED, "nice-pump-criteria"}
    for name in ("iport-advance", "nice-insulin-pump"):
        doc = raw(name)
        assert doc["include"] == [PART, TECHNOLOGY_PART]
        own = {c["id"] for c in [*doc["criteria"], *doc.get("derived", [])]}
        assert not own & part_ids, name
        assert not set(doc["parameters"]) & set(part["parameters"]), name


def test_the_two_policies_hold_the_same_shared_criteria_and_parameters() -> None:
    iport, pump = load_policy("iport-advance"), load_policy("nice-insulin-pump")
    specs = [{c.id: c for c in p.criteria} for p in (iport, pump)]
    for cid in SHARED:
        a, b = specs[0][cid], specs[1][cid]
        assert (a.title, a.rule, dict(a.params), a.confirmable) == (
            b.title,
            b.rule,
            dict(b.params),
            b.confirmable,
        ), cid
    derived = [{d.id: d for d in p.derived}["nice-pump-criteria"] for p in (iport, pump)]
    assert derived[0] == derived[1]
    assert iport.hba1c_lookback_months == pump.hba1c_lookback_months
    assert iport.hba1c_plausible_mmol_mol == pump.hba1c_plausible_mmol_mol
    part_assumptions = [a for a in pump.assumptions if a in iport.assumptions]
    assert len(part_assumptions) >= len(part_doc()["assumptions"])


def test_a_change_to_the_part_reaches_every_policy_that_includes_it(tmp_path: Path) -> None:
    part = part_doc()
    part["parameters"]["niceHba1cThreshold"] = 75
    (tmp_path / "local-nice.json").write_text(json.dumps(part), encoding="utf-8")
    for name in ("iport-advance", "nice-insulin-pump"):
        doc = raw(name)
        doc["include"] = ["local-nice.json", TECHNOLOGY_PART]
        policy = parse_policy(doc, base=tmp_path)
        spec = {c.id: c for c in policy.criteria}["hba1c-69-or-above-on-mdi"]
        assert spec.params["threshold"] == 75, name
        assert any("75 mmol/mol or above" in a for a in policy.assumptions), name


def test_the_part_quotes_the_nice_criteria_and_the_i_port_policy_adds_its_own_words() -> None:
    iport, pump = load_policy("iport-advance"), load_policy("nice-insulin-pump")
    child = "Children younger than 12 years with Type 1 Diabetes for whom MDI therapy"
    pump_quotes = {c.id: c.policy_text for c in pump.criteria}["mdi-impractical"]
    iport_quotes = {c.id: c.policy_text for c in iport.criteria}["mdi-impractical"]
    assert len(pump_quotes) == 1
    assert pump_quotes[0].startswith(child)
    assert iport_quotes[0] == pump_quotes[0]
    assert iport_quotes[1].startswith("multiple daily injections are impractical/inappropriate")
    # the not-checked clause of the shared criterion comes from the part, for both
    for p in (iport, pump):
        assert (
            p.info.presentation["notChecked"]["hba1c-69-or-above-on-mdi"]
            == (part_doc()["notChecked"]["hba1c-69-or-above-on-mdi"])
        )


def redefine_criterion(doc: dict[str, Any]) -> None:
    doc["criteria"].append(copy.deepcopy(part_doc()["criteria"][0]))


def redefine_parameter(doc: dict[str, Any]) -> None:
    doc["parameters"]["niceHba1cThreshold"] = 70


def redefine_not_checked(doc: dict[str, Any]) -> None:
    doc["presentation"].setdefault("notChecked", {})["hba1c-69-or-above-on-mdi"] = "x"


def redefine_not_met_title(doc: dict[str, Any]) -> None:
    doc["presentation"].setdefault("notMetTitles", {})["age-12-or-over"] = "Aged under 12"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (redefine_criterion, "criterion 'type-1-diabetes' is defined in part "
         "'nice-ta151-pump-criteria' and in this policy: define it once"),
        (redefine_parameter, "parameter 'niceHba1cThreshold' is defined in part "
         "'nice-ta151-pump-criteria' and in this policy"),
        (redefine_not_checked, "presentation.notChecked: 'hba1c-69-or-above-on-mdi' is given in "
         "part 'nice-ta151-pump-criteria' and in this policy"),
        (redefine_not_met_title, "presentation.notMetTitles: 'age-12-or-over' is given in "
         "part 'nice-ta151-pump-criteria' and in this policy"),
        (lambda d: d.update(include=["nice-ta15-pump-criteria"]),
         "include: no part 'nice-ta15-pump-criteria' (parts: nice-ta151-pump-criteria, "
         "technology-in-use)"),
        (lambda d: d.update(quotes={"needle-phobia": "x"}),
         "quotes: 'needle-phobia' is not an included criterion"),
        (lambda d: d.update(include="nice-ta151-pump-criteria"),
         "include: must be a list of part names"),
    ],
)  # fmt: skip
def test_a_name_defined_twice_or_a_missing_part_is_an_error_naming_it(
    change: Any, expected: str
) -> None:
    doc = raw("iport-advance")
    change(doc)
    with pytest.raises(PolicyError) as raised:
        parse_policy(doc)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["criteria"][2]["params"].update(minDay=2),
         "part 'bad': criteria['disabling-hypoglycaemia'].params: rule 'disabling-hypoglycaemia' "
         "has no parameter 'minDay'"),
        (lambda p: p["criteria"][1]["params"].update(years="$childAge"),
         "part 'bad': criteria['age-12-or-over'].params.years: $childAge is not a parameter of "
         "this part"),
        (lambda p: p.update(pathways=[]), "part 'bad': part file: unknown field 'pathways'"),
        (lambda p: p["part"].pop("source"), "part 'bad': part.source: must be a non-empty string"),
        (lambda p: p["notMetTitles"].update(lipohypertrophy="x"),
         "part 'bad': notMetTitles names 'lipohypertrophy', which is not a criterion of this part"),
        (lambda p: p["notChecked"].update(lipohypertrophy="x"),
         "part 'bad': notChecked names 'lipohypertrophy', which is not a criterion of this part"),
        (lambda p: p["assumptions"].append("every {nope} months"),
         "part 'bad': assumptions: 'every {nope} months'… names no parameter 'nope'"),
    ],
)  # fmt: skip
def test_a_part_is_checked_on_its_own(tmp_path: Path, change: Any, expected: str) -> None:
    part = part_doc()
    change(part)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(part), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        read_part(path)
    assert str(raised.value).startswith(expected)


def test_a_document_read_for_the_service_has_its_parts_written_in() -> None:
    doc = policy_document("nice-insulin-pump")
    assert "include" not in doc
    assert "quotes" not in doc
    assert [c["id"] for c in doc["criteria"]][: len(SHARED)] == SHARED
    assert expand_includes(doc) == doc  # nothing left to include
