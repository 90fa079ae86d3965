"""The demo patients: each declares its outcome, and the engine agrees on any day they load."""

from __future__ import annotations

import functools
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask

import demo
import places
from facts import extract_record
from policy import Policy, Tri, evaluate, load_policy
from policy.loading import policy_names
from service import create_app
from service.config import read_settings
from tests.hooks import hook_request
from valuesets import ValueSetLibrary

REPO = Path(__file__).resolve().parents[2]
# Days the demo data is resolved against: today-ish, a leap day, and after the policy's review.
DAYS = [date(2026, 11, 21), date(2028, 2, 29), date(2031, 1, 1)]

# The criteria each scenario exists to show (besides the outcome it declares).
KEY_CRITERIA: dict[str, dict[str, Tri]] = {
    "t1-mdi-needle-phobia": {"hba1c-69-or-above-on-mdi": Tri.MET, "needle-phobia": Tri.MET},
    "t1-hypo-lipohypertrophy": {  # repeated hypoglycaemia: disabling is a clinician's call
        "disabling-hypoglycaemia": Tri.UNKNOWN,
        "lipohypertrophy": Tri.MET,
        "hba1c-69-or-above-on-mdi": Tri.NOT_MET,
    },
    "t1-child-mdi-impractical": {"age-12-or-over": Tri.NOT_MET, "mdi-impractical": Tri.MET},
    "t2-specialist-bd-insulin": {
        "diabetes-specialist-recommendation": Tri.MET,
        "insulin-more-than-once-daily": Tri.MET,
    },
    "t1-no-iport-criterion": {"nice-pump-criteria": Tri.MET, "needle-phobia": Tri.UNKNOWN},
    "t2-no-specialist": {"diabetes-specialist-recommendation": Tri.UNKNOWN},
    "t1-no-recent-hba1c": {"hba1c-69-or-above-on-mdi": Tri.UNKNOWN},
    "t1-low-hba1c-nothing-else": {
        "hba1c-69-or-above-on-mdi": Tri.NOT_MET,
        "disabling-hypoglycaemia": Tri.UNKNOWN,
    },
    "t1-low-hba1c-no-hypos": {"disabling-hypoglycaemia": Tri.NOT_MET},
    "no-diabetes": {"type-1-diabetes": Tri.NOT_MET, "type-2-diabetes": Tri.NOT_MET},
    "us-t1-lipohypertrophy": {"hba1c-69-or-above-on-mdi": Tri.MET, "lipohypertrophy": Tri.MET},
    "us-t1-poor-adherence": {"hba1c-above-69-with-poor-adherence": Tri.MET},
    "us-t2-bid-no-specialist": {"needle-phobia": Tri.MET, "insulin-more-than-once-daily": Tri.MET},
    "us-prediabetes": {"type-2-diabetes": Tri.NOT_MET},
    # on a pump: HbA1c reached on it is not 'on MDI', whatever back-up pens are prescribed
    "t1-on-pump": {"nice-pump-criteria": Tri.UNKNOWN, "already-on-pump": Tri.MET},
    "t1-stale-needle-phobia": {"needle-phobia": Tri.UNKNOWN, "nice-pump-criteria": Tri.MET},
    "t1-t2-conflicting-types": {"type-1-diabetes": Tri.UNKNOWN, "type-2-diabetes": Tri.UNKNOWN},
    # would meet, but is recorded as deceased: never assessed
    "t1-deceased": {"nice-pump-criteria": Tri.MET, "needle-phobia": Tri.MET},
    # the same, with a date of death after today: alive or dead unknown, never assessed
    "t1-death-date-after-today": {"nice-pump-criteria": Tri.MET, "needle-phobia": Tri.MET},
    # the hybrid closed loop cases: the i-Port policy reads their pump criteria as unknown
    "t1-hcl-adult-flash-hba1c-61": {"type-1-diabetes": Tri.MET, "nice-pump-criteria": Tri.UNKNOWN},
    "t1-hcl-pregnant": {"type-1-diabetes": Tri.MET, "nice-pump-criteria": Tri.UNKNOWN},
    "t1-hcl-child-on-omnipod-5": {"age-12-or-over": Tri.NOT_MET, "already-on-pump": Tri.MET},
}

PATIENTS = demo.list_patients()


def test_every_pathway_and_outcome_has_a_demo_patient() -> None:
    iport = [p.expected["iport-advance"] for p in PATIENTS]
    pairs = {(e.outcome, None if e.pathway == demo.NO_PATHWAY else e.pathway) for e in iport}
    for outcome in ("meets-criteria", "insufficient-information", "does-not-meet-criteria"):
        assert any(o == outcome for o, _ in pairs), outcome
    assert ("meets-criteria", "type-1") in pairs
    assert ("meets-criteria", "type-2") in pairs
    assert ("does-not-meet-criteria", None) in pairs
    assert set(KEY_CRITERIA) == {p.name for p in PATIENTS}
    assert any(p.name.startswith("us-") for p in PATIENTS)


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.name)
def test_each_scenario_shows_its_key_criteria(
    patient: demo.DemoPatient, today: date, vsl: ValueSetLibrary, iport_policy: Policy
) -> None:
    bundle = patient.bundle(today)
    record = extract_record(
        demo.bundle_resources(bundle),
        vsl,
        patient_id=patient.patient_id,
        criteria_system=iport_policy.info.criteria_system,
    )
    decision = evaluate(iport_policy, record, today)
    assert record.warnings == ()
    for criterion, expected in KEY_CRITERIA[patient.name].items():
        assert decision.criteria[criterion].result is expected, (criterion, decision.reason)


@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.name)
def test_bundles_are_idempotent_transactions_of_tagged_r4_resources(
    patient: demo.DemoPatient,
) -> None:
    bundle = patient.bundle(DAYS[0])
    Bundle.model_validate(bundle)  # valid FHIR R4 (fhir.resources' R4B models) once resolved
    assert bundle["type"] == "transaction"
    assert "@today" not in str(bundle)
    ids = set()
    for entry in bundle["entry"]:
        r = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        assert r["id"].startswith(patient.patient_id)
        assert len(r["id"]) <= 64
        assert {"system": demo.DEMO_TAG_SYSTEM, "code": demo.DEMO_TAG_CODE}.items() <= (
            r["meta"]["tag"][0].items()
        )
        subject = r.get("subject", {}).get("reference")
        assert subject in (None, f"Patient/{patient.patient_id}")
        ids.add((r["resourceType"], r["id"]))
    assert len(ids) == len(bundle["entry"])


def test_uk_patients_carry_a_valid_nhs_number_and_us_ones_an_mrn() -> None:
    def nhs_number_ok(n: str) -> bool:
        total = sum(int(d) * (10 - i) for i, d in enumerate(n[:9]))
        check = (11 - total % 11) % 11
        return len(n) == 10 and check != 10 and check == int(n[9])

    for p in PATIENTS:
        pat = next(
            r for r in demo.bundle_resources(p.bundle(DAYS[0])) if r["resourceType"] == "Patient"
        )
        ident = pat["identifier"][0]
        if p.name.startswith("us-"):
            assert ident["type"]["coding"][0]["code"] == "MR"
        else:
            assert ident["system"] == "https://fhir.nhs.uk/Id/nhs-number"
            assert ident["value"].startswith("999")  # the NHS test range
            assert nhs_number_ok(ident["value"])


@pytest.mark.parametrize(
    ("token", "today", "expected"),
    [
        ("@today", date(2026, 11, 21), "2026-11-21"),
        ("@today-6w", date(2026, 11, 21), "2026-10-10"),
        ("@today-45d", date(2026, 3, 1), "2026-01-15"),
        ("@today+1d", date(2026, 12, 31), "2027-01-01"),
        ("@today-1m", date(2026, 3, 31), "2026-02-28"),
        ("@today-9y-3m", date(2028, 2, 29), "2018-11-29"),
        ("@today-1y", date(2028, 2, 29), "2027-02-28"),
        ("@today-8mT09:10:00Z", date(2026, 11, 21), "2026-03-21T09:10:00Z"),
        ("@today-2dT10:00:00+01:00", date(2026, 6, 3), "2026-06-01T10:00:00+01:00"),
    ],
)
def test_relative_dates(token: str, today: date, expected: str) -> None:
    assert demo.resolve_date_token(token, today) == expected


def test_only_whole_tokens_are_resolved() -> None:
    doc = {"a": ["@today-1d", "seen @today", "@todayish", "@today-1q"], "b": {"c": "@today"}}
    assert demo.resolve_dates(doc, date(2026, 1, 2)) == {
        "a": ["2026-01-01", "seen @today", "@todayish", "@today-1q"],
        "b": {"c": "2026-01-02"},
    }


def test_lookup_by_name_or_id_and_unknown_names() -> None:
    assert demo.get_patient("no-diabetes") == demo.get_patient("iport-demo-no-diabetes")
    with pytest.raises(demo.DemoError, match="no demo patient"):
        demo.get_patient("nobody")


# -- every policy: what each Bundle declares for it ----------------------------------------------
DECLARED = [(p, name) for p in PATIENTS for name in policy_names() if name in p.expected]


@functools.cache
def _app(today: date) -> Flask:
    """The default deployment (every policy, one patient-view card per patient) on ``today``."""
    return create_app(
        {
            "REQUIRE_AUTH": False,
            "CLOCK": lambda: datetime(today.year, today.month, today.day, 12, tzinfo=UTC),
        }
    )


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize(("patient", "name"), DECLARED, ids=lambda x: getattr(x, "name", x))
def test_each_policy_agrees_with_what_the_bundle_declares(
    patient: demo.DemoPatient, name: str, today: date, vsl: ValueSetLibrary
) -> None:
    """Outcome (and pathway, where declared) from the pure core; whether the policy's
    patient-view card shows (where declared) from the default deployment over HTTP."""
    policy = load_policy(name)
    expected = patient.expected[name]
    resources = demo.bundle_resources(patient.bundle(today))
    record = extract_record(
        resources, vsl, patient_id=patient.patient_id, criteria_system=policy.info.criteria_system
    )
    decision = evaluate(policy, record, today)
    assert decision.outcome.value == expected.outcome, decision.reason
    if expected.pathway is not None:
        wanted = None if expected.pathway == demo.NO_PATHWAY else expected.pathway
        assert decision.pathway == wanted, decision.reason
    if expected.card is not None:
        (service,) = [s.id for s in policy.services if s.hook == "patient-view"]
        body = hook_request("patient-view", resources=resources, patient_id=patient.patient_id)
        cards = _app(today).test_client().post(f"/cds-services/{service}", json=body).json
        assert bool(cards["cards"]) is expected.card


def test_every_demo_patient_declares_the_shipped_policies() -> None:
    for p in PATIENTS:
        assert set(p.expected) >= {"iport-advance", "nice-insulin-pump", "nice-hybrid-closed-loop"}


def test_the_pump_policy_has_demo_patients_for_each_case() -> None:
    pump = {(e.outcome, e.card) for e in (p.expected["nice-insulin-pump"] for p in PATIENTS)}
    assert ("meets-criteria", True) in pump  # a prompt
    assert ("meets-criteria", False) in pump  # criteria met but already on a pump: silent
    assert ("insufficient-information", False) in pump
    assert ("does-not-meet-criteria", False) in pump


# -- the third policy: NICE TA943 hybrid closed loop ----------------------------------------------
HCL = load_policy("nice-hybrid-closed-loop")
HCL_KEY_CRITERIA: dict[str, dict[str, Tri]] = {
    "t1-hcl-adult-flash-hba1c-61": {
        "hba1c-58-or-above": Tri.MET,
        "uses-intermittently-scanned-cgm": Tri.MET,
    },
    "t1-hcl-pregnant": {"pregnant": Tri.MET, "hba1c-58-or-above": Tri.NOT_MET},
    "t1-hcl-child-on-omnipod-5": {"age-18-or-over": Tri.NOT_MET, "already-on-hcl": Tri.MET},
}


def test_the_hcl_policy_has_demo_patients_for_each_case() -> None:
    hcl = {(e.outcome, e.card) for e in (p.expected["nice-hybrid-closed-loop"] for p in PATIENTS)}
    assert ("meets-criteria", True) in hcl  # a prompt
    assert ("meets-criteria", False) in hcl  # criteria met but already using HCL: silent
    assert ("insufficient-information", False) in hcl
    assert ("does-not-meet-criteria", False) in hcl
    assert sum(p.name.startswith("t1-hcl-") for p in PATIENTS) >= 3


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.name)
def test_the_hcl_scenarios_show_their_key_criteria(
    patient: demo.DemoPatient, today: date, vsl: ValueSetLibrary
) -> None:
    resources = demo.bundle_resources(patient.bundle(today))
    record = extract_record(
        resources, vsl, patient_id=patient.patient_id, criteria_system=HCL.info.criteria_system
    )
    decision = evaluate(HCL, record, today)
    for criterion, expected in HCL_KEY_CRITERIA.get(patient.name, {}).items():
        assert decision.criteria[criterion].result is expected, (criterion, decision.reason)


def test_every_demo_practice_has_a_place_in_the_demo_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo configuration (what ``scripts/serve.sh`` and ``iport-cds serve`` start with)
    maps the registered practice of every demo patient to a Humber and North Yorkshire place,
    so the demo dashboard shows places, not "Unknown place" — from any working directory."""
    for name in [k for k in os.environ if k.startswith("IPORT_CDS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IPORT_CDS_CONFIG_FILE", str(REPO / "deploy" / "demo-config.json"))
    monkeypatch.chdir(tmp_path)
    table_file = read_settings()["PLACE_BY_PRACTICE_FILE"]
    assert table_file, "the demo configuration names no practice → place table"
    hny = set(places.PLACE_NAMES) - {places.UNKNOWN}
    table = places.load_practice_places(table_file, hny)
    seen = set()
    for p in demo.list_patients():
        patient = places.patient_resource(demo.bundle_resources(p.bundle(DAYS[0])))
        code = places.practice_code(patient)
        if code is None:  # a US record has no English practice: "unknown place" is right
            assert p.name.startswith("us-"), f"{p.name}: no registered practice (ODS code)"
            continue
        assert code in table, f"{p.name}: practice {code} is not in {table_file}"
        seen.add(table[code])
    assert seen <= hny
    assert len(seen) >= 2
