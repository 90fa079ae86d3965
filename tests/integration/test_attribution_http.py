"""Evidence about another person is not used, over HTTP: the real service (gunicorn) and a real
FHIR server (sekmet), with the EHR's prefetch and with the service fetching for itself.

Each patient meets the i-Port criteria but for one piece of evidence that is someone else's
or not shown to be theirs; the card must not say "meets" and must say what it did not use.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from facts.attribution import NHS_NUMBER
from tests.builders import GLARGINE_VTM, T1DM, condition, hba1c, insulin, patient
from tests.fhir_server import FhirTestServer
from tests.integration.test_service_http import (  # the service fixture: the same real service
    ago,
    ehr_prefetch,
    order_sign,
    put_transaction,
    service,
)
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.integration
__all__ = ["service"]  # a fixture of this module too

NHS = "9434765919"
OTHER_NHS = "9449306613"
HBA1C = "hba1c-69-or-above-on-mdi"


def meets(pid: str, identifiers: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """A type 1 adult who meets the criteria (HbA1c 80, basal-bolus, needle phobia)."""
    p = patient("1985-03-04", pid=pid)
    if identifiers is not None:
        p["identifier"] = identifiers
    return [
        p,
        condition(T1DM, onset=ago(3000), pid=pid),
        hba1c(80, on=ago(30), pid=pid),
        insulin(GLARGINE_VTM, text="once daily at night", pid=pid),
        insulin(text="with meals", pid=pid),
        condition(text="Needle phobia", onset=ago(30), pid=pid),
    ]


def the_hba1c(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in resources if r["resourceType"] == "Observation")


def focus_mother() -> list[dict[str, Any]]:
    pid = "at-focus-mother"
    resources = meets(pid)
    mother = {
        "resourceType": "RelatedPerson",
        "id": f"{pid}-mother",
        "patient": {"reference": f"Patient/{pid}"},
        "relationship": [{"text": "Mother"}],
    }
    the_hba1c(resources)["focus"] = [{"reference": f"RelatedPerson/{pid}-mother"}]
    return [mother, *resources]


def two_patients() -> list[dict[str, Any]]:
    """The HbA1c's subject references this patient and carries another's NHS number."""
    pid = "at-two-patients"
    resources = meets(pid, [{"system": NHS_NUMBER, "value": NHS}])
    the_hba1c(resources)["subject"]["identifier"] = {"system": NHS_NUMBER, "value": OTHER_NHS}
    return resources


def husband() -> list[dict[str, Any]]:
    resources = meets("at-husband")
    resources[-1]["code"]["text"] = "Needle phobia - husband"
    return resources


ABOUT_ANOTHER = {
    "at-focus-mother": (focus_mother, HBA1C, "1 result not used: about another person"),
    "at-two-patients": (two_patients, HBA1C, "1 result not used: names two different patients"),
    "at-husband": (husband, "needle-phobia", "1 record not used: about another person"),
}

# The identifier table: (the Patient's identifiers, the HbA1c subject's identifier, the
# criterion's result from the EHR's prefetch, what the card says was not used)
IDENTIFIERS = {
    "at-nhs-same": ([{"system": NHS_NUMBER, "value": NHS}], NHS, "met", None),
    "at-nhs-spaced": ([{"system": NHS_NUMBER, "value": NHS}], "943 476 5919", "met", None),
    "at-nhs-other": (
        [{"system": NHS_NUMBER, "value": NHS}],
        OTHER_NHS,
        "unknown",
        "1 result not used: about another person",
    ),
    "at-nhs-check-digit": (
        [{"system": NHS_NUMBER, "value": "9434765918"}],
        "9434765918",
        "unknown",
        "1 result not used: not shown to be this patient's",
    ),
    "at-nhs-other-system": (
        [{"system": "https://example.org/hospital-number", "value": NHS}],
        NHS,
        "unknown",
        "1 result not used: not shown to be this patient's",
    ),
    "at-nhs-none": ([], NHS, "unknown", "1 result not used: not shown to be this patient's"),
}


def by_identifier(pid: str) -> dict[str, Any]:
    """The HbA1c of row ``pid``, naming its patient only by NHS number."""
    _, value, _, _ = IDENTIFIERS[pid]
    result = hba1c(80, on=ago(30), pid=pid)
    result["id"] = f"{pid}-hba1c"
    result["subject"] = {"identifier": {"system": NHS_NUMBER, "value": value}}
    return result


def records() -> list[dict[str, Any]]:
    out = [r for make, _, _ in ABOUT_ANOTHER.values() for r in make()]
    for pid, (identifiers, _, _, _) in IDENTIFIERS.items():
        without_hba1c = [r for r in meets(pid, identifiers) if r["resourceType"] != "Observation"]
        out += [*without_hba1c, by_identifier(pid)]
    return out


@pytest.fixture(scope="module")
def loaded_fhir(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.load(put_transaction(records()))
    return fhir_server


def result_of(card: dict[str, Any], criterion: str) -> str:
    ext = card["extension"]["iport-cds.eligibility"]
    return next(c["result"] for c in ext["criteria"] if c["id"] == criterion)  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize("pid", list(ABOUT_ANOTHER))
def test_evidence_about_another_person_is_not_used_and_the_card_says_so(
    service: ServiceProcess, loaded_fhir: FhirTestServer, mode: str, pid: str
) -> None:
    _, criterion, said = ABOUT_ANOTHER[pid]
    card = order_sign(service, loaded_fhir, mode, pid)
    assert card["indicator"] == "warning", card["detail"]
    assert result_of(card, criterion) == "unknown"
    assert said in card["detail"]


@pytest.mark.parametrize("pid", list(IDENTIFIERS))
def test_a_subject_named_by_nhs_number_is_the_patients_only_when_it_matches(
    service: ServiceProcess, loaded_fhir: FhirTestServer, pid: str
) -> None:
    """The EHR's prefetch carries the result its feed names by NHS number (a search by the
    patient's reference does not find it, so the EHR adds it as its own store holds it)."""
    _, _, expected, said = IDENTIFIERS[pid]
    prefetch = ehr_prefetch(service, loaded_fhir, "order-sign", pid)
    prefetch["hba1c"]["entry"] = [{"resource": by_identifier(pid)}]
    card = order_sign(service, loaded_fhir, "prefetch", pid, prefetch)
    assert result_of(card, HBA1C) == expected, card["detail"]
    if said:
        assert said in card["detail"]
        assert card["indicator"] == "warning"
    else:
        assert card["indicator"] == "info"
        warnings = card["extension"]["iport-cds.eligibility"].get("warnings", [])
        assert not [w for w in warnings if "not used: " in w]


@pytest.mark.parametrize("pid", list(IDENTIFIERS))
def test_fetched_records_named_only_by_nhs_number_are_never_another_persons_evidence(
    service: ServiceProcess, loaded_fhir: FhirTestServer, pid: str
) -> None:
    """Fetched by the patient's reference, a result that names its patient only by NHS number
    is not returned by the server: the HbA1c stays unknown, whoever's it is."""
    card = order_sign(service, loaded_fhir, "fetch", pid)
    assert result_of(card, HBA1C) == "unknown", card["detail"]
    assert card["indicator"] == "warning"


def test_entries_sharing_one_urn_uuid_in_the_ehrs_prefetch_are_not_used(
    service: ServiceProcess, loaded_fhir: FhirTestServer
) -> None:
    pid = "at-nhs-same"
    prefetch = ehr_prefetch(service, loaded_fhir, "order-sign", pid)
    urn = "urn:uuid:0c6f7c1e-3b7a-4a52-9d55-1f0b8f7a2c10"
    result = copy.deepcopy(by_identifier(pid))
    result["subject"] = {"reference": urn}
    someone_else = {"resourceType": "Patient", "id": "someone-else", "birthDate": "1950-01-01"}
    prefetch["hba1c"]["entry"] = [
        {"fullUrl": urn, "resource": prefetch["patient"]},
        {"fullUrl": urn, "resource": someone_else},
        {"resource": result},
    ]
    card = order_sign(service, loaded_fhir, "prefetch", pid, prefetch)
    assert result_of(card, HBA1C) == "unknown"
    assert "1 result not used: its Bundle entry is ambiguous" in card["detail"]
