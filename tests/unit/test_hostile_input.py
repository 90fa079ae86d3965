"""Property-based: arbitrary JSON anywhere in a request never escapes as a 500 or an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facts import extract_record, order_in
from service import create_app
from tests.builders import PID
from tests.hooks import PREFETCH_KEYS
from valuesets import load_value_sets

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
RESOURCE_TYPES = st.sampled_from(
    [
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Medication",
        "ServiceRequest",
        "DeviceRequest",
        "Procedure",
        "Bundle",
    ]
)
FIELDS = st.sampled_from(
    [
        "id",
        "status",
        "code",
        "subject",
        "clinicalStatus",
        "verificationStatus",
        "effectiveDateTime",
        "effectivePeriod",
        "issued",
        "valueQuantity",
        "valueBoolean",
        "valueCodeableConcept",
        "birthDate",
        "medicationCodeableConcept",
        "medicationReference",
        "dosageInstruction",
        "contained",
        "performer",
        "onsetDateTime",
        "recordedDate",
        "authoredOn",
        "codeCodeableConcept",
        "entry",
        "link",
    ]
)
RESOURCE = st.builds(
    lambda rtype, fields: {"resourceType": rtype, **fields},
    RESOURCE_TYPES,
    st.dictionaries(FIELDS, JSON, max_size=6),
)
VSL = load_value_sets()
APP = create_app({"REQUIRE_AUTH": False})


@settings(max_examples=300, deadline=None)
@given(st.lists(RESOURCE | JSON, max_size=8))
def test_fact_extraction_never_raises(resources: list[Any]) -> None:
    record = extract_record(resources, VSL, patient_id=PID, criteria_system="urn:x")
    assert isinstance(record.warnings, tuple)
    for r in resources:
        order_in(r, VSL, "iport-device")


def _body(context: Any, prefetch: Any, drafts: Any, hook: str) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": "h",
        "context": context
        if not isinstance(context, dict)
        else {
            "patientId": PID,
            "selections": ["DeviceRequest/d"],
            "draftOrders": drafts,
            **context,
        },
        "prefetch": prefetch,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    context=JSON
    | st.dictionaries(st.sampled_from(["patientId", "userId", "selections", "draftOrders"]), JSON),
    prefetch=JSON | st.dictionaries(st.sampled_from(PREFETCH_KEYS), RESOURCE | JSON | st.none()),
    drafts=JSON
    | st.builds(
        lambda e: {"resourceType": "Bundle", "entry": [{"resource": {**r, "id": "d"}} for r in e]},
        st.lists(RESOURCE, max_size=3),
    ),
    hook=st.sampled_from(["order-select", "order-sign", "patient-view"]),
)
def test_the_service_answers_arbitrary_requests_with_a_4xx_or_a_200(
    context: Any, prefetch: Any, drafts: Any, hook: str
) -> None:
    service = f"iport-advance-{hook}"
    resp = APP.test_client().post(
        f"/cds-services/{service}", json=_body(context, prefetch, drafts, hook)
    )
    assert resp.status_code in (200, 400, 412), resp.get_data(as_text=True)
    body = resp.get_json()
    assert isinstance(body, dict)
    assert "cards" in body or body.get("resourceType") == "OperationOutcome"
