"""The full assessment for a launched patient, by the very path the cards take.

``assess`` builds the patient-view hook request the EHR would have sent (this FHIR server, the
clinician's token, no prefetch) and runs ``service.evaluation.run_hook``: the same fetch and
the same ``policy.decide`` path. Nothing here decides anything; it
arranges a ``Decision`` for a page and writes a clinician's confirmation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cds_cards.render import (
    OUTCOME_WORDS,
    clinical_text,
    confirmation_observation,
    deceased_summary,
    not_checked,
)
from facts import WithdrawnConfirmation
from facts.extract import MAX_REASON_CHARS, OBSERVATION_OK, WITHDRAWN_BECAUSE, WITHDRAWN_NOTE
from facts.london import LONDON, london_day
from fhirdata import FhirClient, FhirError, FhirServerNotAllowed
from fhirdata.client import FhirConflict, FhirNotFound, FhirUnauthorised
from policy import CriterionResult, Decision, Evidence, Outcome, Policy, Tri
from policy.expr import deciding_leaves
from policy.technology import day_text
from review_app.smart import ReviewSession
from service.errors import ServiceError
from service.evaluation import Runtime, run_hook
from service.hookrequest import HookRequest
from service.tenants import FhirAccess

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
URI_SYSTEM = "urn:ietf:rfc:3986"  # an identifier that is a URI (here a urn:uuid)
# The statuses of a confirmation that stands (facts.extract.OBSERVATION_OK), as a search.
STANDING = ",".join(sorted(OBSERVATION_OK))
NO_NAME = "Name not recorded"
RESULT_LABEL = {Tri.MET: "Met", Tri.NOT_MET: "Not met", Tri.UNKNOWN: "Unknown"}
RESULT_TAG = {Tri.MET: "green", Tri.NOT_MET: "red", Tri.UNKNOWN: "yellow"}


# A user's reference where a confirmation's text names who made it: the record had no name
# for them. The page says so rather than "a clinician", which would read as a name.
_USER_REF = re.compile(r"\b(Practitioner|PractitionerRole|Person)/[A-Za-z0-9\-.]{1,64}\b")
UNNAMED_CLINICIAN = "a clinician (name not available from the EHR)"
UNNAMED_USER = "Name not available from the EHR"  # "Prepared by", for a user named by reference


def app_text(text: str) -> str:
    """``clinical_text`` for the app and the pack: a clinician the record names only by
    reference is said to be unnamed, never passed off as "a clinician"."""
    return clinical_text(_USER_REF.sub(UNNAMED_CLINICIAN, text))


def unnamed_notice(user_ref: str | None, who: Clinician | None) -> str | None:
    """What the app tells a clinician before they confirm when the EHR gives no name for
    them (the confirmation will carry only their reference, or nobody); None when named."""
    if who is not None and who.name:
        return None
    if user_ref:
        return (
            "Your name could not be read from the EHR; this confirmation will be recorded "
            f"as {user_ref}."
        )
    return (
        "The EHR did not say who you are; this confirmation will be recorded without "
        "the name of who made it."
    )


class AssessmentError(Exception):
    """The record could not be read or written; the message is safe to show the clinician."""


class TokenRejected(AssessmentError):
    """The FHIR server refused the session's token (revoked or expired): the session ends."""


NO_NAMED_CLINICIAN = (
    "A confirmation can be withdrawn only by a named clinician, and the EHR did not say who "
    "you are (no fhirUser in the launch), so it cannot be withdrawn here: mark it entered in "
    "error in the EHR itself."
)


class ChangedMeanwhile(AssessmentError):
    """The record changed between the page and the clinician's action; nothing was written."""


class AlreadyWithdrawn(AssessmentError):
    """The confirmation was withdrawn before this request (another tab, a colleague)."""

    def __init__(self, observation_id: str) -> None:
        super().__init__("That confirmation had already been withdrawn.")
        self.observation_id = observation_id


def already_withdrawn_text(assessment: Assessment, observation_id: str) -> str | None:
    """Who withdrew the confirmation ``observation_id`` and when, as the assessment reads it
    now; None when it is not a withdrawn confirmation of this assessment."""
    ref = f"Observation/{observation_id}"
    found = next((w for w in assessment.decision.withdrawn if w.ref == ref), None)
    return withdrawn_text(found) if found else None


def _token_refused(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, FhirUnauthorised):
            return True
        cause = cause.__cause__
    return False


@dataclass(frozen=True)
class EvidenceRow:
    text: str
    href: str | None  # the resource on the FHIR server


@dataclass(frozen=True)
class WithdrawableRow:
    """A confirmation that decides a criterion now and that the clinician may withdraw."""

    observation_id: str
    version: str  # as the assessment read it ("" if not given): a withdrawal names it
    text: str


@dataclass(frozen=True)
class CriterionRow:
    id: str
    title: str
    result: Tri
    label: str
    tag: str
    reason: str
    policy_text: tuple[str, ...]  # the policy's words for it, each place it says them
    evidence: tuple[EvidenceRow, ...]
    context: tuple[EvidenceRow, ...]
    missing: str | None
    decisive: bool
    can_confirm: bool
    on_pathway: bool
    # Confirmations deciding it now, which may be withdrawn; and those withdrawn, in words.
    withdrawable: tuple[WithdrawableRow, ...] = ()
    withdrawn: tuple[str, ...] = ()
    # offered for confirmation but not enough on its own: what else the record needs, in words
    not_alone: str | None = None


@dataclass(frozen=True)
class Assessment:
    decision: Decision
    policy: Policy
    service_id: str
    criteria: tuple[CriterionRow, ...]
    not_checked: tuple[str, ...]
    patient_name: str
    birth_date: str | None
    identifiers: tuple[tuple[str, str], ...]  # (label, value)
    reason: str = ""  # the outcome's reason, in the app's words (``outcome_reason``)

    @property
    def deciding_rows(self) -> tuple[CriterionRow, ...]:
        """The criteria the deciding pathway reads, and any the clinician can act on (all of
        them when no pathway decides)."""
        rows = tuple(r for r in self.criteria if _deciding(r))
        return rows or self.criteria

    @property
    def other_rows(self) -> tuple[CriterionRow, ...]:
        """The other pathways' criteria (a pregnancy for a child under 12), shown apart."""
        shown = set(self.deciding_rows)
        return tuple(r for r in self.criteria if r not in shown)

    @property
    def still_needed(self) -> str | None:
        """What the record needs, beyond any confirmation offered here, for the outcome to
        change ("a current insulin prescription"); None when nothing."""
        return needs_text([r for r in self.criteria if r.decisive and not r.can_confirm])

    @property
    def pathway_title(self) -> str | None:
        """The title of the pathway the decision names, if any."""
        d = self.decision
        return next((p.title for p in d.pathways if p.id == d.pathway), None)

    @property
    def head(self) -> str:
        d = self.decision
        if d.deceased:
            return deceased_summary(d)
        title = self.pathway_title
        words = OUTCOME_WORDS[d.outcome]
        return f"{words} ({title} pathway)" if title else words


def policy_text(policy: Policy, cid: str) -> tuple[str, ...]:
    specs = {c.id: c.policy_text for c in policy.criteria}
    specs |= {d.id: d.policy_text for d in policy.derived}
    return specs.get(cid, ())


def _evidence(iss: str, items: Iterable[Evidence]) -> tuple[EvidenceRow, ...]:
    rows = []
    for e in items:
        href = f"{iss.rstrip('/')}/{e.ref}" if "/" in e.ref else None
        rows.append(EvidenceRow(app_text(e.summary), href))
    return tuple(rows)


def met_through(d: Decision, expr: Any, skip: str | None = None) -> str:
    """What met ``expr`` in words: the met branch of each "any", and a criterion that met it
    by failing ("not aged 12 or over") in the policy's words for it ("Under 12"), never as
    "Aged 12 or over: not met", which reads as a failure."""
    words = d.policy.presentation.get("notMetTitles") or {}
    said = []
    for cid, negated in dict.fromkeys(deciding_leaves(expr, Tri.MET, d.criteria)):
        if cid == skip:
            continue
        title = d.criteria[cid].title
        said.append(str(words.get(cid) or f"not {title[:1].lower()}{title[1:]}") if negated
                    else title)  # fmt: skip
    return "; ".join(said)


def context_not_said(reason: str, context: tuple[EvidenceRow, ...]) -> tuple[EvidenceRow, ...]:
    """The context records a criterion's reason does not already quote ("Supporting
    context: a referral …"), so one record is not shown twice beside one criterion."""
    return tuple(e for e in context if e.text not in reason)


def _reason_shown(policy: Policy, d: Decision, r: CriterionResult) -> str:
    """A criterion's reason as the app shows it: a composite met, by what met it."""
    expr = next((x.expression for x in policy.derived if x.id == r.id), None)
    if expr is not None and r.result is Tri.MET:
        return f"Met through: {met_through(d, expr)}."
    return app_text(r.reason)


def outcome_reason(policy: Policy, d: Decision) -> str:
    """The outcome's reason as the app and the pack show it: a pathway met, by what met it."""
    chosen = next((p for p in d.pathways if p.id == d.pathway), None)
    expr = next((p.expression for p in policy.pathways if chosen and p.id == chosen.id), None)
    if d.outcome is Outcome.MEETS and chosen is not None and expr is not None:
        return f"Meets the {chosen.title} pathway: {met_through(d, expr, chosen.diagnosis)}."
    return app_text(d.reason)


# An unknown alternative of a pathway already met: not a gap in the evidence.
NOT_NEEDED = "Not needed: the pathway is met without it. "


def _row(
    rs: ReviewSession,
    policy: Policy,
    d: Decision,
    r: CriterionResult,
    versions: Mapping[str, str],
) -> CriterionRow:
    not_needed = d.outcome is Outcome.MEETS and r.result is Tri.UNKNOWN
    return CriterionRow(
        id=r.id,
        title=r.title,
        result=r.result,
        label="Not needed" if not_needed else RESULT_LABEL[r.result],
        tag="grey" if not_needed else RESULT_TAG[r.result],
        reason=(NOT_NEEDED if not_needed else "") + _reason_shown(policy, d, r),
        policy_text=policy_text(policy, r.id),
        evidence=_evidence(rs.iss, r.evidence),
        context=context_not_said(_reason_shown(policy, d, r), _evidence(rs.iss, r.context)),
        missing=app_text(r.missing) if r.missing else None,
        decisive=r.id in d.decisive,
        # only a confirmation that could change the outcome is offered ("recommended by a
        # diabetes specialist" changes nothing for a type 1 patient)
        can_confirm=r.result is Tri.UNKNOWN and r.confirmable and r.id in d.decisive,
        on_pathway=r.id in d.shown_criteria,
        withdrawable=tuple(
            WithdrawableRow(
                e.ref.removeprefix("Observation/"),
                versions.get(e.ref, ""),
                app_text(e.summary),
            )
            for e in r.evidence
            if e.matched_by == "confirmation" and e.ref.startswith("Observation/")
        ),
        withdrawn=tuple(withdrawn_text(w) for w in d.withdrawn if w.criterion == r.id),
    )


def _deciding(r: CriterionRow) -> bool:
    return r.on_pathway or r.decisive or r.can_confirm or bool(r.withdrawable or r.withdrawn)


def needs_text(rows: Iterable[CriterionRow]) -> str | None:
    """Unknown criteria in words, each with what would settle it."""
    said = [r.missing or f"an answer for “{r.title}”" for r in rows]
    return "; ".join(said) or None


def _not_alone(rows: tuple[CriterionRow, ...], d: Decision) -> tuple[CriterionRow, ...]:
    """Each confirmation offered that would not on its own make the outcome "meets", with
    what else the record needs (the other unknowns that could change it)."""
    out = []
    for row in rows:
        if row.can_confirm and row.id not in d.meets_if_confirmed:
            others = needs_text(r for r in rows if r.decisive and r.id != row.id)
            row = replace(row, not_alone=others or "another answer")
        out.append(row)
    return tuple(out)


def withdrawn_text(w: WithdrawnConfirmation) -> str:
    """A withdrawn confirmation in words: who confirmed it and when, who withdrew it and when."""
    made = f"Confirmed by {w.performer or UNNAMED_CLINICIAN} on {day_text(w.date)}"
    because = f" (reason given: {w.reason.rstrip('. ')})" if w.reason else ""
    if w.withdrawn_at is not None:
        at = w.withdrawn_at.astimezone(LONDON)
        when = f" on {day_text(at.date())} at {at.strftime('%H:%M')}"
    else:
        when = ""
    by = w.withdrawn_by or "someone the record does not name"
    why = f", because: {w.withdrawal_reason.rstrip('. ')}" if w.withdrawal_reason else ""
    return app_text(f"{made}{because}; withdrawn by {by}{when}{why}: entered in error, not used.")


def _confirmed_criterion(resources: Iterable[Any], criteria_system: str) -> dict[str, str]:
    """``{"observation id": criterion id}`` of the confirmations read: the criterion each
    one's code names (in the service's criteria CodeSystem)."""
    out = {}
    for r in resources:
        if not (isinstance(r, dict) and r.get("resourceType") == "Observation"):
            continue
        code = r.get("code")
        for c in (code.get("coding") if isinstance(code, dict) else None) or []:
            if isinstance(c, dict) and c.get("system") == criteria_system:
                out[str(r.get("id"))] = str(c.get("code"))
    return out


def _one_withdrawal_each(
    rows: list[CriterionRow], confirms: Mapping[str, str]
) -> tuple[CriterionRow, ...]:
    """Each confirmation withdrawable from one row: that of the criterion it confirms (a
    criterion built from it, "meets the pump criteria", lists it as evidence but does not
    offer it again); the first row listing it when its criterion is not shown."""
    shown = {r.id for r in rows}
    kept: set[str] = set()
    out = []
    for row in rows:
        mine = []
        for w in row.withdrawable:
            owner = confirms.get(w.observation_id)
            if w.observation_id not in kept and (owner == row.id or owner not in shown):
                mine.append(w)
                kept.add(w.observation_id)
        out.append(replace(row, withdrawable=tuple(mine)))
    return tuple(out)


def _observation_versions(resources: Iterable[Any]) -> dict[str, str]:
    """``{"Observation/id": versionId}`` of the Observations read that carry a version."""
    out = {}
    for r in resources:
        if isinstance(r, dict) and r.get("resourceType") == "Observation":
            meta = r.get("meta")
            version = meta.get("versionId") if isinstance(meta, dict) else None
            if isinstance(r.get("id"), str) and isinstance(version, str) and version:
                out[f"Observation/{r['id']}"] = version
    return out


def human_name(resource: Mapping[str, Any]) -> str | None:
    """The first usable HumanName of a Patient or Practitioner, as written."""
    for n in resource.get("name") or []:
        if isinstance(n, dict):
            text = n.get("text") or " ".join(
                [*(str(g) for g in n.get("given") or []), str(n.get("family") or "")]
            )
            if text.strip():
                return str(text).strip()
    return None


def _patient_details(
    resources: list[Any], patient_id: str
) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    patient: Mapping[str, Any] = next(
        (
            r
            for r in resources
            if isinstance(r, dict)
            and r.get("resourceType") == "Patient"
            and r.get("id") == patient_id
        ),
        {},
    )
    name = human_name(patient) or NO_NAME
    ids: list[tuple[str, str]] = []
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = str(ident.get("system") or "")
            label = "NHS number" if system == NHS_NUMBER_SYSTEM else (system or "Identifier")
            ids.append((label, ident["value"]))
    born = patient.get("birthDate")
    return name, born if isinstance(born, str) else None, tuple(ids)


def patient_view_service(runtime: Runtime, policy_id: str) -> str:
    for sid, s in runtime.services.items():
        if s.hook == "patient-view" and s.policy == policy_id:
            return sid
    raise AssessmentError("this policy has no assessment here")


def assess(
    runtime: Runtime,
    access: FhirAccess,
    rs: ReviewSession,
    policy_id: str,
    now: datetime,
) -> Assessment:
    """Read the record with the clinician's token and evaluate ``policy_id`` for the patient.

    ``access``: the session's tenant's FHIR servers; the token is sent to no other.
    Raises AssessmentError when the FHIR server is not allowed or the record cannot be read.
    """
    if not FHIR_ID.fullmatch(rs.patient_id):
        raise AssessmentError("the launch named a patient id that is not a FHIR id")
    service_id = patient_view_service(runtime, policy_id)
    req = HookRequest(
        hook="patient-view",
        hook_instance=str(uuid.uuid4()),
        patient_id=rs.patient_id,
        user_id=rs.user_ref,
        fhir_server=rs.iss,
        access_token=rs.access_token,
        prefetch=None,
        draft_orders=[],
        selections=(),
    )
    try:
        result = run_hook(
            runtime,
            runtime.services[service_id],
            req,
            now=now,
            new_uuid=lambda: str(uuid.uuid4()),
            access=access,
        )
    except ServiceError as exc:  # PreconditionFailed: the record could not be had
        error = TokenRejected if _token_refused(exc) else AssessmentError
        raise error(f"The patient's record could not be read: {exc.message}") from exc
    decision, gathered = result.decision, result.gathered
    if decision is None or gathered is None:  # patient-view always decides; never reached
        raise AssessmentError("The assessment could not be made.")
    policy = runtime.policies[policy_id]
    # A patient recorded as deceased is not assessed: no criteria to show or confirm.
    order = [] if decision.deceased else [*decision.shown_criteria, *decision.criteria]
    order = list(dict.fromkeys(order))
    versions = _observation_versions(gathered.resources)
    rows = _not_alone(
        _one_withdrawal_each(
            [_row(rs, policy, decision, decision.criteria[c], versions) for c in order],
            _confirmed_criterion(gathered.resources, policy.info.criteria_system),
        ),
        decision,
    )
    name, born, ids = _patient_details(gathered.resources, rs.patient_id)
    return Assessment(
        decision=decision,
        policy=policy,
        service_id=service_id,
        criteria=rows,
        not_checked=tuple(not_checked(decision)),
        patient_name=name,
        birth_date=long_date_of(born),
        identifiers=ids,
        reason=outcome_reason(policy, decision),
    )


# Professional registers a clinician's identifier may name, by system: (label, register).
REGISTERS = {
    "https://fhir.hl7.org.uk/Id/gmc-number": "GMC",
    "https://fhir.hl7.org.uk/Id/nmc-number": "NMC",
    "https://fhir.hl7.org.uk/Id/hcpc-number": "HCPC",
    "https://fhir.hl7.org.uk/Id/gphc-number": "GPhC",
    "https://fhir.nhs.uk/Id/sds-user-id": "SDS user",
}


@dataclass(frozen=True)
class Clinician:
    """Who is signed in, from their FHIR resource (``fhirUser``): what a funding panel asks."""

    reference: str  # "Practitioner/123"
    name: str | None
    role: str | None  # a PractitionerRole's code, or the Practitioner's first qualification
    registration: str | None  # "GMC 1234567"


def _text_of(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and isinstance(c.get("display"), str) and c["display"].strip():
            return str(c["display"]).strip()
    return None


def _registration(resource: Mapping[str, Any]) -> str | None:
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict):
            continue
        register = REGISTERS.get(str(ident.get("system") or ""))
        value = ident.get("value")
        if register and isinstance(value, str) and value.strip():
            return f"{register} {value.strip()}"
    return None


def _role(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "PractitionerRole":
        for code in resource.get("code") or []:
            if text := _text_of(code):
                return text
        return None
    for q in resource.get("qualification") or []:
        if isinstance(q, dict) and (text := _text_of(q.get("code"))):
            return text
    return None


def clinician(runtime: Runtime, access: FhirAccess, rs: ReviewSession) -> Clinician | None:
    """The signed-in clinician (``fhirUser``): name, role and professional registration,
    read through the service's one FHIR client with their token; None when there is no
    ``fhirUser`` to read, or it cannot be read."""
    if not rs.user_ref or not re.fullmatch(
        r"(Practitioner|PractitionerRole|Person)/[A-Za-z0-9\-.]{1,64}", rs.user_ref
    ):
        return None
    try:
        client = _client(runtime, access, rs, access.check(rs.iss))
        try:
            found = client.fetch_all({"user": rs.user_ref}).resources.get("user", [])
        finally:
            client.close()
    except (FhirError, FhirServerNotAllowed):
        return None
    for resource in found:
        if not isinstance(resource, dict):
            continue
        name, _, _ = _patient_details(
            [{**resource, "resourceType": "Patient"}], str(resource.get("id"))
        )
        return Clinician(
            reference=rs.user_ref,
            name=None if name == NO_NAME else name,
            role=_role(resource),
            registration=_registration(resource),
        )
    return None


def clinician_name(runtime: Runtime, access: FhirAccess, rs: ReviewSession) -> str | None:
    """The signed-in clinician's name from their FHIR resource (``fhirUser``); None when it
    cannot be read."""
    who = clinician(runtime, access, rs)
    return who.name if who else None


def long_date_of(iso: str | None) -> str | None:
    if not iso:
        return None
    return clinical_text(iso)


def confirmation_identifier(rs: ReviewSession, criterion_id: str, now: datetime) -> str:
    """The confirmation's identifier: the same for the same clinician confirming the same
    criterion for the same patient of the same FHIR server on the same day (London), so
    that a retried or resubmitted confirmation is one Observation, not two."""
    name = "|".join([rs.iss, rs.patient_id, rs.user_ref or "", criterion_id,
                     london_day(now).isoformat()])  # fmt: skip
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def record_confirmation(
    runtime: Runtime,
    access: FhirAccess,
    rs: ReviewSession,
    assessment: Assessment,
    criterion_id: str,
    now: datetime,
    reason: str = "",
) -> None:
    """Write a clinician's confirmation that ``criterion_id`` is met, with their own token
    and their ``reason`` (optional, as the Observation's note),
    as a conditional create on its identifier (``confirmation_identifier``): written once
    however often it is sent.

    Only a criterion that is unknown and that the policy lets a clinician confirm can be
    confirmed. Raises TokenRejected, or AssessmentError (the FHIR server refused it or could
    not be reached; whatever it answered, never an exception of its own).
    """
    row = next((r for r in assessment.criteria if r.id == criterion_id), None)
    if row is None or not row.can_confirm:
        raise AssessmentError("That criterion cannot be confirmed here.")
    base = access.check(rs.iss)  # the session's tenant's server, or FhirServerNotAllowed
    r = assessment.decision.criteria[criterion_id]
    resource = confirmation_observation(
        assessment.decision.policy,
        r,
        rs.patient_id,
        rs.user_ref,
        now,
        clinician_name(runtime, access, rs),
        " ".join(reason.split())[:MAX_REASON_CHARS] or None,
    )
    identifier = confirmation_identifier(rs, criterion_id, now)
    resource["identifier"] = [{"system": URI_SYSTEM, "value": identifier}]
    client = _client(runtime, access, rs, base)
    try:
        # Only a confirmation that stands matches: one made again after a withdrawal (its
        # identifier is the same, on the same day) is written, not taken for the old one.
        client.create(resource, f"identifier={URI_SYSTEM}|{identifier}&status={STANDING}")
    except FhirUnauthorised as exc:
        raise TokenRejected("The FHIR server no longer accepts this session's token.") from exc
    except FhirError as exc:
        raise AssessmentError(f"The confirmation could not be recorded: {exc}.") from exc
    finally:
        client.close()


def _client(runtime: Runtime, access: FhirAccess, rs: ReviewSession, base: str) -> FhirClient:
    """The service's one FHIR client for ``base`` (already checked against the session's
    tenant), with the clinician's token, through that tenant's bulkheads."""
    return FhirClient(
        base,
        session=runtime.fhir_sessions.for_tenant(access.key),
        executor=runtime.executors.for_url(base, access.key),
        settings=runtime.fetch_settings,
        access_token=rs.access_token,
    )


def withdrawn_observation(
    resource: Mapping[str, Any],
    user_ref: str,
    user_name: str | None,
    now: datetime,
    reason: str = "",
) -> dict[str, Any]:
    """A confirmation withdrawn: the same Observation, status ``entered-in-error``, with a
    note whose author and time say who withdrew it and when, and the clinician's ``reason``
    if they gave one (``facts`` reads them back)."""
    author: dict[str, str] = {"reference": user_ref}
    if user_name:
        author["display"] = user_name
    reason = " ".join(reason.split())[:MAX_REASON_CHARS]
    text = f"{WITHDRAWN_NOTE}{WITHDRAWN_BECAUSE}{reason}" if reason else WITHDRAWN_NOTE
    note = {"authorReference": author, "time": now.isoformat(timespec="seconds"),
            "text": text}  # fmt: skip
    notes = resource.get("note")
    notes = notes if isinstance(notes, list) else []
    return {**resource, "status": "entered-in-error", "note": [*notes, note]}


def _ours_and_theirs(found: Mapping[str, Any], rs: ReviewSession, criteria_system: str) -> bool:
    """Whether an Observation as read now is a standing confirmation written by this service
    (coded in its criteria CodeSystem) about the session's patient, named exactly."""
    code, subject = found.get("code"), found.get("subject")
    codings = code.get("coding") if isinstance(code, dict) else None
    return (
        found.get("status") in OBSERVATION_OK
        and isinstance(subject, dict)
        and subject.get("reference") == f"Patient/{rs.patient_id}"
        and isinstance(codings, list)
        and any(isinstance(c, dict) and c.get("system") == criteria_system for c in codings)
    )


def withdraw_confirmation(
    runtime: Runtime,
    access: FhirAccess,
    rs: ReviewSession,
    assessment: Assessment,
    observation_id: str,
    version: str,
    now: datetime,
    reason: str = "",
) -> str:
    """Withdraw a clinician's confirmation: the Observation is updated to
    ``entered-in-error`` with who and when (``withdrawn_observation``), with the clinician's
    own token, naming ``version``, the one the clinician's page showed (``If-Match``), so a
    change made since is never overwritten (a server that gave no version when searched:
    the version read just before the update). Returns the criterion's id.

    Only a confirmation that decides a criterion of this assessment now, and that, read
    again from the FHIR server, is one of this service's confirmations about this patient,
    can be withdrawn; only by a clinician the launch named (``fhirUser``), so the record
    says who. Raises TokenRejected, ChangedMeanwhile, or AssessmentError (refused, or the
    FHIR server could not be reached).
    """
    if not rs.user_ref:
        raise AssessmentError(NO_NAMED_CLINICIAN)
    criterion = next(
        (r.id for r in assessment.criteria for w in r.withdrawable
         if w.observation_id == observation_id),
        None,
    )  # fmt: skip
    if criterion is None and already_withdrawn_text(assessment, observation_id):
        raise AlreadyWithdrawn(observation_id)
    if criterion is None or not FHIR_ID.fullmatch(observation_id):
        raise AssessmentError("That is not a confirmation of this patient's that can be withdrawn.")
    base = access.check(rs.iss)
    name = clinician_name(runtime, access, rs)
    client = _client(runtime, access, rs, base)
    try:
        found = client.read(f"Observation/{observation_id}")
        if not _ours_and_theirs(found.resource, rs, assessment.decision.policy.criteria_system):
            raise AssessmentError(
                "That is not a confirmation of this patient's that can be withdrawn."
            )
        if version and found.version != version:
            raise FhirConflict("the confirmation is not the version the page showed")
        withdrawn = withdrawn_observation(found.resource, rs.user_ref, name, now, reason)
        client.update(withdrawn, found.version)
    except FhirUnauthorised as exc:
        raise TokenRejected("The FHIR server no longer accepts this session's token.") from exc
    except (FhirConflict, FhirNotFound) as exc:
        raise ChangedMeanwhile(
            "The confirmation was changed in the record since this page was shown, so it was "
            "not withdrawn: look at the assessment again."
        ) from exc
    except FhirError as exc:
        raise AssessmentError(f"The confirmation could not be withdrawn: {exc}.") from exc
    finally:
        client.close()
    return criterion


def today_text(now: datetime) -> str:
    return day_text(london_day(now))
