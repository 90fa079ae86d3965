"""Whose a resource is: evidence counts only when it is about this patient alone.

A resource is refused, and named with why, when

- its ``focus`` (what an Observation is about "when it is not the patient of record": a
  spouse, a parent, a fetus, a donor) is anyone or anything other than this patient;
- its patient-bearing elements (``subject``, ``patient``, and within one of them a reference
  and an identifier) name different patients;
- its subject is named by an identifier that does not match one of the Patient's own
  identifiers (the same system and value; an NHS number compared without spaces and only
  when its modulus-11 check digit is valid), or that cannot be compared (no Patient
  identifiers known, an invalid NHS number, a system the Patient does not carry).

How a literal reference is judged depends on where the resource came from (the request's
FHIR server, its Bundle's ``urn:uuid`` entries): the caller passes that judgement in.
``fhirdata.binding`` judges strictly; ``facts.extract`` leaves a reference it cannot resolve
on its own (``urn:uuid``, contained) to the caller that could. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"

# What the card counts: one short phrase per kind of refusal.
ANOTHER_PERSON = "about another person"
TWO_PATIENTS = "names two different patients"
AMBIGUOUS = "its Bundle entry is ambiguous"
NOT_SHOWN = "not shown to be this patient's"

Verdict = Literal["this", "other", "two", "unknown"]
# A literal reference's verdict: True (this patient), False (another), None (not decidable here).
ReferenceJudge = Callable[[str], bool | None]


def nhs_number_valid(value: str) -> bool:
    """True when ``value`` (spaces removed) is ten digits whose modulus-11 check digit holds
    (NHS Data Dictionary, "NHS Number")."""
    if not re.fullmatch(r"\d{10}", value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(value[9])


def normalised_identifier(identifier: Any) -> tuple[str, str] | None:
    """``(system, value)`` of a FHIR Identifier as compared: an NHS number without spaces;
    None when it has no system or value."""
    if not isinstance(identifier, Mapping):
        return None
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str) or not value.strip():
        return None
    system = system.strip()
    if system == NHS_NUMBER:
        return system, re.sub(r"[\s-]", "", value)
    return system, value.strip()


@dataclass(frozen=True)
class Identity:
    """What the record says this patient is: the context id and the Patient's identifiers
    (None when no Patient resource was read)."""

    patient_id: str
    identifiers: frozenset[tuple[str, str]] | None = None

    @classmethod
    def of(cls, patient_id: str, patient: Mapping[str, Any] | None) -> Identity:
        if patient is None:
            return cls(patient_id)
        found = patient.get("identifier")
        pairs = [normalised_identifier(i) for i in (found if isinstance(found, list) else [])]
        return cls(patient_id, frozenset(p for p in pairs if p is not None))


def identifier_verdict(identifier: Any, identity: Identity) -> tuple[Verdict, str]:
    """Whether a subject named by ``identifier`` is this patient, and why not."""
    pair = normalised_identifier(identifier)
    if pair is None:
        return "unknown", "its patient identifier has no system or value"
    system, value = pair
    if system == NHS_NUMBER and not nhs_number_valid(value):
        return "unknown", "its patient's NHS number is not valid (check digit)"
    if not identity.identifiers:
        return "unknown", (
            "its patient is named by an identifier, and this patient's identifiers are not "
            "known to compare it with"
        )
    if pair in identity.identifiers:
        return "this", ""
    if any(s == system for s, _ in identity.identifiers):
        what = "NHS number" if system == NHS_NUMBER else "identifier"
        return "other", f"its patient's {what} is not this patient's"
    return (
        "unknown",
        "its patient is named by an identifier of a system this patient's record does not carry",
    )


def _element_verdict(
    target: Any, judge: ReferenceJudge, identity: Identity | None
) -> tuple[Verdict | None, str]:
    """One patient-bearing element's verdict and why; None when it says nothing decidable
    here (a reference left to the caller, an identifier left until the Patient is known)."""
    if not isinstance(target, Mapping):
        return None, ""
    reference = target.get("reference")
    by_reference = judge(reference) if isinstance(reference, str) and reference else None
    identifier = target.get("identifier")
    by_identifier: tuple[Verdict, str] | None = None
    if identifier is not None and identity is not None:
        by_identifier = identifier_verdict(identifier, identity)
    if by_reference is False:
        return "other", "it names another patient"
    if by_identifier is not None and by_identifier[0] == "other":
        if by_reference is True:
            return "two", "its reference and its identifier name different patients"
        return by_identifier
    if by_reference is True:
        return "this", ""
    return by_identifier if by_identifier is not None else (None, "")


def only_by_reference(resource: Mapping[str, Any], reference: str) -> bool:
    """Whether ``resource`` names a patient only by a subject that is the bare reference
    ``reference`` (no identifier in it, no ``patient`` or ``focus`` beside it): most of a
    record. Then nothing in it could name another person, and ``attribution_problem`` finds
    nothing when ``reference`` is the context patient's (``Patient/<id>``)."""
    subject = resource.get("subject")
    return (
        type(subject) is dict
        and subject.get("reference") == reference
        and "identifier" not in subject
        and "patient" not in resource
        and "focus" not in resource
    )


def attribution_problem(
    resource: Mapping[str, Any], judge: ReferenceJudge, identity: Identity | None
) -> tuple[str, str] | None:
    """``(why, detail)`` when ``resource`` is not shown to be about this patient alone, or
    None. ``identity`` None leaves identifier-named subjects to be judged later (where the
    Patient's identifiers are known)."""
    if "patient" not in resource and "focus" not in resource:
        subject = resource.get("subject")
        # Most of a record: a subject that is a bare reference the judge accepts. Nothing
        # else here could name another person.
        if (
            isinstance(subject, dict)
            and "identifier" not in subject
            and isinstance(subject.get("reference"), str)
            and judge(subject["reference"]) is True
        ):
            return None
    found: dict[Verdict, str] = {}
    for key in ("subject", "patient"):
        if key in resource:
            verdict, detail = _element_verdict(resource[key], judge, identity)
            if verdict is not None:
                found.setdefault(verdict, detail)
    if "two" in found:
        return TWO_PATIENTS, found["two"]
    if "other" in found and "this" in found:
        return TWO_PATIENTS, "its subject and its patient name different patients"
    if "other" in found:
        return ANOTHER_PERSON, found["other"]
    if "unknown" in found:
        return NOT_SHOWN, found["unknown"]
    focus = resource.get("focus")
    for target in focus if isinstance(focus, list) else [] if focus is None else [focus]:
        if _element_verdict(target, judge, identity)[0] != "this":
            return ANOTHER_PERSON, "its focus is someone or something other than the patient"
    return None
