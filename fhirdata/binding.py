"""Which resources are this patient's: every patient they name must be this one, exactly.

A resource counts as the context patient's only when its ``subject`` and ``patient`` (each
that it has), and its ``focus`` if any, are

- ``Patient/<id>``: a reference relative to the request's FHIR server;
- ``<fhirServer>/Patient/<id>``: absolute, on the request's own FHIR server;
- ``urn:uuid:<x>`` where the same Bundle has exactly one entry ``fullUrl: urn:uuid:<x>``,
  holding ``Patient/<id>``;
- or, for ``subject``/``patient``, an identifier: judged by ``facts.attribution`` against
  the Patient's own identifiers, once the Patient resource is read.

No subject, a contained (``#``) or unresolvable ``urn:uuid`` subject, the same id on another
server, elements naming two patients, a focus on anyone else, or an entry sharing its
``fullUrl`` with a different entry says nothing reliable about *this* patient: such a
resource is not used, and is named with why (``facts.NotTheirs``), never silently dropped.
A ``Patient`` resource must have the context id. Resources that are about no patient
(Medication, Practitioner ...) pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from facts import NotTheirs
from facts.attribution import (
    AMBIGUOUS,
    ANOTHER_PERSON,
    NOT_SHOWN,
    attribution_problem,
    only_by_reference,
)
from fhirdata.allowlist import normalise_base

# Types the service reads that always belong to a patient: one without a subject is refused.
PATIENT_SPECIFIC = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "Encounter",
        "Flag",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    }
)


@dataclass(frozen=True)
class BundleLinks:
    """What a Bundle's ``fullUrl``s say: which ``urn:uuid``s hold the context Patient, and
    which ``fullUrl``s are shared by entries that differ (neither can be trusted)."""

    patient_urns: frozenset[str] = frozenset()
    ambiguous_urls: frozenset[str] = frozenset()
    # The resources of the entries sharing a fullUrl, by object identity: the same objects
    # the Bundle's resources are read into (fhirdata.client.bundle_resources).
    ambiguous_entries: frozenset[int] = frozenset()

    def ambiguous(self, resource: Any) -> bool:
        return id(resource) in self.ambiguous_entries


NO_LINKS = BundleLinks()  # a resource that came in no Bundle


def bundle_links(entries: Iterable[Any], patient_id: str) -> BundleLinks:
    """The links of a Bundle's entries (see ``BundleLinks``)."""
    first: dict[str, dict[str, Any]] = {}  # each fullUrl's first entry
    again: dict[str, list[dict[str, Any]]] = {}  # every entry of a fullUrl given twice or more
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        full_url, resource = entry.get("fullUrl"), entry.get("resource")
        if isinstance(full_url, str) and isinstance(resource, dict):
            seen = first.setdefault(full_url, resource)
            if seen is not resource:  # rare: most fullUrls name one entry
                again.setdefault(full_url, [seen]).append(resource)
    ambiguous = {url for url, found in again.items() if any(r != found[0] for r in found)}
    urns = {
        url
        for url, resource in first.items()
        if url.startswith("urn:uuid:")
        and url not in ambiguous
        and resource.get("resourceType") == "Patient"
        and resource.get("id") == patient_id
    }
    return BundleLinks(
        frozenset(urns),
        frozenset(ambiguous),
        frozenset(id(r) for url in ambiguous for r in again[url]),
    )


def _reference_problem(
    reference: str, patient_id: str, fhir_server: str | None, links: BundleLinks
) -> tuple[str, str] | None:
    """Why a literal patient reference is not the context patient, or None when it is."""
    if reference == f"Patient/{patient_id}":
        return None
    if reference.startswith("urn:uuid:"):
        if reference in links.ambiguous_urls:
            return AMBIGUOUS, "its patient's urn:uuid is the fullUrl of two different entries"
        if reference in links.patient_urns:
            return None
        return NOT_SHOWN, "its patient is a urn:uuid that does not resolve to this patient"
    if fhir_server and _absolute_on(reference, fhir_server, patient_id):
        return None
    if reference.startswith(("http://", "https://")):
        return NOT_SHOWN, "its patient is on another FHIR server, or is another patient"
    return ANOTHER_PERSON, "it names another patient"


def binding_problem(
    resource: Mapping[str, Any],
    patient_id: str,
    fhir_server: str | None,
    links: BundleLinks = NO_LINKS,
) -> tuple[str, str] | None:
    """``(why, detail)`` when ``resource`` cannot be taken as the context patient's, or None.

    A subject named only by identifier is left to ``facts`` (it needs the Patient's
    identifiers, which may come in another search)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):  # a list or an object: not a FHIR resource (nor hashable)
        return NOT_SHOWN, "its resourceType is not a name"
    if rtype == "Patient":
        return None if resource.get("id") == patient_id else (ANOTHER_PERSON, "another Patient")
    if links.ambiguous(resource):
        return AMBIGUOUS, "its fullUrl is shared with a different entry of the Bundle"
    if only_by_reference(resource, f"Patient/{patient_id}"):
        return None  # most of a record: a bare reference to this patient and nothing else
    keys = [key for key in ("subject", "patient") if key in resource]
    if not keys:
        return (NOT_SHOWN, "it names no patient") if rtype in PATIENT_SPECIFIC else None
    for key in keys:
        target = resource[key]
        reference = target.get("reference") if isinstance(target, dict) else None
        if not isinstance(reference, str) or not reference:
            if isinstance(target, dict) and target.get("identifier") is not None:
                continue  # judged where the Patient's identifiers are known
            return NOT_SHOWN, "its patient is given neither as a reference nor an identifier"
        problem = _reference_problem(reference, patient_id, fhir_server, links)
        if problem is not None and problem[0] != ANOTHER_PERSON:
            return problem  # cannot be resolved: nothing else it names can make it this patient's

    def is_patient(reference: str) -> bool:
        return _reference_problem(reference, patient_id, fhir_server, links) is None

    return attribution_problem(resource, is_patient, None)


def _absolute_on(reference: str, fhir_server: str, patient_id: str) -> bool:
    try:
        parts = urlsplit(reference)
    except ValueError:
        return False
    if parts.query or parts.fragment:
        return False
    return normalise_base(reference) == f"{normalise_base(fhir_server)}/Patient/{patient_id}"


def bind(
    resources: Iterable[Any],
    patient_id: str,
    fhir_server: str | None,
    refused: list[NotTheirs],
    links: BundleLinks = NO_LINKS,
) -> list[Any]:
    """The resources that are this patient's; the others are added to ``refused``."""
    kept = []
    mine = f"Patient/{patient_id}"
    shared = links.ambiguous_entries
    for resource in resources:
        if not isinstance(resource, dict):
            kept.append(resource)  # not a resource at all: reading it reports that
            continue
        # Most of a record: this patient's by a bare reference, naming no one else, in an
        # entry of its own (what ``binding_problem`` would find, without its other checks).
        rtype = resource.get("resourceType")
        if (
            type(rtype) is str
            and rtype != "Patient"
            and id(resource) not in shared
            and only_by_reference(resource, mine)
        ):
            kept.append(resource)
            continue
        problem = binding_problem(resource, patient_id, fhir_server, links)
        if problem is None:
            kept.append(resource)
        else:
            refused.append(not_theirs(resource, problem))
    return kept


def not_theirs(resource: Mapping[str, Any], problem: tuple[str, str]) -> NotTheirs:
    """``resource``, set aside for ``problem`` (why, detail), as the card and the app name it."""
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if rtype == "Patient":  # its id would name another patient on the card
        ref = "A Patient resource"
    elif isinstance(rtype, str) and isinstance(rid, str):
        ref = f"{rtype}/{rid}"[:80]
    else:
        ref = str(rtype)[:40]
    return NotTheirs(ref, str(rtype)[:40], *problem)


def file_link_problem(
    resource: Mapping[str, Any], links: BundleLinks, full_urls: frozenset[str]
) -> tuple[str, str] | None:
    """``(why, detail)`` when a resource of a Bundle read from a file (``iport-cds evaluate``)
    cannot be taken as the patient's by what the Bundle's ``fullUrl``s say: its entry shares a
    ``fullUrl`` with a different one, or a patient it names by ``urn:uuid`` is such an entry,
    or another entry than the patient's. (A file is one patient's record: other references are
    read as the patient's, as documented.)"""
    if links.ambiguous(resource):
        return AMBIGUOUS, "its fullUrl is shared with a different entry of the Bundle"
    for key in ("subject", "patient", "focus"):
        targets = resource.get(key)
        for target in targets if isinstance(targets, list) else [targets]:
            ref = target.get("reference") if isinstance(target, dict) else None
            if not isinstance(ref, str) or not ref.startswith("urn:uuid:"):
                continue
            if ref in links.ambiguous_urls:
                return AMBIGUOUS, "its patient's urn:uuid is the fullUrl of two different entries"
            if ref in full_urls and ref not in links.patient_urns:
                return ANOTHER_PERSON, "its patient's urn:uuid is another entry of the Bundle"
    return None
