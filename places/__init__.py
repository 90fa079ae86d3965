"""Where a patient is registered: the place (of the policy's places) an evaluation counts for.

A place comes from the patient's registered practice (its ODS code in
``Patient.generalPractitioner``) through a deployment's practice → place table, else from a
configured tenant → place mapping, else it is unknown. Pure: no Flask, no database, no clock.
An ODS practice code is an organisation code, not a patient identifier. A population's other
tables read ``places.lookups`` (practice → primary care network, postcode → small area →
deprivation quintile) and ``places.ethnicity`` (NHS ethnic category).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
UNKNOWN = "unknown"  # the place key for "neither the practice nor the tenant says"
_ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")
_PLACE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
PRACTICE_COLUMNS = ("practice_code", "place")

# Display names of the Humber and North Yorkshire places (the policies' ``placesCovered``).
PLACE_NAMES = {
    "east-riding": "East Riding of Yorkshire",
    "hull": "Hull",
    "north-east-lincolnshire": "North East Lincolnshire",
    "north-lincolnshire": "North Lincolnshire",
    "north-yorkshire": "North Yorkshire",
    "vale-of-york": "Vale of York",
    UNKNOWN: "Unknown place",
}

# A policy whose ``placesCovered`` names a nation (national guidance such as NICE's) applies
# in every place of the deployment: the nation is a scope, never a place of its own.
NATIONAL_SCOPES = {"england": "England"}


class PlaceTableError(ValueError):
    """A practice → place table or tenant mapping that cannot be used; names file and line."""


def place_name(place: str | None) -> str:
    key = place or UNKNOWN
    return PLACE_NAMES.get(key, key.replace("-", " ").capitalize())


def local_places(covered: Iterable[Iterable[str]]) -> frozenset[str]:
    """The places the policies name (each policy's ``placesCovered``), national scopes left
    out: what a practice may be mapped to and what the dashboard filters by."""
    return frozenset(p for places in covered for p in places if p not in NATIONAL_SCOPES)


def coverage(covered: Iterable[str], every: Iterable[str]) -> tuple[str, ...]:
    """The places a policy covers: all of ``every`` (the deployment's places) when it covers a
    nation, else its own places."""
    own = tuple(covered)
    if any(p in NATIONAL_SCOPES for p in own):
        return tuple(sorted(every))
    return tuple(sorted(own))


def coverage_text(covered: Iterable[str], every: Iterable[str]) -> str:
    """A policy's places in words: the places' names; for national guidance, every place."""
    own = tuple(covered)
    nations = [NATIONAL_SCOPES[p] for p in own if p in NATIONAL_SCOPES]
    names = ", ".join(place_name(p) for p in coverage(own, every))
    if nations:
        scope = " and ".join(nations)
        return f"every place ({names}): national guidance for all of {scope}"
    return names


def practice_code(patient: Mapping[str, Any] | None) -> str | None:
    """The ODS code of the patient's registered practice, from ``generalPractitioner``
    references that carry an ODS organisation identifier; None when there is none."""
    if not isinstance(patient, Mapping):
        return None
    refs = patient.get("generalPractitioner")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        ident = ref.get("identifier") if isinstance(ref, Mapping) else None
        if not isinstance(ident, Mapping) or ident.get("system") != ODS_SYSTEM:
            continue
        value = ident.get("value")
        if isinstance(value, str) and _ODS_CODE.fullmatch(value.strip().upper()):
            return value.strip().upper()
    return None


# How a person's registration reads for the population's data-quality counts.
PRACTICE_CODED = "ODS code"
PRACTICE_NO_CODE = "practice without an ODS code"  # named, or referenced, but no ODS code
PRACTICE_NONE = "no registered practice"


@dataclass(frozen=True)
class Registration:
    """The registered practice as the Patient names it: its ODS code (or None), its name as
    written on the reference (or ""), and which of PRACTICE_CODED, PRACTICE_NO_CODE or
    PRACTICE_NONE that is."""

    code: str | None
    name: str
    status: str


def registration(patient: Mapping[str, Any] | None) -> Registration:
    """The practice of ``Patient.generalPractitioner``: the reference carrying an ODS code (see
    ``practice_code``) with the display written on it; else, when some reference names a
    practice or a GP without an ODS code, that; else none."""
    code = practice_code(patient)
    refs = patient.get("generalPractitioner") if isinstance(patient, Mapping) else None
    refs = [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []
    if code is not None:
        for ref in refs:
            ident = ref.get("identifier")
            value = ident.get("value") if isinstance(ident, Mapping) else None
            if isinstance(value, str) and value.strip().upper() == code:
                return Registration(code, _display(ref), PRACTICE_CODED)
    if refs:
        return Registration(
            None, next((_display(r) for r in refs if _display(r)), ""), PRACTICE_NO_CODE
        )
    return Registration(None, "", PRACTICE_NONE)


def _display(ref: Mapping[str, Any]) -> str:
    """A reference's display as one line of at most 80 printable characters ("" if none)."""
    display = ref.get("display")
    if not isinstance(display, str):
        return ""
    text = " ".join("".join(ch for ch in display if ch.isprintable()).split())
    return text[:80]


def patient_resource(resources: Iterable[Any]) -> Mapping[str, Any] | None:
    """The Patient among a record's resources (None when there is none)."""
    for r in resources:
        if isinstance(r, Mapping) and r.get("resourceType") == "Patient":
            return r
    return None


@dataclass(frozen=True)
class PlaceDirectory:
    """Practice → place and tenant → place; ``place_of`` answers the place key of a record."""

    by_practice: Mapping[str, str] = field(default_factory=dict)
    by_tenant: Mapping[str, str] = field(default_factory=dict)

    def place_of(self, practice: str | None, tenant: str | None = None) -> str:
        """The practice's place; else the tenant's; else ``UNKNOWN``."""
        if practice and practice in self.by_practice:
            return self.by_practice[practice]
        if tenant and tenant in self.by_tenant:
            return self.by_tenant[tenant]
        return UNKNOWN

    @property
    def places(self) -> tuple[str, ...]:
        return tuple(sorted({*self.by_practice.values(), *self.by_tenant.values()}))


def _check_place(place: str, where: str, known: frozenset[str]) -> str:
    place = place.strip()
    if not _PLACE_ID.fullmatch(place):
        raise PlaceTableError(f"{where}: place '{place[:40]}' is not a place id (e.g. 'hull')")
    if known and place not in known:
        listed = ", ".join(sorted(known))
        raise PlaceTableError(f"{where}: place '{place}' is not one of the policies' ({listed})")
    return place


def load_practice_places(path: str | Path, known: Iterable[str] = ()) -> dict[str, str]:
    """Read a CSV of ``practice_code,place`` (header required). Every row is checked: an ODS
    code, a place id (one of ``known`` when given), no practice twice. PlaceTableError names
    the file and the line of the first problem."""
    known_set = frozenset(known)
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != PRACTICE_COLUMNS:
                raise PlaceTableError(
                    f"{path}: the header must be exactly '{','.join(PRACTICE_COLUMNS)}'"
                )
            for row in reader:
                where = f"{path} line {reader.line_num}"
                code = (row.get("practice_code") or "").strip().upper()
                if not _ODS_CODE.fullmatch(code):
                    raise PlaceTableError(
                        f"{where}: practice_code '{code[:20]}' is not an ODS code"
                    )
                if code in out:
                    raise PlaceTableError(f"{where}: practice {code} is listed twice")
                out[code] = _check_place(row.get("place") or "", where, known_set)
    except OSError as exc:
        raise PlaceTableError(f"{path}: cannot read the practice → place table ({exc})") from exc
    return out


def load_directory(
    practice_file: str | Path | None, tenant_places: Any, known: Iterable[str] = ()
) -> PlaceDirectory:
    """The directory a deployment configures; PlaceTableError when either part is malformed."""
    known_set = frozenset(known)
    by_practice = load_practice_places(practice_file, known_set) if practice_file else {}
    if tenant_places is None:
        tenant_places = {}
    if not isinstance(tenant_places, Mapping):
        raise PlaceTableError("PLACE_BY_TENANT must map each tenant id to a place id")
    by_tenant = {
        str(t): _check_place(str(p), f"PLACE_BY_TENANT['{t}']", known_set)
        for t, p in tenant_places.items()
    }
    return PlaceDirectory(by_practice, by_tenant)


__all__ = [
    "NATIONAL_SCOPES",
    "ODS_SYSTEM",
    "PLACE_NAMES",
    "PRACTICE_CODED",
    "PRACTICE_NONE",
    "PRACTICE_NO_CODE",
    "UNKNOWN",
    "PlaceDirectory",
    "PlaceTableError",
    "Registration",
    "coverage",
    "coverage_text",
    "load_directory",
    "load_practice_places",
    "local_places",
    "patient_resource",
    "place_name",
    "practice_code",
    "registration",
]
