"""Plain records passed to the store: built by the web layer, written by the repository."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uuid6


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def patient_hash(key: bytes, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id: links one patient's records without storing the id."""
    return hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    suggestion_uuids: tuple[str, ...] = ()
    override_codes: tuple[tuple[str, str], ...] = ()  # (system, code) offered on the card
    suggestion_criteria: tuple[tuple[str, str], ...] = ()  # (suggestion uuid, criterion id)


@dataclass(frozen=True)
class CriterionRecord:
    id: str
    result: str  # met | not-met | unknown
    on_pathway: bool


@dataclass(frozen=True)
class AuditRecord:
    """One evaluation. ``patient_hash`` is already keyed: the id itself never gets here."""

    recorded_at: datetime
    service_id: str
    hook: str
    hook_instance: str
    patient_hash: str
    outcome: str | None
    pathway: str | None
    policy_id: str | None
    policy_version: str | None
    cards: tuple[CardRecord, ...]
    criteria: tuple[CriterionRecord, ...]
    prefetch_keys: tuple[str, ...]
    fetched_keys: tuple[str, ...]
    fhir_requests: int
    fetch_ms: float | None
    total_ms: float
    # UUIDv7 (time-ordered): a new row's key goes at the end of the table's indexes, not at a
    # random page of them, so inserts cost the same however large the trail has grown.
    id: uuid.UUID = field(default_factory=uuid6.uuid7)
    practice_code: str | None = None  # ODS code of the registered practice (an organisation)
    place: str | None = None  # the place key (places.UNKNOWN when neither practice nor tenant)


@dataclass(frozen=True)
class AccessRecord:
    """One call to a CDS service, answered or refused (the access audit).

    ``outcome`` is the policy outcome of an answered call, or the class of a refusal
    ("unauthorised", "precondition-failed: timeout", ...). Identity fields are None when the
    call was refused before the token was validated.
    """

    recorded_at: datetime
    service_id: str
    status: int
    outcome: str
    issuer: str | None
    subject: str | None
    tenant: str | None
    ehr_user: str | None
    patient_hash: str | None
    request_id: str
    id: uuid.UUID = field(default_factory=uuid6.uuid7)


@dataclass(frozen=True)
class RefusalRecord:
    """One call refused before its caller was known (no valid token, or the client throttled):
    counted per client per minute (``access_refusal``), not kept one by one, so a flood costs
    the audit trail a row a minute. ``address_hash``: the client address's HMAC; ``issuer``:
    the trusted issuer the token named, else ""."""

    recorded_at: datetime
    service_id: str
    status: int
    outcome: str
    address_hash: str
    issuer: str


@dataclass(frozen=True)
class FeedbackRecord:
    """One validated CDS Hooks feedback item."""

    dedup_key: str
    service_id: str
    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_at: datetime
    received_at: datetime
    accepted_suggestions: tuple[str, ...] = ()
    reason_system: str | None = None
    reason_code: str | None = None
    reason_display: str | None = None
    user_comment: str | None = None  # only with FEEDBACK_STORE_COMMENTS, and capped
    user_comment_chars: int | None = None  # the comment's length as given (None: no comment)


@dataclass(frozen=True)
class IssuedCardInfo:
    """What feedback is checked against: which service issued the card, what it offered."""

    service_id: str
    suggestion_uuids: frozenset[str]
    override_codes: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class LoginClaim:
    """A dashboard sign-in try: granted (``try_id``, already counted as a failure until a
    right token releases it; ``retry_after_s`` 0) or refused for ``retry_after_s`` seconds."""

    retry_after_s: int
    try_id: uuid.UUID | None

    @property
    def granted(self) -> bool:
        return self.try_id is not None
