"""A criterion the record holds nothing for (``policy.criteria.rule``'s ``nothing``): the rule's
result then follows from the criterion alone and the policy's HbA1c lookback, so it is made
once and shared by every record. Each such rule, run as written on records that hold nothing
for it but differ in everything else (age, other records, the day), gives that one result."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from facts import PatientRecord
from policy.criteria import NOTHING, RULES, Context, CriterionSpec
from policy.decide import load_core, read_record
from policy.loading import Policy
from tests.builders import (
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    LIPO,
    NON_ADHERENCE,
    PID,
    REFERRAL_DIABETOLOGIST,
    SNOMED,
    T1DM,
    T2DM,
    condition,
    hba1c,
    insulin,
    observation_finding,
    patient,
)
from tests.technology_builders import DEXCOM_G7, HCL_CODE, LIBRE_2, PUMP_CODE, device

CORE = load_core(["iport-advance", "nice-insulin-pump", "nice-hybrid-closed-loop"])
DAYS = (date(2026, 11, 21), date(2024, 2, 29))
OTHER = (SNOMED, "38341003", "Hypertensive disorder")


def _records() -> list[PatientRecord]:
    """Records that differ in age, and records each holding one thing some rule reads (so a
    ``nothing`` that overlooked it would share a result the record does not have)."""
    born = patient("1990-05-17")
    sets = [
        [born],
        [patient("2015-01-02")],  # a child
        [patient(None)],  # no date of birth
        [patient("1958"), condition(OTHER), observation_finding(text="Blood pressure")],
        [{**patient("1970-03-04"), "deceasedBoolean": True}],
        [born, condition(T1DM)],
        [born, condition(T2DM)],
        [born, insulin(), hba1c(80)],
        [born, insulin(status="stopped")],
        [born, hba1c(80)],
        [born, device(type_code=PUMP_CODE)],
        [born, device(type_code=HCL_CODE)],
        [born, device(type_code=DEXCOM_G7)],
        [born, device(type_code=LIBRE_2)],
        [born, observation_finding(REFERRAL_DIABETOLOGIST)],
        [born, condition(text="Needle phobia", onset="2026-10-01")],
        [born, condition(LIPO, onset="2026-10-01")],
        [born, condition(NON_ADHERENCE, onset="2026-10-01")],
        [born, condition(IMPAIRED_AWARENESS, onset="2026-10-01")],
        [born, condition(HYPO_EVENT, onset="2026-10-01")],
        [born, condition(text="Pregnant", onset="2026-10-01")],
        [born, condition(text="Planning pregnancy", onset="2026-10-01")],
    ]
    return [read_record(CORE, resources, PID) for resources in sets]


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
