"""Demo patients: one FHIR R4 transaction Bundle per patient, for sandboxes and walk-throughs.

Each ``patients/*.json`` file is a transaction Bundle of ``PUT`` entries with stable ids
(``iport-demo-<name>``), so loading it twice changes nothing. The Bundle's ``meta.tag``
declares what the engine is expected to decide (Bundle has no ``extension`` element in R4),
per policy, by the policy's file name (``<policy>``, e.g. ``iport-advance``):

- ``https://iport-cds.example.org/fhir/CodeSystem/demo-expected/<policy>``: the outcome code;
- ``https://iport-cds.example.org/fhir/CodeSystem/demo-expected-pathway/<policy>``: the
  pathway, or ``none`` when no pathway is named (optional: checked where declared);
- ``https://iport-cds.example.org/fhir/CodeSystem/demo-expected-card/<policy>``: ``yes`` or
  ``no``, whether the policy's patient-view card shows in the default deployment (one card
  per patient; optional);
- ``https://iport-cds.example.org/fhir/CodeSystem/demo-scenario``: the name, and (display) a
  one-line description.

A policy a Bundle declares nothing for is not checked on that patient: a new policy needs no
edit of the demo patients (its golden cards cover them).

Every resource also carries the tag ``https://iport-cds.example.org/fhir/CodeSystem/demo|
iport-cds-demo``, so demo data on a shared server can be found (``_tag=``) and removed.

**Dates are stored relative to today** wherever the policy looks at them (HbA1c within
12 months, hypoglycaemia within 12 months, a child's age): a date or dateTime value written
``@today``, ``@today-6w``, ``@today-9y-3m`` or ``@today-8mT09:10:00Z`` is resolved by
``resolve_dates`` when the bundle is loaded. Offsets are in days ``d``, weeks ``w``, months
``m`` and years ``y``; years and months are applied together first (a day the month lacks
becomes its last day), then days and weeks. Fixed dates (an adult's birth date, a diagnosis
years ago) are ordinary FHIR dates. So the demo patients keep their expected outcome on any
day they are loaded, and ``iport-cds evaluate`` resolves the same tokens in any file.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PATIENTS_DIR = Path(__file__).resolve().parent / "patients"
# The users the demo set-up signs in as (tests/smart_server.py approves as
# Practitioner/demo-clinician): loaded with the patients, so a confirmation and the evidence
# pack name a clinician, a role and a (clearly not real) professional registration.
USERS_FILE = Path(__file__).resolve().parent / "users.json"
CS = "https://iport-cds.example.org/fhir/CodeSystem/"
# Per policy, the system ends with "/<policy file name>"
EXPECTED_OUTCOME_SYSTEM = CS + "demo-expected/"
EXPECTED_PATHWAY_SYSTEM = CS + "demo-expected-pathway/"
EXPECTED_CARD_SYSTEM = CS + "demo-expected-card/"
SCENARIO_SYSTEM = CS + "demo-scenario"
DEMO_TAG_SYSTEM = CS + "demo"
DEMO_TAG_CODE = "iport-cds-demo"
NO_PATHWAY = "none"

_TOKEN = re.compile(r"@today((?:[+-]\d+[dwmy])*)(T[0-9:.]+(?:Z|[+-]\d\d:\d\d)?)?")
_OFFSET = re.compile(r"([+-])(\d+)([dwmy])")


class DemoError(Exception):
    """A demo patient is unknown or its file is not a usable demo Bundle."""


@dataclass(frozen=True)
class Expectation:
    """What one policy is expected to decide for a demo patient."""

    outcome: str
    pathway: str | None  # None: not declared; NO_PATHWAY: the engine names no pathway
    card: bool | None  # does its patient-view card show (default deployment); None: not declared


@dataclass(frozen=True)
class DemoPatient:
    name: str  # the file name without .json, e.g. "t1-mdi-needle-phobia"
    patient_id: str
    expected: Mapping[str, Expectation]  # by policy file name, as the Bundle declares them
    description: str
    path: Path

    def bundle(self, today: date) -> dict[str, Any]:
        """The transaction Bundle with every relative date resolved against ``today``."""
        resolved: dict[str, Any] = resolve_dates(_read(self.path), today)
        return resolved


def _add_months(day: date, months: int) -> date:
    year, m0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, m0 + 1, min(day.day, calendar.monthrange(year, m0 + 1)[1]))


def resolve_date_token(value: str, today: date) -> str | None:
    """The FHIR date (or dateTime) a ``@today…`` token stands for; None if it is not one."""
    m = _TOKEN.fullmatch(value)
    if m is None:
        return None
    months = days = 0
    for sign, amount, unit in _OFFSET.findall(m.group(1)):
        n = int(amount) * (-1 if sign == "-" else 1)
        if unit in ("d", "w"):
            days += n * (7 if unit == "w" else 1)
        else:
            months += n * (12 if unit == "y" else 1)
    day = _add_months(today, months) + timedelta(days=days)
    return day.isoformat() + (m.group(2) or "")


def resolve_dates(doc: Any, today: date) -> Any:
    """A copy of ``doc`` with every ``@today…`` string replaced by the date it stands for.

    Strings that are not exactly a token are left alone, so resolving real FHIR data is a
    no-op.
    """
    if isinstance(doc, dict):
        return {k: resolve_dates(v, today) for k, v in doc.items()}
    if isinstance(doc, list):
        return [resolve_dates(v, today) for v in doc]
    if isinstance(doc, str) and doc.startswith("@today"):
        resolved = resolve_date_token(doc, today)
        return doc if resolved is None else resolved
    return doc


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DemoError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise DemoError(f"{path.name}: not a FHIR Bundle")
    return doc


def _tag(doc: dict[str, Any], system: str) -> dict[str, Any] | None:
    for tag in (doc.get("meta") or {}).get("tag") or []:
        if isinstance(tag, dict) and tag.get("system") == system:
            return tag
    return None


def _expectations(doc: dict[str, Any]) -> dict[str, Expectation]:
    tags = [t for t in (doc.get("meta") or {}).get("tag") or [] if isinstance(t, dict)]

    def declared(prefix: str) -> dict[str, str]:
        return {
            str(t["system"])[len(prefix) :]: str(t.get("code"))
            for t in tags
            if str(t.get("system", "")).startswith(prefix)
        }

    outcomes = declared(EXPECTED_OUTCOME_SYSTEM)
    pathways = declared(EXPECTED_PATHWAY_SYSTEM)
    cards = declared(EXPECTED_CARD_SYSTEM)
    return {
        policy: Expectation(
            outcome=outcome,
            pathway=pathways.get(policy),
            card=None if policy not in cards else cards[policy] == "yes",
        )
        for policy, outcome in outcomes.items()
    }


def _describe(path: Path) -> DemoPatient:
    doc = _read(path)
    expected = _expectations(doc)
    if not expected:
        raise DemoError(f"{path.name}: declares no expected outcome (demo-expected/<policy>)")
    patients = [
        e["resource"]["id"]
        for e in doc.get("entry") or []
        if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == "Patient"
    ]
    if len(patients) != 1:
        raise DemoError(f"{path.name}: needs exactly one Patient, has {len(patients)}")
    scenario = _tag(doc, SCENARIO_SYSTEM) or {}
    return DemoPatient(
        name=path.stem,
        patient_id=str(patients[0]),
        expected=expected,
        description=str(scenario.get("display", "")),
        path=path,
    )


def list_patients() -> list[DemoPatient]:
    """Every demo patient, in file-name order."""
    return [_describe(p) for p in sorted(PATIENTS_DIR.glob("*.json"))]


def get_patient(name_or_id: str) -> DemoPatient:
    """A demo patient by name ("t1-mdi-needle-phobia") or Patient id ("iport-demo-…")."""
    for p in list_patients():
        if name_or_id in (p.name, p.patient_id):
            return p
    raise DemoError(f"no demo patient called {name_or_id!r} (see 'iport-cds demo list')")


def users_bundle() -> dict[str, Any]:
    """The transaction Bundle of the demo users (``USERS_FILE``)."""
    return _read(USERS_FILE)


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources in a Bundle's entries."""
    return [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


__all__ = [
    "DEMO_TAG_CODE",
    "DEMO_TAG_SYSTEM",
    "EXPECTED_OUTCOME_SYSTEM",
    "EXPECTED_PATHWAY_SYSTEM",
    "PATIENTS_DIR",
    "USERS_FILE",
    "DemoError",
    "DemoPatient",
    "bundle_resources",
    "get_patient",
    "list_patients",
    "resolve_date_token",
    "resolve_dates",
    "users_bundle",
]
