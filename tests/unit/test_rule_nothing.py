"""A criterion the record holds nothing for (``policy.criteria.rule``'s ``nothing``): the rule's
result then follows from the criterion alone and the policy's HbA1c lookback, so it is made
once and shared by every record. Each such rule, run as written on records that hold nothing
for it but differ in everything else (age, other records, the day), gives that one result."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date

import pytest

from facts import PatientRecord
from policy import Decision, evaluate
from policy.criteria import NOTHING, RULES, Context, CriterionSpec
from policy.decide import load_core, read_record
from policy.loading import Policy
from tests import builders as b
from tests import technology_builders as tech

CORE = load_core(["iport-advance", "nice-insulin-pump", "nice-hybrid-closed-loop"])
DAYS = (date(2026, 11, 21), date(2024, 2, 29))
OTHER = (b.SNOMED, "38341003", "Hypertensive disorder")


def _records() -> list[PatientRecord]:
    """Records that differ in age, and records each holding one thing some rule reads (so a
    ``nothing`` that overlooked it would share a result the record does not have)."""
    born = b.patient("1990-05-17")
    recent = "2026-10-01"
    sets = [
        [born],
        [b.patient("2015-01-02")],  # a child
        [b.patient(None)],  # no date of birth
        [b.patient("1958"), b.condition(OTHER), b.observation_finding(text="Blood pressure")],
        [{**b.patient("1970-03-04"), "deceasedBoolean": True}],
        [born, b.condition(b.T1DM)],
        [born, b.condition(b.T2DM)],
        [born, b.insulin(), b.hba1c(80)],
        [born, b.insulin(status="stopped")],
        [born, b.hba1c(80)],
        [born, tech.device(type_code=tech.PUMP_CODE)],
        [born, tech.device(type_code=tech.HCL_CODE)],
        [born, tech.device(type_code=tech.DEXCOM_G7)],
        [born, tech.device(type_code=tech.LIBRE_2)],
        [born, b.observation_finding(b.REFERRAL_DIABETOLOGIST)],
        [born, b.condition(text="Needle phobia", onset=recent)],
        [born, b.condition(b.LIPO, onset=recent)],
        [born, b.condition(b.NON_ADHERENCE, onset=recent)],
        [born, b.condition(b.IMPAIRED_AWARENESS, onset=recent)],
        [born, b.condition(b.HYPO_EVENT, onset=recent)],
        [born, b.condition(text="Pregnant", onset=recent)],
        [born, b.condition(text="Planning pregnancy", onset=recent)],
    ]
    return [read_record(CORE, resources, b.PID) for resources in sets]


RECORDS = _records()
IPORT = CORE.policies["hny-iport-advance"]
# The shipped policies' criteria, and one for each rule they do not use.
SPECS = [
    (policy, spec)
    for policy in CORE.policies.values()
    for spec in policy.criteria
    if spec.rule in NOTHING
] + [(IPORT, CriterionSpec("on-pump", "Insulin pump", "recorded", {"valueSet": "insulin-pump"}))]


def test_every_rule_that_shares_its_result_is_exercised() -> None:
    assert {spec.rule for _, spec in SPECS} == set(NOTHING)


@pytest.mark.parametrize(("policy", "spec"), SPECS, ids=[f"{p.info.id}:{s.id}" for p, s in SPECS])
def test_a_criterion_the_record_holds_nothing_for_reads_the_same_for_every_record(
    policy: Policy, spec: CriterionSpec
) -> None:
    nothing, as_written = NOTHING[spec.rule]
    empty = [r for r in RECORDS if nothing(r, spec)]
    assert len(empty) >= 2, "at least two of the records should hold nothing for it"
    results = []
    for record, day in itertools.product(empty, DAYS):
        ctx = Context(
            today=day,
            hba1c_lookback_months=policy.hba1c_lookback_months,
            confirmation_valid_months=policy.confirmation_valid_months,
            hba1c_plausible_mmol_mol=policy.hba1c_plausible_mmol_mol,
        )
        results.append(as_written(record, spec, ctx))
        results.append(RULES[spec.rule](record, spec, ctx))
    assert all(r == results[0] for r in results)
    # Shared by every record: it names nothing of any patient.
    assert not results[0].evidence
    assert not results[0].context


def test_a_decision_does_not_depend_on_whose_record_was_read_before() -> None:
    """What the core keeps across records (shared results, readings of concepts and dates)
    never carries one patient's evidence into another's decision: each record decided after
    the others in one order and in the reverse order gets the same decision, on both days."""

    def decisions(order: list[int]) -> dict[tuple[int, str, date], Decision]:
        return {
            (i, policy.info.id, day): evaluate(policy, replace(RECORDS[i]), day)
            for i in order
            for day in DAYS
            for policy in CORE.policies.values()
        }

    forward = list(range(len(RECORDS)))
    first, then = decisions(forward), decisions(forward[::-1])
    assert first.keys() == then.keys()
    assert all(first[k] == then[k] for k in first)


def test_a_copy_with_other_findings_finds_only_its_own() -> None:
    """``dataclasses.replace`` with other findings gives a record whose lookups are its own:
    the copy does not find the findings it dropped, and the original still finds them."""
    with_t1 = next(r for r in RECORDS if r.findings_in("type-1-diabetes"))
    copy = replace(with_t1, findings=())
    assert copy.findings_in("type-1-diabetes") == ()
    assert with_t1.findings_in("type-1-diabetes")


def test_a_criterions_parameters_are_its_own() -> None:
    """Results are shared under a criterion's key, made from its parameters: changing what the
    criterion was made from changes neither what it reads nor what its key stands for."""
    made_from = {"valueSet": "insulin-pump", "kinds": ["pump"]}
    spec = CriterionSpec("on-pump", "Insulin pump", "recorded", made_from)
    key = spec.key
    made_from["valueSet"] = "needle-phobia"
    made_from["kinds"].append("patch")
    assert spec.params == {"valueSet": "insulin-pump", "kinds": ["pump"]}
    assert spec.key == key == CriterionSpec("on-pump", "Insulin pump", "recorded", spec.params).key
