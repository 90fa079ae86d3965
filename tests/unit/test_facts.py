"""Facts from FHIR: which records count, and how real-world mess is tolerated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from facts import PatientRecord, order_in, parse_fhir_date
from tests.builders import ASPART, GLARGINE_VTM, PID, hba1c, insulin, iport_device_request

IPORT = "iport-device"

Record = Callable[..., PatientRecord]


def test_hba1c_percent_is_converted_to_ifcc(record: Record) -> None:
    (h,) = record(hba1c(9.0, "%", code=("http://loinc.org", "4548-4", "HbA1c"))).hba1c
    assert h.mmol_mol == pytest.approx(74.9, abs=0.05)
    assert h.original == "9 %"


def test_hba1c_unit_implied_by_code_when_the_quantity_has_none(record: Record) -> None:
    o = hba1c(8.0, code=("http://loinc.org", "4548-4", "HbA1c"))
    o["valueQuantity"] = {"value": 8.0}
    (h,) = record(o).hba1c
    assert h.mmol_mol == pytest.approx(63.9, abs=0.05)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"effectiveDateTime": "2026-03-04T09:30:00Z"}, date(2026, 3, 4)),
        ({"effectiveDateTime": "2026-03-04T23:30:00-05:00"}, date(2026, 3, 5)),  # London date
        ({"effectivePeriod": {"start": "2026-03-01", "end": "2026-03-02"}}, date(2026, 3, 2)),
        ({"issued": "2026-03-05T10:00:00+00:00"}, date(2026, 3, 5)),
    ],
)
def test_hba1c_dated_by_effective_or_issued(
    record: Record, dates: dict[str, Any], expected: date
) -> None:
    o = hba1c(70)
    del o["effectiveDateTime"]
    o.update(dates)
    assert record(o).hba1c[0].date == expected


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"status": "preliminary"}, None),
        ({"status": "cancelled"}, None),
        ({"effectiveDateTime": None}, "no date"),
        ({"valueQuantity": {"value": 80, "unit": "mg/dL", "code": "mg/dL"}}, "unit"),
        ({"valueQuantity": {"value": 130, "comparator": "ad", "code": "mmol/mol"}}, "comparator"),
        ({"valueQuantity": None, "valueString": "haemolysed"}, "no numeric value"),
    ],
)
def test_hba1c_results_that_are_not_used(
    record: Record, change: dict[str, Any], warning: str | None
) -> None:
    o = hba1c(80)
    for k, v in change.items():
        if v is None:
            o.pop(k, None)
        else:
            o[k] = v
    r = record(o)
    assert r.hba1c == ()
    if warning:
        assert warning in r.warnings[0]
    else:
        assert r.warnings == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"value": 130, "comparator": ">", "code": "mmol/mol"}, (">", 130.0, ">130 mmol/mol")),
        ({"value": 20, "comparator": "<=", "code": "mmol/mol"}, ("<=", 20.0, "<=20 mmol/mol")),
        ({"value": 8.5, "comparator": ">=", "code": "%"}, (">=", 69.3, ">=8.5 %")),  # 69.399…
        ({"value": 8.5, "comparator": "<", "code": "%"}, ("<", 69.4, "<8.5 %")),
        ({"value": 8.5, "code": "%"}, ("", 69.4, "8.5 %")),
    ],
)
def test_a_censored_hba1c_keeps_its_bound_rounded_to_what_it_promises(
    record: Record, value: dict[str, Any], expected: tuple[str, float, str]
) -> None:
    o = hba1c(80)
    o["valueQuantity"] = value
    (h,) = record(o).hba1c
    assert (h.bound, h.mmol_mol, h.original) == expected


@pytest.mark.parametrize(
    ("status", "counts"), [("active", True), ("on-hold", False), ("stopped", False)]
)
def test_only_active_insulin_counts(record: Record, status: str, counts: bool) -> None:
    assert bool(record(insulin(text="BD", status=status)).insulin) is counts


def test_insulin_by_medication_reference_to_a_contained_or_listed_medication(
    record: Record,
) -> None:
    contained = insulin(text="BD")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [
        {
            "resourceType": "Medication",
            "id": "m",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": ASPART[1]}]},
        }
    ]
    contained["medicationReference"] = {"reference": "#m"}
    listed = insulin(text="at night")
    del listed["medicationCodeableConcept"]
    listed["medicationReference"] = {"reference": "Medication/glargine"}
    med = {
        "resourceType": "Medication",
        "id": "glargine",
        "code": {"coding": [{"system": GLARGINE_VTM[0], "code": GLARGINE_VTM[1]}]},
    }
    r = record(contained, listed, med)
    assert sorted(o.action for o in r.insulin) == ["basal", "bolus"]


def test_insulin_by_brand_name_in_text(record: Record) -> None:
    m = insulin(text="at night")
    m["medicationCodeableConcept"] = {"text": "Tresiba FlexTouch 100units/ml"}
    (o,) = record(m).insulin
    assert o.matched_by == "term"
    assert o.injections_per_day == 1


def test_iport_orders_recognised_from_draft_resources(vsl: Any) -> None:
    assert order_in(iport_device_request(), vsl, IPORT) is not None
    assert order_in(iport_device_request(text="Insulin pen needles 4mm"), vsl, IPORT) is None
    draft_without_code = {"resourceType": "MedicationRequest", "id": "d", "status": "draft"}
    assert order_in(draft_without_code, vsl, IPORT) is None
    assert order_in({"resourceType": "DeviceRequest", "codeCodeableConcept": 7}, vsl, IPORT) is None


def test_active_iport_order_is_recorded(record: Record) -> None:
    r = record(iport_device_request(status="active"), iport_device_request(status="completed"))
    assert len(r.orders_in(IPORT)) == 1


def test_an_order_is_recorded_once_for_each_value_set_its_code_is_in(record: Record) -> None:
    r = record(iport_device_request(status="active"))
    assert [o.value_set for o in r.orders_in(IPORT)] == [IPORT]
    assert r.orders_in("insulin-pump") == ()


def test_only_the_resource_types_the_rules_read_are_dispatched(record: Record) -> None:
    # A resourceType naming an internal method of the extractor is ignored like any unknown
    # type: dispatch is by a table of FHIR resource types, not by method name.
    for rtype in ("finish_medication_request", "_finish_medication_request", "orders_of", "add"):
        m = insulin(ASPART)
        m["resourceType"] = rtype
        r = record(m)
        assert r.insulin == ()
        assert r.warnings == ()


def test_absolute_subject_reference_is_this_patient(record: Record) -> None:
    o = hba1c(70)
    o["subject"] = {"reference": f"https://ehr.example/fhir/Patient/{PID}"}
    assert record(o).hba1c


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2026", date(2026, 1, 1)), ("2026-02", date(2026, 2, 1)), ("2026-02-03", date(2026, 2, 3))],
)
def test_partial_dates(value: str, expected: date) -> None:
    assert parse_fhir_date(value) == expected
