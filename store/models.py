"""The audit and feedback schema (SQLAlchemy 2). Changes need an Alembic revision in
``store/migrations/versions``; a test checks that the migrations and these models agree.

No patient identifier and no token is ever stored in clear: in the audit trail a patient
appears only as an HMAC-SHA256 of their id under a deployment secret, so records about one
patient can be linked without holding who they are; the assessment app's sessions hold the
token and patient id only encrypted (``review_app_session``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuditEvent(Base):
    """One hook evaluation: what was decided, from which data, how fast."""

    __tablename__ = "audit_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_on: Mapped[date] = mapped_column(Date)  # the day in Europe/London, for grouping
    service_id: Mapped[str] = mapped_column(String(64))
    hook: Mapped[str] = mapped_column(String(32))
    hook_instance: Mapped[str] = mapped_column(String(128))
    patient_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 hex, never the id
    outcome: Mapped[str | None] = mapped_column(String(32))  # None: no i-Port order, no decision
    pathway: Mapped[str | None] = mapped_column(String(32))
    policy_id: Mapped[str | None] = mapped_column(String(64))
    policy_version: Mapped[str | None] = mapped_column(String(32))
    card_count: Mapped[int] = mapped_column(Integer)
    prefetch_keys: Mapped[list[str]] = mapped_column(JSON)  # keys used from the prefetch
    fetched_keys: Mapped[list[str]] = mapped_column(JSON)  # keys read from the FHIR server
    prefetch_used: Mapped[int] = mapped_column(Integer)
    fetched_count: Mapped[int] = mapped_column(Integer)
    fhir_requests: Mapped[int] = mapped_column(Integer)
    fetch_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    # The registered practice (an ODS organisation code, not a patient identifier) and the
    # place it maps to; None on records written before places were recorded.
    practice_code: Mapped[str | None] = mapped_column(String(16))
    place: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(None, "recorded_on"),
        Index(None, "recorded_at"),
        Index(None, "patient_hash"),
    )


class AuditCriterion(Base):
    """One criterion's result in one evaluation (met | not-met | unknown)."""

    __tablename__ = "audit_criterion"

    audit_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("audit_event.id", ondelete="CASCADE"), primary_key=True
    )
    criterion_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[str] = mapped_column(String(16))
    on_pathway: Mapped[bool] = mapped_column()  # read by the deciding pathway (shown on the card)


class IssuedCard(Base):
    """A card the service returned: feedback may only name these."""

    __tablename__ = "issued_card"

    card_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    audit_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("audit_event.id", ondelete="CASCADE")
    )
    service_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    suggestion_uuids: Mapped[list[str]] = mapped_column(JSON)
    override_codes: Mapped[list[list[str]]] = mapped_column(JSON)  # [system, code] offered
    # suggestion uuid → the criterion it confirms ("referral" for a draft referral)
    suggestion_criteria: Mapped[dict[str, str] | None] = mapped_column(JSON)

    __table_args__ = (Index(None, "audit_id"),)


class Feedback(Base):
    """One CDS Hooks feedback item. ``dedup_key`` makes a resent item a no-op."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[str] = mapped_column(String(64))
    card_uuid: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | overridden
    outcome_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome_on: Mapped[date] = mapped_column(Date)  # Europe/London day of outcome_at
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    reason_system: Mapped[str | None] = mapped_column(String(255))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason_display: Mapped[str | None] = mapped_column(String(255))
    user_comment: Mapped[str | None] = mapped_column(Text)  # only with FEEDBACK_STORE_COMMENTS
    user_comment_chars: Mapped[int | None] = mapped_column(Integer)  # None: no comment given

    __table_args__ = (
        Index(None, "card_uuid"),
        Index(None, "outcome_on"),
        Index(None, "received_at"),
    )


class ReviewAppSession(Base):
    """The assessment app's server-side state, shared by every worker and pod: a SMART launch
    under way (``launch``: OAuth state and PKCE verifier) or a clinician's session
    (``session``: token, patient, user). Keyed by the SHA-256 of the random id in the
    browser's cookie; ``payload`` is Fernet-encrypted JSON, so the token and the patient id
    are never stored in clear (see store/sessions.py)."""

    __tablename__ = "review_app_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # launch | session
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index(None, "expires_at"),)


class SeenToken(Base):
    """A CDS client token id (jti) already used, until the token could no longer be accepted.

    Shared by every worker and pod: a replay is refused wherever it lands. The key is a hash
    of (issuer, jti), so its length is fixed whatever the client sends.
    """

    __tablename__ = "seen_token"

    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "expires_at"),)


class AccessEvent(Base):
    """One call to a CDS service, answered or refused: who asked, about whom, what happened.

    The information governance record of access: ``issuer``, ``subject`` and ``tenant`` come
    from the validated token (none for a refused one), ``ehr_user`` from the hook context,
    the patient only as an HMAC like in ``audit_event``.
    """

    __tablename__ = "access_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_on: Mapped[date] = mapped_column(Date)
    service_id: Mapped[str] = mapped_column(String(64))  # "unknown" for an id not offered
    status: Mapped[int] = mapped_column(Integer)  # the HTTP status answered
    outcome: Mapped[str] = mapped_column(String(64))  # policy outcome, or why it was refused
    issuer: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(128))
    ehr_user: Mapped[str | None] = mapped_column(String(128))
    patient_hash: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        Index(None, "recorded_on"),
        Index(None, "recorded_at"),
        Index(None, "patient_hash"),
    )


class AnalyticsSession(Base):
    """A signed-in browser session on the dashboard, until it expires or is signed out.

    Only a hash of the session id is kept: a copy of the database signs no one in.
    """

    __tablename__ = "analytics_session"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccessRefusal(Base):
    """Calls to a CDS service refused before the caller was known (no valid token, or the
    client throttled), counted per client per minute: a flood adds one row a minute per
    client, not one per call. The client is its address's HMAC (under the audit hash key) and
    the trusted issuer its token named ("" for none or an untrusted one: no caller-chosen
    text is kept)."""

    __tablename__ = "access_refusal"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(64), primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    recorded_on: Mapped[date] = mapped_column(Date, index=True)
    calls: Mapped[int] = mapped_column(Integer)


class AnalyticsLoginFailure(Base):
    """A wrong token given at dashboard sign-in, counted by every worker and pod alike.

    The client address is kept only as an HMAC under the deployment's hash key, and only for
    the throttle's window: older rows are deleted whenever a new one is added.
    """

    __tablename__ = "analytics_login_failure"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
