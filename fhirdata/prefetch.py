"""Prefetch first, the FHIR server only for what is missing.

``prefetch_templates`` are the queries the services advertise in discovery (CDS Hooks 2.0
tokens only). ``gather`` takes what the client prefetched, fetches the rest in one round
trip through ``FhirClient``, and returns the patient's resources with notes of what was
used, fetched and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from facts import NotTheirs
from fhirdata.binding import NO_LINKS, BundleLinks, bind, bundle_links
from fhirdata.client import (
    FetchResult,
    FhirBadResponse,
    FhirClient,
    FhirError,
    bundle_resources,
    next_link,
)
from valuesets import ValueSetLibrary

PATIENT_TOKEN = "{{context.patientId}}"  # noqa: S105 (a prefetch token, not a secret)
PAGE_SIZE = 100


class DataUnavailable(Exception):
    """Required data is neither prefetched nor obtainable from the FHIR server (answer 412);
    ``retry_after_s`` when it is known not to be obtainable for a while."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _codes(vsl: ValueSetLibrary, set_ids: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for vs_id in set_ids:
        vs = vsl.sets.get(vs_id)
        for c in vs.concepts if vs else ():
            seen.setdefault(f"{c.system}|{c.code}", None)
    return list(seen)


def recorded_in(vsl: ValueSetLibrary, value_sets: Iterable[str], resource_type: str) -> list[str]:
    """Those of ``value_sets`` whose codes are recorded in ``resource_type`` (the value set's
    ``recorded-in`` extension), in a stable order."""
    return sorted(
        v for v in set(value_sets) if v in vsl and resource_type in vsl.sets[v].recorded_in
    )


def prefetch_templates(
    vsl: ValueSetLibrary, criteria_system: str, value_sets: Iterable[str]
) -> dict[str, str]:
    """The prefetch templates every service advertises; keys are stable API.

    ``value_sets`` are those the loaded policies read: the findings search asks for the codes
    of those recorded in Observations, and Device and DeviceUseStatement are searched only when
    one of them is recorded there.
    """
    value_sets = set(value_sets)
    p = PATIENT_TOKEN
    # subject=Patient/<id>, not patient=<id>: every FHIR server supports subject on these
    # types; some do not support patient on all of them (DeviceRequest), and a search a server
    # rejects leaves a criterion unchecked.
    s = f"subject=Patient/{p}"
    # _count: servers page searches (sekmet at 20, HAPI at 20); each further page is another
    # round trip, so ask for pages large enough that a typical record is one page.
    n = f"&_count={PAGE_SIZE}"
    templates = {
        "patient": f"Patient/{p}",
        "conditions": f"Condition?{s}{n}",
        "hba1c": f"Observation?{s}&code={','.join(_codes(vsl, ['hba1c']))}&_sort=-date{n}",
        "findings": f"Observation?{s}{n}&code="
        + ",".join(
            [f"{criteria_system}|", *_codes(vsl, recorded_in(vsl, value_sets, "Observation"))]
        ),
        # completed too: an issued prescription of supplies (a glucose sensor, pods) is
        # evidence of their use, and one on hold says the technology is paused, not absent;
        # insulin is read from active prescriptions only (facts.extract). Stopped too: insulin
        # stopped on purpose is named, so a card never asks for it back.
        "medications": f"MedicationRequest?{s}&status=active,completed,on-hold,stopped"
        f"&_include=MedicationRequest:medication{n}",
        "referrals": f"ServiceRequest?{s}{n}",
        "procedures": f"Procedure?{s}{n}",
        # completed: a device supplied (an i-Port order filled) is in use.
        "devices": f"DeviceRequest?{s}&status=active,completed{n}",
    }
    if recorded_in(vsl, value_sets, "DeviceUseStatement"):
        # The device each statement names is included: its type says what the device is.
        templates["deviceUses"] = f"DeviceUseStatement?{s}&_include=DeviceUseStatement:device{n}"
    if recorded_in(vsl, value_sets, "Device"):
        templates["assignedDevices"] = f"Device?patient=Patient/{p}{n}"
    return templates


# The type each ``_include`` the templates use brings into the answer.
_INCLUDE_TARGETS = {
    "MedicationRequest:medication": "Medication",
    "DeviceUseStatement:device": "Device",
}


def read_types(templates: Mapping[str, str]) -> tuple[str, ...]:
    """Every resource type reading ``templates`` returns: each query's own type and the types
    its ``_include`` brings, sorted. The assessment app asks for read scopes on exactly these,
    so its scopes follow the queries. An ``_include`` of unknown target is refused here, at
    start-up, rather than leaving a type out."""
    types: set[str] = set()
    for key, template in templates.items():
        path, _, query = template.partition("?")
        types.add(path.partition("/")[0])
        for name, _, value in (p.partition("=") for p in query.split("&")):
            if name != "_include":
                continue
            if value not in _INCLUDE_TARGETS:
                raise ValueError(f"prefetch template {key!r} includes {value!r}, of unknown type")
            types.add(_INCLUDE_TARGETS[value])
    return tuple(sorted(types))


def fill(template: str, patient_id: str) -> str:
    return template.replace(PATIENT_TOKEN, quote(patient_id, safe=""))


@dataclass
class Gathered:
    resources: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Those of the warnings that lost nothing of this patient's record: a search the FHIR
    # server could not filter by patient (filtered here), a prefetch fetched again instead
    lossless: list[str] = field(default_factory=list)
    not_theirs: list[NotTheirs] = field(default_factory=list)  # set aside by the binding
    prefetched: list[str] = field(default_factory=list)  # keys used from prefetch
    fetched: list[str] = field(default_factory=list)  # keys read from the FHIR server
    fetch_ms: float = 0.0
    fhir_requests: int = 0

    def note(self, warning: str) -> None:
        """A warning that lost nothing of this patient's record (named in the app, not on
        the card: it cannot change the outcome)."""
        self.warnings.append(warning)
        self.lossless.append(warning)


def gather(
    prefetch: Mapping[str, Any] | None,
    templates: Mapping[str, str],
    patient_id: str,
    client: Callable[[], FhirClient] | None,
    fhir_server: str | None = None,
) -> Gathered:
    """All resources the policy needs for ``patient_id``.

    A prefetch key with data is used (its further pages read from the server); a key with
    ``null`` means the client looked and found nothing; an absent or unusable key is fetched.
    Unusable includes a searchset that is malformed or holds an ``error``/``fatal``
    OperationOutcome: the client's search failed or is incomplete, so its entries are not
    all the patient's records.

    ``client`` makes the FHIR client for this request, or is None when the request named no
    usable FHIR server; ``fhir_server`` is the request's, against which absolute subject
    references are checked. Only resources bound to this patient are kept
    (``fhirdata.binding``); the others are named in ``not_theirs``.

    Raises DataUnavailable when anything required cannot be had.
    """
    out = Gathered()
    prefetch = prefetch or {}
    to_fetch: dict[str, str] = {}
    continued: dict[str, Mapping[str, Any]] = {}
    for key, template in templates.items():
        if key in prefetch:
            value = prefetch[key]
            if value is None:
                out.prefetched.append(key)
                continue
            if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
                # The client's own query failed: it tells us nothing about the patient.
                out.note(f"Prefetch '{key}' was an error report from the client; fetched instead.")
            elif isinstance(value, dict) and value.get("resourceType") == "Bundle":
                page_warnings: list[str] = []
                unfiltered: set[str] = set()
                try:
                    resources = bundle_resources(
                        value, f"prefetch '{key}'", page_warnings, unfiltered
                    )
                    more = next_link(value) is not None
                except FhirBadResponse as exc:
                    reason = str(exc)
                    out.note(f"{reason[:1].upper()}{reason[1:]}; fetched instead.")
                else:
                    out.prefetched.append(key)
                    if more:
                        continued[key] = value  # all pages are read below, the first included
                    else:
                        links = bundle_links(value.get("entry") or (), patient_id)
                        out.resources.extend(
                            _bound(key, resources, patient_id, fhir_server, out, unfiltered, links)
                        )
                        out.warnings.extend(page_warnings)
                    continue
            elif isinstance(value, dict) and isinstance(value.get("resourceType"), str):
                out.prefetched.append(key)
                out.resources.extend(bind([value], patient_id, fhir_server, out.not_theirs))
                continue
            else:
                out.note(f"Prefetch '{key}' was not a FHIR resource or Bundle; fetched instead.")
        to_fetch[key] = fill(template, patient_id)
    if not to_fetch and not continued:
        return out
    if client is None:
        missing = sorted([*to_fetch, *continued])
        raise DataUnavailable(
            f"Required data was not prefetched, or not usably ({', '.join(missing)}), and no "
            "usable FHIR server was given to fetch it from."
        )
    started = time.perf_counter()
    fhir = client()
    try:
        fetched: FetchResult = fhir.fetch_all(to_fetch)
        for key, first_page in continued.items():
            fetched.resources[key] = fhir.continue_pages(key, first_page, fetched)
    except FhirError as exc:
        raise DataUnavailable(f"Could not obtain the patient's data: {exc}.") from exc
    finally:
        fhir.close()
        out.fetch_ms = (time.perf_counter() - started) * 1000
    for key, resources in fetched.resources.items():
        out.resources.extend(
            _bound(key, resources, patient_id, fhir_server, out, fetched.unfiltered)
        )
    out.warnings.extend(fetched.warnings)
    out.fetched.extend(to_fetch)
    out.fhir_requests = fetched.requests_made
    return out


def _bound(
    key: str,
    resources: list[Any],
    patient_id: str,
    fhir_server: str | None,
    out: Gathered,
    unfiltered: set[str],
    links: BundleLinks = NO_LINKS,
) -> list[Any]:
    """This patient's resources of one search. When the server could not filter the search by
    patient, its answer holds other patients' records by design: they are set aside with one
    line of context instead of one warning each."""
    if key not in unfiltered and f"prefetch '{key}'" not in unfiltered:
        return bind(resources, patient_id, fhir_server, out.not_theirs, links)
    set_aside: list[NotTheirs] = []
    kept = bind(resources, patient_id, fhir_server, set_aside, links)
    out.note(
        f"{key}: the FHIR server does not support this search as asked; its answer was "
        f"filtered to this patient ({len(set_aside)} other record(s) set aside)."
    )
    return kept
