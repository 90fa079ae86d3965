"""FHIR R4 resources (plain JSON) in, a ``PatientRecord`` of typed facts out.

Reads only the fields the rules use and never trusts their shape: a resource that is not
what it claims is skipped and named in ``PatientRecord.warnings``; nothing raises.
Which statuses count is the policy-interpretation document's "Facts" section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, NamedTuple

from facts.attribution import ANOTHER_PERSON, Identity, attribution_problem, only_by_reference
from facts.dosage import injections_per_day
from facts.kept import Kept
from facts.london import LONDON
from facts.model import (
    BOUNDS,
    BirthDate,
    Bound,
    Confirmation,
    Finding,
    HbA1cResult,
    InsulinOrder,
    MatchedBy,
    NotTheirs,
    Order,
    PatientRecord,
    StoppedInsulin,
    TechnologyUse,
    TechState,
    UnusableHbA1c,
    WithdrawnConfirmation,
)
from valuesets import Concept, ValueSetLibrary

SYSTEM_LABELS = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://www.whocc.no/atc": "ATC",
}

HBA1C = "hba1c"
INSULIN = "insulin"
IPORT = "iport-device"
# Value sets whose codes describe the record's orders/results, not findings.
_NOT_FINDINGS = frozenset({HBA1C, INSULIN, IPORT})

CONDITION_CLINICAL_OK = frozenset({"active", "recurrence", "relapse"})
CONDITION_BACK = frozenset({"recurrence", "relapse"})  # active again after an abatement
ABATEMENT = ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange")
VERIFICATION_EXCLUDED = frozenset({"refuted", "entered-in-error"})
# A query, not an established finding or diagnosis: kept, shown, never enough to meet.
VERIFICATION_TENTATIVE = frozenset({"unconfirmed", "provisional", "differential"})
OBSERVATION_OK = frozenset({"final", "amended", "corrected"})
PROCEDURE_OK = frozenset({"completed", "in-progress"})
REFERRAL_OK = frozenset({"active", "completed"})
ORDER_ACTIVE = frozenset({"active"})
DEVICE_OK = frozenset({"active"})
# What each resource's status says of the technology it names (docs/policy-interpretation.md,
# "Technology in use"). A status not listed is "not in use" with the status shown; records
# entered in error are not read at all. On hold is *held*: the person has the technology,
# paused (a skin reaction, temporarily back on pens), which is not the same as not having it.
ENTERED_IN_ERROR = "entered-in-error"
DEVICE_STATE: Mapping[str, TechState] = {"active": "in-use"}
DEVICE_USE_STATE: Mapping[str, TechState] = {"active": "in-use", "on-hold": "held"}
# A prescription of supplies (glucose sensors, pods, reservoirs, infusion sets, i-Ports) issued
# is evidence of use, dated when issued; one on hold is held.
PRESCRIPTION_STATE: Mapping[str, TechState] = {
    "active": "in-use",
    "completed": "in-use",
    "on-hold": "held",
}
# An order of a device is use only once it is completed (supplied); an active one is on order.
DEVICE_REQUEST_STATE: Mapping[str, TechState] = {"completed": "in-use"}
# Request intents that are not an order to supply: a plan or a proposal is not use.
PLANNED_INTENTS = frozenset({"plan", "proposal"})


# Supplies that carry the word "insulin" (or a brand) in their name but are not insulin.
_INSULIN_SUPPLY = re.compile(
    r"\b(needles?|syringes?|lancets?|strips?|sharps|reservoirs?|infusion sets?|cannulae?|pumps?)\b"
)
# A pen is a device ("NovoPen 6 insulin pen") unless its name gives a strength or names an
# insulin ("Insulin glargine 100 units/ml pre-filled pen", "insulin lispro pen").
_PEN = re.compile(r"\bpens?\b")
_STRENGTH = re.compile(r"\b(units?|iu)\b|\d\s*u\s*/\s*ml\b")


def _insulin_supply(display: str, named_action: str | None) -> bool:
    """Whether a term-matched "insulin" product is a supply or device, not insulin."""
    text = display.lower()
    if _INSULIN_SUPPLY.search(text):
        return True
    return bool(_PEN.search(text)) and named_action is None and not _STRENGTH.search(text)


class Malformed(Exception):
    """A resource does not have the shape FHIR R4 gives it; the message says where."""


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} is not an object")
    return value


def _opt_obj(parent: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return None if value is None else _obj(value, key)


def _list(parent: Mapping[str, Any], key: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{key} is not a list")
    return value


def _opt_str(parent: Mapping[str, Any], key: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key} is not a string")
    return value


# Moments read before, by the text they were read from: records repeat dates (every result
# of a batch, every request about the same patient), and a moment is immutable.
_INSTANTS: Kept[str, datetime] = Kept(8192)


def parse_fhir_instant(value: Any, where: str = "date") -> datetime | None:
    """A FHIR date / dateTime / instant as an aware moment.

    A date without a time is midnight in Europe/London; partial dates ("2025", "2025-06")
    give the first day they allow. Raises Malformed on anything that is not a FHIR date.
    """
    if value is None:
        return None
    if type(value) is str:
        found = _INSTANTS.get(value)
        return _INSTANTS.keep(value, _parse_instant(value, where)) if found is None else found
    return _parse_instant(value, where)


def _parse_instant(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or len(value) < 4:
        raise Malformed(f"{where} is not a FHIR date")
    try:
        if len(value) == 4:
            moment = datetime(int(value), 1, 1)
        elif len(value) == 7:
            moment = datetime(int(value[:4]), int(value[5:7]), 1)
        elif len(value) == 10:
            moment = datetime.fromisoformat(value)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Aware, in whatever zone it was written in: aware moments compare correctly across
        # zones, and converting each one would cost more than the rest of the parse.
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=LONDON)
    except (ValueError, OverflowError) as exc:
        raise Malformed(f"{where} {value!r} is not a FHIR date") from exc


def parse_fhir_date(value: Any, where: str = "date") -> date | None:
    """A FHIR date / dateTime / instant as a calendar date in Europe/London (see above)."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) in (4, 7, 10):
        try:  # the common case, a plain date: no time zone arithmetic needed
            if len(value) == 10:
                return date.fromisoformat(value)
            return date(int(value[:4]), int(value[5:7]) if len(value) == 7 else 1, 1)
        except ValueError as exc:
            raise Malformed(f"{where} {value!r} is not a FHIR date") from exc
    return _london_date(parse_fhir_instant(value, where))


def parse_birth_date(value: str) -> BirthDate:
    """Birth date with its uncertainty: "1990" allows any day of 1990."""
    start = parse_fhir_date(value, "birthDate")
    assert start is not None
    if len(value) == 4:
        end = date(start.year, 12, 31)
    elif len(value) == 7:
        nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        end = date.fromordinal(nxt.toordinal() - 1)
    else:
        end = start
    return BirthDate(earliest=start, latest=end, recorded=value)


def _codings(concept: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``concept.coding`` (the list itself, not a copy), each coding checked to be an object."""
    if concept is None:
        return []
    codings = _list(concept, "coding")
    for c in codings:
        if not isinstance(c, dict):
            raise Malformed("coding is not an object")
    return codings


def _display(concept: Mapping[str, Any] | None) -> str:
    if concept is None:
        return ""
    text = _opt_str(concept, "text")
    if text:
        return text
    for c in _codings(concept):
        if isinstance(c.get("display"), str) and c["display"]:
            return str(c["display"])
    return ""


@dataclass(frozen=True, slots=True)
class _Match:
    value_set: str
    matched_by: MatchedBy
    matched_on: str
    concept: Concept | None


# A CodeableConcept as classification reads it: each coding's (system, code, display) and the
# text, each None where it is not a string (classification ignores those).
_ConceptKey = tuple[tuple[tuple[str | None, str | None, str | None], ...], str | None]
CLASSIFIED_CONCEPTS_MAX = 8192  # distinct concepts remembered (a record repeats a few codes)
_CONCEPTS = "facts.concepts"  # the readings remembered, in the library's memo


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def classify(concept: Mapping[str, Any] | None, vsl: ValueSetLibrary) -> list[_Match]:
    """The value sets a CodeableConcept belongs to: by code first, else by clinical term.

    Terms are read from ``text`` and every ``coding.display``, and only for value sets the
    codes did not already match, so term evidence never shadows coded evidence.
    """
    return list(_read_concept(concept, vsl).matches)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a CodeableConcept says: the value sets it matches and, when one of its texts says
    another person has a finding it names ("Needle phobia - husband"), that text and those
    value sets."""

    matches: tuple[_Match, ...]
    about_others: tuple[str, frozenset[str]] | None = None
    hba1c: _Match | None = None  # its match to the HbA1c test by code (the text never drops it)


_NO_READING = _Reading(())


def _read_concept(
    concept: Mapping[str, Any] | None,
    vsl: ValueSetLibrary,
    codings: list[dict[str, Any]] | None = None,
) -> _Reading:
    """``concept`` read against ``vsl`` (``codings``: its codings, when the caller has them
    already). Concepts repeat (every HbA1c result carries the same code), so each distinct
    one is read once per value-set library, remembered by its text and its codings' system,
    code and display as written: a concept read before costs one dict lookup."""
    if concept is None:
        return _NO_READING
    if codings is None:
        codings = _codings(concept)
    written: list[Any] = [concept.get("text")]
    for c in codings:
        written += (c.get("system"), c.get("code"), c.get("display"))
    key = tuple(written)
    known: Kept[tuple[Any, ...], _Reading] = vsl.memo(_CONCEPTS, _concepts_kept)
    try:
        found = known.get(key)
    except TypeError:  # a value that is an object or a list: read, not remembered
        return _read(_concept_key(concept, codings), vsl)
    return known.keep(key, _read(_concept_key(concept, codings), vsl)) if found is None else found


def _concepts_kept() -> Kept[tuple[Any, ...], _Reading]:
    return Kept(CLASSIFIED_CONCEPTS_MAX)


def _concept_key(concept: Mapping[str, Any], codings: list[dict[str, Any]]) -> _ConceptKey:
    """What classification reads of ``concept``: values that are not text are None."""
    return (
        tuple(
            [
                (
                    _str_or_none(c.get("system")),
                    _str_or_none(c.get("code")),
                    _str_or_none(c.get("display")),
                )
                for c in codings
            ]
        ),
        _str_or_none(concept.get("text")),
    )


def _read(key: _ConceptKey, vsl: ValueSetLibrary) -> _Reading:
    codings, text = key
    matches: dict[str, _Match] = {}
    texts: list[str] = []
    for system, code, display in codings:
        if system is not None and code is not None:
            label = SYSTEM_LABELS.get(system, system)
            for hit in vsl.lookup(system, code):
                matches.setdefault(
                    hit.value_set, _Match(hit.value_set, "code", f"{label} {code}", hit)
                )
        if display is not None:
            texts.append(display)
    if text is not None:
        texts.append(text)
    for t in texts:
        for term_hit in vsl.find_terms(t):
            if term_hit.value_set not in matches:
                matches[term_hit.value_set] = _Match(
                    term_hit.value_set, "term", term_hit.term, None
                )
    # A finding the text also asserts of the patient stays.
    asserted = {m.value_set for m in matches.values() if m.matched_by == "term"}
    hba1c = matches.get(HBA1C)
    hba1c = hba1c if hba1c is not None and hba1c.matched_by == "code" else None
    for t in texts:
        said = {h.value_set for h in vsl.find_terms_about_others(t)}
        others = said - asserted - _NOT_FINDINGS
        if others:
            return _Reading(tuple(matches.values()), (t, frozenset(others)), hba1c)
    return _Reading(tuple(matches.values()), None, hba1c)


def _status_code(concept: Mapping[str, Any] | None) -> str | None:
    for c in _codings(concept):
        if isinstance(c.get("code"), str):
            return str(c["code"])
    return None


class _Extractor:
    def __init__(
        self,
        vsl: ValueSetLibrary,
        patient_id: str | None,
        criteria_system: str,
        identity: Identity | None = None,
    ) -> None:
        self.vsl = vsl
        self.patient_id = patient_id
        self.identity = identity
        self.not_theirs: list[NotTheirs] = []
        self.criteria_system = criteria_system
        self.findings: list[Finding] = []
        self.hba1c: list[HbA1cResult] = []
        self.insulin: list[InsulinOrder] = []
        self.insulin_stopped: list[StoppedInsulin] = []
        self.confirmations: list[Confirmation] = []
        self.withdrawn: list[WithdrawnConfirmation] = []
        self.hba1c_unusable: list[UnusableHbA1c] = []
        self.orders: list[Order] = []
        self.technology: list[TechnologyUse] = []
        self.stated_devices: set[str] = set()  # Devices a DeviceUseStatement names
        self.warnings: list[str] = []
        self.unreadable_types: set[str] = set()
        self.birth: BirthDate | None = None
        self.deceased: str | None = None
        self.deceased_on: date | None = None
        self.medications: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.pending_device_uses: list[tuple[Mapping[str, Any], str]] = []
        self.pending_medication_requests: list[tuple[Mapping[str, Any], str]] = []
        self._reference = f"Patient/{patient_id}"

    # -- dispatch ---------------------------------------------------------------------------
    def add(self, resource: Any) -> None:
        if not isinstance(resource, dict):
            self.warnings.append("An entry that is not a FHIR resource was skipped.")
            return
        rtype = resource.get("resourceType")
        handler = _HANDLERS.get(rtype) if isinstance(rtype, str) else None
        if handler is None:
            return  # resources the rules do not use are ignored, not reported
        rid = resource.get("id")
        ref = f"{rtype}/{rid}" if isinstance(rid, str) else str(rtype)
        try:
            if (
                rtype != "Patient"
                and self.patient_id
                # Most of a record: ``attribution_problem`` would find nothing.
                and not only_by_reference(resource, self._reference)
            ):
                problem = attribution_problem(resource, self._is_patient, self.identity)
                if problem is not None:
                    self.refuse(NotTheirs(ref, str(rtype), *problem))
                    return
            handler(self, resource, ref)
        except (Malformed, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            self.warnings.append(f"{ref} skipped: malformed ({_short(exc)}).")
            self.unreadable_types.add(str(rtype))

    def _is_patient(self, reference: str) -> bool | None:
        """Whether a literal reference is the context patient; None for a ``urn:uuid`` or
        contained reference, which only the Bundle it came in can resolve (the service's
        binding does, before the record is read)."""
        if reference.startswith(("urn:uuid:", "#")):
            return None
        return reference == f"Patient/{self.patient_id}" or reference.endswith(
            f"/Patient/{self.patient_id}"
        )

    def refuse(self, refusal: NotTheirs) -> None:
        self.not_theirs.append(refusal)
        self.warnings.append(refusal.warning)

    def _about_another_person(self, ref: str, rtype: str, reading: _Reading) -> list[_Match]:
        """The concept's matches without the findings the record's own text says another
        person has ("Needle phobia - husband", a coded fear of injections written "(wife)"):
        those are not the patient's, and the record is named as not used for them. A finding
        the text also asserts of the patient stays."""
        if reading.about_others is None:
            return list(reading.matches)
        text, others = reading.about_others
        quoted = " ".join(text.split())[:80]
        self.refuse(NotTheirs(ref, rtype, ANOTHER_PERSON, f"'{quoted}' names another person"))
        return [m for m in reading.matches if m.value_set not in others]

    def _names_this_patient(self, resource: Mapping[str, Any]) -> bool:
        """True only when ``subject`` is a literal reference to the context patient."""
        subject = resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str) or not self.patient_id:
            return False
        return reference == f"Patient/{self.patient_id}" or reference.endswith(
            f"/Patient/{self.patient_id}"
        )

    # -- resource handlers --------------------------------------------------------------------
    def _Patient(self, r: Mapping[str, Any], ref: str) -> None:
        if self.patient_id and r.get("id") not in (None, self.patient_id):
            self.warnings.append("A Patient resource for another patient was skipped.")
            return
        birth = _opt_str(r, "birthDate")
        if birth is not None:
            self.birth = parse_birth_date(birth)
        died = r.get("deceasedDateTime")
        if died is not None:
            try:
                when = parse_fhir_date(died, "deceasedDateTime")
            except Malformed:
                when = None  # a date of death that cannot be read is still a death recorded
            self.deceased = f"on {when.isoformat()}" if when else "date not readable"
            self.deceased_on = when
        elif r.get("deceasedBoolean") is True:
            self.deceased = "no date recorded"

    def _Medication(self, r: Mapping[str, Any], ref: str) -> None:
        self.medications[ref] = dict(r)

    def _Device(self, r: Mapping[str, Any], ref: str) -> None:
        """A device assigned to the patient (``Device.patient``): durable, in use while active.
        It carries no date of use; a statement of use naming it gives one."""
        self.devices[ref] = dict(r)
        status = str(r.get("status", "active"))
        if status == ENTERED_IN_ERROR or not isinstance(r.get("patient"), dict):
            return
        state = DEVICE_STATE.get(status, "not-in-use")
        self._technology(
            ref,
            _device_matches(r, self.vsl),
            _Use(state, status, True, None, None, source="Device"),
        )

    def _DeviceUseStatement(self, r: Mapping[str, Any], ref: str) -> None:
        self.pending_device_uses.append((r, ref))

    def _finish_device_use(self, r: Mapping[str, Any], ref: str) -> None:
        """A statement that the patient uses (or will, or did) a device: durable, from its
        timing's start until its end; its status gives the state."""
        status = str(r.get("status") or "")
        if status == ENTERED_IN_ERROR:
            return
        device = _opt_obj(r, "device") or {}
        target = _opt_str(device, "reference") or ""
        found = self.devices.get("/".join(target.split("/_history")[0].split("/")[-2:]))
        state = DEVICE_USE_STATE.get(status, "not-in-use")
        if found is not None:
            # The statement says how the device is used: it stands for the device's own record.
            self.stated_devices.add(f"{found.get('resourceType')}/{found.get('id')}")
            device_status = str(found.get("status", "active"))
            if device_status == ENTERED_IN_ERROR:
                return
            if device_status not in DEVICE_OK:
                state, status = "not-in-use", f"{status}; device {device_status}"
            matches = _device_matches(found, self.vsl)
        else:
            matches = []
        display = _opt_str(device, "display")
        if display:  # the device's own record, when there is one, names it first
            matches += [(m, display) for m in classify({"text": display}, self.vsl)]
        timing = _opt_obj(r, "timingPeriod") or {}
        recorded = parse_fhir_date(r.get("recordedOn"), "recordedOn")
        at = parse_fhir_date(r.get("timingDateTime"), "timingDateTime")
        start = parse_fhir_date(timing.get("start"), "timingPeriod.start")
        end = parse_fhir_date(timing.get("end"), "timingPeriod.end")
        use = _Use(
            state,
            status,
            True,
            since=start or at or recorded,
            last=recorded or at or end or start,
            ends=end,
            source="DeviceUseStatement",
        )
        self._technology(ref, matches, use)

    def _technology(self, ref: str, matches: list[tuple[_Match, str]], use: _Use) -> None:
        """A TechnologyUse for each technology kind among ``matches`` (each with the product
        name it was found in), the first of each kind."""
        seen: set[str] = set()
        for m, product in matches:
            if m.value_set in self.vsl.technology and m.value_set not in seen:
                seen.add(m.value_set)
                self.technology.append(
                    TechnologyUse(
                        ref=ref,
                        kind=m.value_set,
                        product=product,
                        state=use.state,
                        status=use.status,
                        durable=use.durable,
                        since=use.since,
                        last=use.last,
                        ends=use.ends,
                        source=use.source or ref.split("/")[0],
                        matched_by=m.matched_by,
                        matched_on=m.matched_on,
                        label=self.vsl.technology[m.value_set].label,
                    )
                )

    def _finding(self, r: Mapping[str, Any], ref: str, code: Any, when: date | None) -> None:
        concept = _obj(code, "code") if code is not None else None
        self._add_findings(ref, _display(concept), classify(concept, self.vsl), when)

    def _add_findings(
        self,
        ref: str,
        display: str,
        matches: list[_Match],
        when: date | None,
        tentative: str | None = None,
        use: _Use | None = None,
    ) -> None:
        technology = self.vsl.technology
        # A query of a technology is not its use.
        if tentative is None and any(m.value_set in technology for m in matches):
            event = _Use("in-use", "", False, when, when)
            self._technology(ref, [(m, display) for m in matches], use or event)
        for m in matches:
            if m.value_set not in _NOT_FINDINGS and m.value_set not in self.vsl.technology:
                self.findings.append(
                    Finding(ref, m.value_set, display, when, m.matched_by, m.matched_on, tentative)
                )

    def _Condition(self, r: Mapping[str, Any], ref: str) -> None:
        code = _opt_obj(r, "code")
        reading = _read_concept(code, self.vsl)
        if not reading.matches and reading.about_others is None:
            return  # most of a record: nothing the policy reads, so no further parsing
        matches = self._about_another_person(ref, "Condition", reading)
        if not matches:
            return
        clinical = _status_code(_opt_obj(r, "clinicalStatus"))
        verification = _status_code(_opt_obj(r, "verificationStatus"))
        if clinical is not None and clinical not in CONDITION_CLINICAL_OK:
            return
        if clinical not in CONDITION_BACK and _abated(r):
            return  # it resolved or remitted, whatever an "active" (or no) status says
        if verification in VERIFICATION_EXCLUDED:
            return
        # A finding is as current as its latest date: when it was recorded, else its onset.
        onset_period = _opt_obj(r, "onsetPeriod") or {}
        when = (
            parse_fhir_date(r.get("recordedDate"), "recordedDate")
            or parse_fhir_date(r.get("onsetDateTime"), "onsetDateTime")
            or parse_fhir_date(onset_period.get("start"), "onsetPeriod.start")
        )
        tentative = verification if verification in VERIFICATION_TENTATIVE else None
        # An active problem-list entry ("uses insulin pump") lasts until it is resolved.
        onset = parse_fhir_date(r.get("onsetDateTime"), "onsetDateTime") or parse_fhir_date(
            onset_period.get("start"), "onsetPeriod.start"
        )
        use = _Use("in-use", clinical or "", True, onset or when, when, source="Condition")
        self._add_findings(ref, _display(code), matches, when, tentative, use)

    def _Procedure(self, r: Mapping[str, Any], ref: str) -> None:
        if r.get("status") not in PROCEDURE_OK:
            return
        period = _opt_obj(r, "performedPeriod") or {}
        when = parse_fhir_date(r.get("performedDateTime"), "performedDateTime") or parse_fhir_date(
            period.get("start"), "performedPeriod.start"
        )
        self._finding(r, ref, r.get("code"), when)

    def _ServiceRequest(self, r: Mapping[str, Any], ref: str) -> None:
        self._orders_of(r, ref, r.get("code"))
        if r.get("status") not in REFERRAL_OK:
            return
        when = parse_fhir_date(r.get("authoredOn"), "authoredOn")
        concept = _opt_obj(r, "code")
        # A referral for a technology ("for insulin pump assessment") is not its use.
        matches = [m for m in classify(concept, self.vsl) if m.value_set not in self.vsl.technology]
        self._add_findings(ref, _display(concept), matches, when)

    def _DeviceRequest(self, r: Mapping[str, Any], ref: str) -> None:
        concept = _opt_obj(r, "codeCodeableConcept")
        matches = classify(concept, self.vsl)
        self._orders_of(r, ref, concept, matches)
        if r.get("status") == ENTERED_IN_ERROR:
            return
        period = _opt_obj(r, "occurrencePeriod") or {}
        when = (
            parse_fhir_date(r.get("occurrenceDateTime"), "occurrenceDateTime")
            or parse_fhir_date(period.get("start"), "occurrencePeriod.start")
            or parse_fhir_date(r.get("authoredOn"), "authoredOn")
        )
        state, status = _request_state(r, DEVICE_REQUEST_STATE)
        use = _Use(state, status, False, when, when, source="DeviceRequest")
        self._technology(ref, [(m, _display(concept)) for m in matches], use)

    def _Observation(self, r: Mapping[str, Any], ref: str) -> None:
        status = r.get("status")
        code = _opt_obj(r, "code")
        codings = _codings(code)
        for c in codings:
            if c.get("system") == self.criteria_system:
                if status in OBSERVATION_OK:
                    self._confirmation(r, ref, codings)
                elif status == ENTERED_IN_ERROR:
                    self._withdrawn(r, ref, codings)
                return
        reading = _read_concept(code, self.vsl, codings)
        value = r.get("valueCodeableConcept")
        if not reading.matches and reading.about_others is None and value is None:
            return  # nothing the policy reads (vital signs, other tests ...)
        matches = self._about_another_person(ref, "Observation", reading)
        if (not matches and value is None) or status not in OBSERVATION_OK:
            return  # nothing the policy reads (vital signs, other tests ...)
        at = _observation_instant(r)
        when = _london_date(at)
        hba1c = reading.hba1c
        if hba1c is not None:
            self._hba1c(r, ref, hba1c, when, at)
            return
        if _answers_no(r):
            return  # "finding: absent" / "No" / "Negative": the record denies it
        self._add_findings(ref, _display(code), matches, when)
        if value is not None:
            self._finding(r, ref, value, when)

    def _confirmation(self, r: Mapping[str, Any], ref: str, codings: list[dict[str, Any]]) -> None:
        criterion = self._criterion_of(codings)
        if not self._names_this_patient(r):
            # A clinician's judgement must be attributable to this patient by reference.
            self.warnings.append(f"{ref} skipped: a confirmation must reference the patient.")
            return
        value = r.get("valueBoolean")
        if not isinstance(value, bool):
            raise Malformed("confirmation has no valueBoolean")
        at = _observation_instant(r)
        when = _london_date(at)
        if at is None or when is None:
            self.warnings.append(f"{ref} skipped: a confirmation must be dated.")
            return
        self.confirmations.append(
            Confirmation(ref, criterion, value, when, _performer(r), at, _note_text(r))
        )

    def _withdrawn(self, r: Mapping[str, Any], ref: str, codings: list[dict[str, Any]]) -> None:
        """A confirmation marked entered-in-error: named as withdrawn when it is this
        patient's and dated; never evidence (docs/policy-interpretation.md, "Withdrawing a
        confirmation")."""
        when = _london_date(_observation_instant(r))
        if when is None or not self._names_this_patient(r):
            return  # nothing to name: not this patient's, or undated
        by, at = _withdrawal(r)
        reasons = [n for n in _list(r, "note") if not _is_withdrawal(n)]
        self.withdrawn.append(
            WithdrawnConfirmation(
                ref,
                self._criterion_of(codings),
                when,
                _performer(r),
                by,
                at,
                _note_text({"note": reasons}),
                _withdrawal_reason(r),
            )
        )

    def _criterion_of(self, codings: list[dict[str, Any]]) -> str:
        criterion = next(
            (
                c["code"]
                for c in codings
                if c.get("system") == self.criteria_system and isinstance(c.get("code"), str)
            ),
            None,
        )
        if criterion is None:
            raise Malformed("confirmation code is not a string")
        return str(criterion)

    def _hba1c(
        self,
        r: Mapping[str, Any],
        ref: str,
        match: _Match,
        when: date | None,
        at: datetime | None,
    ) -> None:
        if when is None:
            self.warnings.append(f"{ref} skipped: HbA1c result has no date.")
            return
        problem = None
        try:
            result = _hba1c_value(r, ref, match, when, at)
            if isinstance(result, str):
                problem = result
            else:
                self.hba1c.append(result)
        except (Malformed, TypeError, ValueError) as exc:
            problem = f"malformed ({_short(exc)})"
        if problem:
            # Remembered: an unusable result newer than every usable one must not let an
            # older result decide (the newest may be the one that matters).
            self.hba1c_unusable.append(UnusableHbA1c(ref, when, problem, _as_recorded(r)))
            self.warnings.append(f"{ref} skipped: HbA1c {problem}.")

    def _medication_concept(self, r: Mapping[str, Any]) -> dict[str, Any] | None:
        concept = _opt_obj(r, "medicationCodeableConcept")
        if concept is not None:
            return concept
        reference = _opt_obj(r, "medicationReference")
        if reference is None:
            return None
        target = _opt_str(reference, "reference") or ""
        med: Mapping[str, Any] | None = None
        if target.startswith("#"):
            med = next(
                (
                    c
                    for c in _list(r, "contained")
                    if isinstance(c, dict) and c.get("id") == target[1:]
                ),
                None,
            )
        elif "/" in target:
            # Relative or absolute: the last "Medication/id" pair names it.
            med = self.medications.get("/".join(target.split("/_history")[0].split("/")[-2:]))
        if med is not None:
            return _opt_obj(med, "code")
        display = _opt_str(reference, "display")
        return {"text": display} if display else None

    def _MedicationRequest(self, r: Mapping[str, Any], ref: str) -> None:
        self.pending_medication_requests.append((r, ref))

    def _MedicationStatement(self, r: Mapping[str, Any], ref: str) -> None:
        self.pending_medication_requests.append((r, ref))

    def _finish_medication_statement(self, r: Mapping[str, Any], ref: str) -> None:
        """A statement of what the patient takes is not a prescription: only insulin it says
        was stopped is read (named when no insulin is current)."""
        if r.get("status") != "stopped":
            return
        concept = self._medication_concept(r)
        found = self._insulin_in(concept, classify(concept, self.vsl))
        if found is None:
            return
        period = _opt_obj(r, "effectivePeriod") or {}
        stopped = parse_fhir_date(period.get("end"), "effectivePeriod.end")
        began = parse_fhir_date(period.get("start"), "effectivePeriod.start")
        self.insulin_stopped.append(StoppedInsulin(ref, found[1], began, stopped, "started"))

    def _insulin_in(
        self, concept: Mapping[str, Any] | None, matches: list[_Match]
    ) -> tuple[_Match, str, str | None] | None:
        """A medication's insulin match, its name and its action; None when it is not insulin,
        or is a supply named with "insulin" (pen needles, a syringe)."""
        insulin = next((m for m in matches if m.value_set == INSULIN), None)
        if insulin is None:
            return None
        display = _display(concept)
        # Coded: the concept's action. Text: the action its name has in the value set.
        action = (
            insulin.concept.insulin_action
            if insulin.concept
            else self.vsl.action_named(INSULIN, display)
        )
        if insulin.matched_by == "term" and _insulin_supply(display, action):
            return None
        return insulin, display, action

    def _finish_medication_request(self, r: Mapping[str, Any], ref: str) -> None:
        if ref.startswith("MedicationStatement/"):
            self._finish_medication_statement(r, ref)
            return
        concept = self._medication_concept(r)
        matches = classify(concept, self.vsl)
        if matches:
            self._orders_of(r, ref, concept, matches)
        self._prescribed_technology(r, ref, _display(concept), matches)
        status = r.get("status")
        if (status not in ORDER_ACTIVE and status != "stopped") or not matches:
            return  # most prescriptions: not an order of anything the policies read
        found = self._insulin_in(concept, matches)
        if found is None:
            return
        insulin, display, action = found
        if status == "stopped":  # deliberately stopped: named, never counted
            prescribed = parse_fhir_date(r.get("authoredOn"), "authoredOn")
            self.insulin_stopped.append(StoppedInsulin(ref, display, prescribed, _dosage_end(r)))
            return
        per_day, source = injections_per_day(_list(r, "dosageInstruction"))
        validity = _opt_obj(_opt_obj(r, "dispenseRequest") or {}, "validityPeriod") or {}
        self.insulin.append(
            InsulinOrder(
                ref=ref,
                display=_display(concept),
                action=action or "unknown",
                injections_per_day=per_day,
                frequency_from=source,
                date=parse_fhir_date(r.get("authoredOn"), "authoredOn"),
                matched_by=insulin.matched_by,
                product=(
                    f"{insulin.concept.system}|{insulin.concept.code}"
                    if insulin.concept
                    else " ".join(display.lower().split()) or ref
                ),
                valid_until=parse_fhir_date(validity.get("end"), "validityPeriod.end"),
            )
        )

    def _prescribed_technology(
        self, r: Mapping[str, Any], ref: str, display: str, matches: list[_Match]
    ) -> None:
        """Supplies of a technology prescribed like medicines (sensors, pods, reservoirs,
        infusion sets, i-Ports, by dm+d or by name): an issue is evidence of use, dated when
        it was issued."""
        if r.get("status") == ENTERED_IN_ERROR:
            return
        state, status = _request_state(r, PRESCRIPTION_STATE)
        when = parse_fhir_date(r.get("authoredOn"), "authoredOn")
        if not matches or not any(m.value_set in self.vsl.technology for m in matches):
            return  # most prescriptions: no technology (the date is still read: it must be)
        use = _Use(state, status, False, when, when, source="MedicationRequest")
        self._technology(ref, [(m, display) for m in matches], use)

    def _orders_of(
        self, r: Mapping[str, Any], ref: str, code: Any, matches: list[_Match] | None = None
    ) -> None:
        """An Order for each value set this order's code is in (the first match of each)."""
        concept = _obj(code, "code") if code is not None else None
        seen: set[str] = set()
        for m in matches if matches is not None else classify(concept, self.vsl):
            if m.value_set not in seen:
                seen.add(m.value_set)
                status = str(r.get("status"))
                self.orders.append(Order(ref, _display(concept), status, m.matched_by, m.value_set))

    def record(self) -> PatientRecord:
        return PatientRecord(
            patient_ref=f"Patient/{self.patient_id}" if self.patient_id else None,
            birth_date=self.birth,
            deceased=self.deceased,
            deceased_on=self.deceased_on,
            findings=tuple(self.findings),
            hba1c=tuple(self.hba1c),
            hba1c_unusable=tuple(self.hba1c_unusable),
            insulin=tuple(self.insulin),
            insulin_stopped=tuple(self.insulin_stopped),
            confirmations=tuple(self.confirmations),
            withdrawn=tuple(self.withdrawn),
            orders=tuple(o for o in self.orders if o.status in ORDER_ACTIVE),
            technology=tuple(
                _with_implied(
                    (t for t in self.technology if t.ref not in self.stated_devices), self.vsl
                )
            )
            if self.technology
            else (),
            warnings=tuple(self.warnings),
            not_theirs=tuple(self.not_theirs),
            unreadable_types=frozenset(self.unreadable_types),
        )


def _dosage_end(r: Mapping[str, Any]) -> date | None:
    """The latest end of a prescription's dosage bounds (``timing.repeat.boundsPeriod.end``):
    when a stopped prescription stopped, where the record says."""
    ends = []
    for dosage in _list(r, "dosageInstruction"):
        timing = _opt_obj(_obj(dosage, "dosageInstruction"), "timing") or {}
        bounds = _opt_obj(_opt_obj(timing, "repeat") or {}, "boundsPeriod") or {}
        end = parse_fhir_date(bounds.get("end"), "boundsPeriod.end")
        if end is not None:
            ends.append(end)
    return max(ends, default=None)


class _Use(NamedTuple):
    """What a record says of the technology it names (see ``TechnologyUse``)."""

    state: TechState
    status: str
    durable: bool
    since: date | None
    last: date | None
    ends: date | None = None
    source: str = ""


def _request_state(r: Mapping[str, Any], states: Mapping[str, TechState]) -> tuple[TechState, str]:
    """What a request's status (and intent: a plan is not an order) says of its technology,
    and the status as the card names it."""
    status = str(r.get("status") or "")
    if r.get("intent") in PLANNED_INTENTS:
        return "not-in-use", f"{status}; {r.get('intent')}"
    return states.get(status, "not-in-use"), status


def _device_matches(r: Mapping[str, Any], vsl: ValueSetLibrary) -> list[tuple[_Match, str]]:
    """What a Device is, with the name it is known by: from its type, its names, its model
    number and its UDI's human-readable form (a MiniMed 780G typed only "insulin pump" is an
    HCL system by its name)."""
    names = [
        n["name"]
        for n in _list(r, "deviceName")
        if isinstance(n, dict) and isinstance(n.get("name"), str) and n["name"].strip()
    ]
    udi = [
        u["carrierHRF"]
        for u in _list(r, "udiCarrier")
        if isinstance(u, dict) and isinstance(u.get("carrierHRF"), str)
    ]
    model = _opt_str(r, "modelNumber")
    concept = _opt_obj(r, "type")
    product = names[0] if names else _display(concept) or model or ""
    out = [(m, product) for m in classify(concept, vsl)]
    for text in [*names, *([model] if model else []), *udi]:
        out += [(m, product) for m in classify({"text": text}, vsl)]
    if model:
        coded = {"coding": [{"system": "urn:manufacturer:model", "code": model}]}
        out += [(m, product) for m in classify(coded, vsl)]
    return out


def _with_implied(uses: Iterable[TechnologyUse], vsl: ValueSetLibrary) -> Iterable[TechnologyUse]:
    """Each use, then the kinds it also is (a hybrid closed loop is a pump and a real-time
    CGM: ``valuesets/technology-kinds.json``), unless the record names that kind itself."""
    uses = list(uses)
    named = {(u.ref, u.kind) for u in uses}
    yield from uses
    for u in uses:
        for kind in vsl.technology[u.kind].implies:
            if (u.ref, kind) not in named:
                named.add((u.ref, kind))
                label = vsl.technology[kind].label
                yield replace(u, kind=kind, implied_by=u.kind, label=label, implied_label=u.label)


# SNOMED CT answers meaning the finding is not there: No, Negative, Absent, Not present.
_NO_ANSWERS = frozenset({"373067005", "260385009", "2667000", "410594000"})
_NO_WORDS = frozenset({"no", "none", "nil", "negative", "absent", "not present", "denies", "false"})


# A confirmation's reason is shown as written, up to this many characters.
MAX_REASON_CHARS = 500


# The text of the note with which the assessment app withdraws a confirmation; the note's
# author and time say who withdrew it and when. A reason the clinician gives follows it,
# after WITHDRAWN_BECAUSE.
WITHDRAWN_NOTE = "Withdrawn: entered in error."
WITHDRAWN_BECAUSE = " Reason: "


def _performer(r: Mapping[str, Any]) -> str | None:
    """Who made a confirmation: the first performer's name, else its reference."""
    for p in _list(r, "performer"):
        p = _obj(p, "performer")
        performer = _opt_str(p, "display") or _opt_str(p, "reference")
        if performer:
            return performer
    return None


def _is_withdrawal(note: Any) -> bool:
    text = note.get("text") if isinstance(note, dict) else None
    return isinstance(text, str) and (
        text == WITHDRAWN_NOTE or text.startswith(WITHDRAWN_NOTE + WITHDRAWN_BECAUSE)
    )


def _withdrawal_reason(r: Mapping[str, Any]) -> str | None:
    """The reason given with a withdrawal (its last withdrawal note), cut to a length."""
    for note in reversed(_list(r, "note")):
        if _is_withdrawal(note):
            reason = str(note["text"])[len(WITHDRAWN_NOTE + WITHDRAWN_BECAUSE) :]
            return " ".join(reason.split())[:MAX_REASON_CHARS] or None
    return None


def _withdrawal(r: Mapping[str, Any]) -> tuple[str | None, datetime | None]:
    """Who withdrew a confirmation and when, from its withdrawal note (the last one)."""
    for note in reversed(_list(r, "note")):
        if not _is_withdrawal(note):
            continue
        author = note.get("authorReference")
        by = None
        if isinstance(author, dict):
            by = _opt_str(author, "display") or _opt_str(author, "reference")
        by = by or (note["authorString"] if isinstance(note.get("authorString"), str) else None)
        try:
            at = parse_fhir_instant(note.get("time"))
        except (Malformed, TypeError, ValueError):
            at = None
        return by, at
    return None, None


def _note_text(r: Mapping[str, Any]) -> str | None:
    """The first note's text of a resource (a confirmation's reason), cut to a length."""
    for note in _list(r, "note"):
        text = note.get("text") if isinstance(note, dict) else None
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())[:MAX_REASON_CHARS]
    return None


def _answers_no(r: Mapping[str, Any]) -> bool:
    """True when an Observation's value says its coded finding is absent."""
    if r.get("valueBoolean") is False:
        return True
    text = r.get("valueString")
    if isinstance(text, str) and " ".join(text.lower().split()).strip(" .") in _NO_WORDS:
        return True
    concept = r.get("valueCodeableConcept")
    if isinstance(concept, dict):
        for c in concept.get("coding") or []:
            if isinstance(c, dict) and c.get("code") in _NO_ANSWERS:
                return True
        words = [concept.get("text")] + [
            c.get("display") for c in concept.get("coding") or [] if isinstance(c, dict)
        ]
        for w in words:
            if isinstance(w, str) and " ".join(w.lower().split()).strip(" .") in _NO_WORDS:
                return True
    return False


def _abated(r: Mapping[str, Any]) -> bool:
    """True when a Condition records an abatement: FHIR's "resolved or went into remission"."""
    text = r.get("abatementString")
    return any(r.get(key) is not None for key in ABATEMENT) or (
        isinstance(text, str) and bool(text.strip())
    )


def _observation_instant(r: Mapping[str, Any]) -> datetime | None:
    when = r.get("effectiveDateTime")
    if when is not None and r.get("effectivePeriod") is None:
        return parse_fhir_instant(when, "effectiveDateTime")  # most results: read first below
    period = _opt_obj(r, "effectivePeriod") or {}
    for value, where in (
        (r.get("effectiveDateTime"), "effectiveDateTime"),
        (r.get("effectiveInstant"), "effectiveInstant"),
        (period.get("end"), "effectivePeriod.end"),
        (period.get("start"), "effectivePeriod.start"),
        (r.get("issued"), "issued"),
    ):
        when = parse_fhir_instant(value, where)
        if when is not None:
            return when
    return None


def _london_date(moment: datetime | None) -> date | None:
    if moment is None:
        return None
    if moment.tzinfo is LONDON:
        return moment.date()
    try:
        return moment.astimezone(LONDON).date()
    except OverflowError as exc:
        raise Malformed("the date is out of range") from exc


# A result beyond the analyser's range written as text, as laboratories send it when the
# value cannot be a number: "> 130 mmol/mol", "<20", "≥ 14 %". The number is at most four
# digits (no HbA1c in either unit needs more), so a long string is never scanned twice.
_CENSORED_TEXT = re.compile(
    r"\s*(>=|<=|≥|≤|>|<)\s*(\d{1,4}(?:\.\d{1,3})?)\s*([^\s\d][^\n]{0,30})?\s*"
)
_SYMBOLS: Mapping[str, Bound] = {"≥": ">=", "≤": "<=", ">=": ">=", "<=": "<=", ">": ">", "<": "<"}


_COMPARATORS = ("", *BOUNDS)


def _hba1c_value(
    r: Mapping[str, Any], ref: str, match: _Match, when: date, at: datetime | None
) -> HbA1cResult | str:
    """The result in IFCC mmol/mol, or why it cannot be used.

    A censored result (a comparator, or a value string such as "> 130 mmol/mol") keeps its
    bound: the policy uses it only in the direction in which it is certain.
    """
    quantity = _opt_obj(r, "valueQuantity")
    if quantity is None:
        text = r.get("valueString")
        found = _CENSORED_TEXT.fullmatch(text) if isinstance(text, str) else None
        if found is None:
            return "result has no numeric value"
        op, number, unit_text = found.groups()
        quantity = {"value": float(number), "comparator": _SYMBOLS[op], "unit": unit_text}
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Malformed("valueQuantity.value is not a number")
    comparator, code, unit = quantity.get("comparator"), quantity.get("code"), quantity.get("unit")
    implied = match.concept.implied_unit if match.concept else None
    if (
        type(value) is int
        and type(comparator) in _TEXT
        and type(code) in _TEXT
        and type(unit) in _TEXT
        and type(implied) in _TEXT
    ):
        # Results repeat (whole numbers in mmol/mol): each distinct one is read once.
        key = (value, comparator, code, unit, implied)
        reading = _HBA1C_READINGS.get(key)
        if reading is None:
            reading = _HBA1C_READINGS.keep(key, _hba1c_reading(value, quantity, implied))
    else:
        reading = _hba1c_reading(value, quantity, implied)
    if isinstance(reading, str):
        return reading
    mmol, original, bound = reading
    return HbA1cResult(ref, mmol, original, when, at, bound)


_TEXT = (str, type(None))
_HBA1C_READINGS: Kept[tuple[Any, ...], tuple[float, str, Bound] | str] = Kept(4096)


def _hba1c_reading(
    value: float, quantity: Mapping[str, Any], implied: str | None
) -> tuple[float, str, Bound] | str:
    """A result's value in mmol/mol, as recorded, and its bound; or why it cannot be used."""
    bound = quantity.get("comparator") or ""
    if bound not in _COMPARATORS:
        return f"comparator {bound!r} not recognised"
    unit = _hba1c_unit(quantity, implied)
    if unit == "mmol/mol":
        mmol = float(value)
    elif unit == "%":
        mmol = (float(value) - 2.15) * 10.929
    else:
        return f"unit {unit!r} not recognised (not mmol/mol or %)"
    # A bound is rounded away from what it promises ("≥ 8.5 %" is ≥ 68.9, not ≥ 69.0), so a
    # converted bound never claims more than the laboratory said.
    if bound in (">", ">="):
        mmol = math.floor(mmol * 10) / 10
    elif bound in ("<", "<="):
        mmol = math.ceil(mmol * 10) / 10
    return round(mmol, 1), f"{bound}{value:g} {unit}", bound


def _as_recorded(r: Mapping[str, Any]) -> str:
    """A result's value and unit as recorded (">130 mmol/mol", "80 mmol/L"), or "" when it has
    no readable number: what a card names when it says the result was not used."""
    quantity = r.get("valueQuantity")
    if not isinstance(quantity, Mapping):
        text = r.get("valueString")
        # Short text is shown as written ("see report"); a long one is only said to be text.
        return " ".join(text.split()) if isinstance(text, str) and len(text) <= 40 else ""
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    unit = next((u for k in ("unit", "code") if isinstance(u := quantity.get(k), str) and u), "")
    comparator = quantity.get("comparator")
    bound = comparator if isinstance(comparator, str) else ""
    return " ".join(f"{bound}{value:g} {unit}".split())


def _hba1c_unit(quantity: Mapping[str, Any], implied: str | None) -> str | None:
    """The unit as UCUM: the coded unit, else the human unit, else what the test code implies."""
    for key in ("code", "unit"):
        unit = quantity.get(key)
        if isinstance(unit, str) and unit.strip():
            u = unit.strip().lower().replace(" ", "")
            if u in ("mmol/mol", "mmol/molhb", "mmol/mol(ifcc)"):
                return "mmol/mol"
            if u in ("%", "percent", "%hb", "%(dcct)", "%{hemoglobina1c}"):
                return "%"
            return unit
    return implied  # what the test code implies


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# The resource types the rules read, and the method that reads each: only these are dispatched
# (a resourceType naming any other method of the extractor is ignored like any unknown type).
_HANDLERS: Mapping[str, Callable[[_Extractor, Mapping[str, Any], str], None]] = {
    "Patient": _Extractor._Patient,
    "Medication": _Extractor._Medication,
    "Device": _Extractor._Device,
    "DeviceUseStatement": _Extractor._DeviceUseStatement,
    "Condition": _Extractor._Condition,
    "Procedure": _Extractor._Procedure,
    "ServiceRequest": _Extractor._ServiceRequest,
    "DeviceRequest": _Extractor._DeviceRequest,
    "Observation": _Extractor._Observation,
    "MedicationRequest": _Extractor._MedicationRequest,
    "MedicationStatement": _Extractor._MedicationStatement,
}
RESOURCE_TYPES = frozenset(_HANDLERS)


def extract_record(
    resources: Iterable[Any],
    vsl: ValueSetLibrary,
    *,
    patient_id: str | None,
    criteria_system: str,
    warnings: Iterable[str] = (),
    not_theirs: Iterable[NotTheirs] = (),
) -> PatientRecord:
    """Typed facts for one patient from their FHIR resources (any order, any mess).

    ``patient_id`` is the context patient: resources not shown to be about this patient
    alone are not used and are named (``facts.attribution``). ``criteria_system`` is the
    CodeSystem of clinician confirmation Observations; ``warnings`` are earlier notes (e.g.
    from fetching) and ``not_theirs`` the resources set aside earlier (by the service's
    binding), to report with the record's own.
    """
    resources = list(resources)
    identity = None
    if patient_id:
        patient = next(
            (
                r
                for r in resources
                if isinstance(r, dict)
                and r.get("resourceType") == "Patient"
                and r.get("id") == patient_id
            ),
            None,
        )
        identity = Identity.of(patient_id, patient)
    ex = _Extractor(vsl, patient_id, criteria_system, identity)
    ex.warnings.extend(warnings)
    for refusal in not_theirs:
        ex.refuse(refusal)
    for resource in resources:
        ex.add(resource)
    # MedicationRequests last: their medicationReference may point at a Medication listed later.
    for r, ref in ex.pending_medication_requests:
        try:
            ex._finish_medication_request(r, ref)
        except (Malformed, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            ex.warnings.append(f"{ref} skipped: malformed ({_short(exc)}).")
    # DeviceUseStatements last too: their device reference may point at a Device listed later.
    for r, ref in ex.pending_device_uses:
        try:
            ex._finish_device_use(r, ref)
        except (Malformed, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            ex.warnings.append(f"{ref} skipped: malformed ({_short(exc)}).")
    return ex.record()


def order_in(resource: Any, vsl: ValueSetLibrary, value_set: str) -> Order | None:
    """This (draft) order resource as an Order coded in ``value_set``, or None (no code yet,
    another product, or not an order)."""
    ex = _Extractor(vsl, None, "")
    ex.add(resource)
    for r, ref in ex.pending_medication_requests:
        if not ref.startswith("MedicationRequest/"):
            continue  # a statement of use is never an order
        try:
            ex._orders_of(r, ref, ex._medication_concept(r))
        except (Malformed, TypeError, ValueError, KeyError, AttributeError, OverflowError):
            return None
    return next((o for o in ex.orders if o.value_set == value_set), None)
