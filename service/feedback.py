"""CDS Hooks 2.0 feedback, the protocol: each item validated, about a card this service
issued, stored idempotently (``FeedbackHandler``; the route is ``service.routes.feedback``).

An override's ``userComment`` is free text a clinician types, and may name the patient (an NHS
number, a name). By default its text is not kept: only that a comment was given, and its length.
With FEEDBACK_STORE_COMMENTS on, the text is kept too, cut to ``MAX_STORED_COMMENT_CHARS``.
A comment is never logged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

import store
from service.errors import BadRequest
from service.evaluation import Runtime

MAX_FEEDBACK_ITEMS = 100
MAX_COMMENT_CHARS = 4000  # longer: the item is refused (400)
MAX_STORED_COMMENT_CHARS = 500  # kept of a comment, when comments are kept at all
FEEDBACK_CARD_WAIT_S = 1.0  # how long to wait for another worker's not-yet-written card
OUTCOMES = ("accepted", "overridden")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def override_displays(runtime: Runtime) -> dict[str, str]:
    """Override reason code → the display the cards offer (from each policy's presentation)."""
    out: dict[str, str] = {}
    for policy in runtime.policies.values():
        for reason in policy.info.presentation.get("overrideReasons", ()):
            out.setdefault(str(reason["code"]), str(reason["display"]))
    return out


@dataclass
class FeedbackHandler:
    """CDS Hooks 2.0 feedback: every item valid and about a card this service issued, or 400
    naming the first bad item (nothing stored). A resent item is stored once."""

    store: store.AuditStore
    clock: Callable[[], datetime]
    displays: Mapping[str, str]
    store_comments: bool = False  # FEEDBACK_STORE_COMMENTS: keep the comment's text (capped)

    def __call__(self, service_id: str, body: Mapping[str, Any]) -> None:
        items = body["feedback"]
        if len(items) > MAX_FEEDBACK_ITEMS:
            raise BadRequest(f"at most {MAX_FEEDBACK_ITEMS} feedback items per request")
        now = self.clock()
        parsed = [
            parse_feedback_item(item, f"feedback[{i}]", now, self.displays)
            for i, item in enumerate(items)
        ]
        cards = self.store.issued_cards({p.card for p in parsed}, wait_s=FEEDBACK_CARD_WAIT_S)
        records = []
        for i, p in enumerate(parsed):
            where = f"feedback[{i}]"
            card = cards.get(p.card)
            if card is None or card.service_id != service_id:
                raise BadRequest(f"{where}.card '{p.card}' is not a card this service issued")
            for j, sid in enumerate(p.accepted):
                if sid not in card.suggestion_uuids:
                    raise BadRequest(
                        f"{where}.acceptedSuggestions[{j}].id is not a suggestion of that card"
                    )
            if p.reason is not None and p.reason not in card.override_codes:
                raise BadRequest(
                    f"{where}.overrideReason.reason is not one of the card's overrideReasons"
                )
            records.append(p.record(service_id, now, store_comment=self.store_comments))
        self.store.add_feedback(records)


@dataclass(frozen=True)
class ParsedFeedback:
    card: str
    outcome: str
    outcome_at: datetime
    accepted: tuple[str, ...]
    reason: tuple[str, str] | None
    reason_display: str | None
    comment: str | None

    def kept_comment(self, store_comment: bool) -> str | None:
        """The comment's text as stored: none unless comments are kept, then its first
        ``MAX_STORED_COMMENT_CHARS`` characters."""
        if not store_comment or self.comment is None:
            return None
        return self.comment[:MAX_STORED_COMMENT_CHARS]

    def dedup_key(self, service_id: str, store_comment: bool = False) -> str:
        # Only what is stored goes into the key: a hash of the whole comment could be matched
        # against guessed identifiers.
        canonical = {
            "service": service_id,
            "card": self.card,
            "outcome": self.outcome,
            "at": self.outcome_at.astimezone(UTC).isoformat(),
            "accepted": sorted(self.accepted),
            "reason": list(self.reason) if self.reason else None,
            "comment": self.kept_comment(store_comment),
            "commentChars": len(self.comment) if self.comment is not None else None,
        }
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def record(
        self, service_id: str, received_at: datetime, store_comment: bool = False
    ) -> store.FeedbackRecord:
        return store.FeedbackRecord(
            dedup_key=self.dedup_key(service_id, store_comment),
            service_id=service_id,
            card_uuid=self.card,
            outcome=self.outcome,
            outcome_at=self.outcome_at,
            received_at=received_at,
            accepted_suggestions=self.accepted,
            reason_system=self.reason[0] if self.reason else None,
            reason_code=self.reason[1] if self.reason else None,
            reason_display=self.reason_display,
            user_comment=self.kept_comment(store_comment),
            user_comment_chars=len(self.comment) if self.comment is not None else None,
        )


def _string(value: Any, where: str, *, max_len: int = 128) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{where} must be a non-empty string")
    if len(value) > max_len:
        raise BadRequest(f"{where} is too long (at most {max_len} characters)")
    return value


def parse_rfc3339(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise BadRequest(f"{where} must be an RFC 3339 date-time with a time zone")
    text = value.replace("t", "T").replace("z", "Z").replace(" ", "T")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{where} is not a valid date-time") from exc


def parse_feedback_item(
    item: Any, where: str, now: datetime, displays: Mapping[str, str] | None = None
) -> ParsedFeedback:
    """One feedback item, checked field by field; BadRequest names the field."""
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object")
    card = _string(item.get("card"), f"{where}.card", max_len=64)
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        raise BadRequest(f"{where}.outcome must be 'accepted' or 'overridden'")
    outcome_at = parse_rfc3339(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
    if outcome_at > now + timedelta(days=1):
        raise BadRequest(f"{where}.outcomeTimestamp is in the future")
    accepted: tuple[str, ...] = ()
    raw_accepted = item.get("acceptedSuggestions")
    if outcome == "accepted":
        if not isinstance(raw_accepted, list) or not raw_accepted:
            raise BadRequest(
                f"{where}.acceptedSuggestions is required for an accepted outcome "
                "(a non-empty list of {{id}})"
            )
        ids = []
        for j, s in enumerate(raw_accepted):
            if not isinstance(s, dict):
                raise BadRequest(f"{where}.acceptedSuggestions[{j}] must be an object with 'id'")
            ids.append(_string(s.get("id"), f"{where}.acceptedSuggestions[{j}].id", max_len=64))
        accepted = tuple(ids)
    elif raw_accepted not in (None, []):
        raise BadRequest(f"{where}.acceptedSuggestions is only for an accepted outcome")
    reason: tuple[str, str] | None = None
    display: str | None = None
    comment: str | None = None
    raw_override = item.get("overrideReason")
    if raw_override is not None:
        if outcome != "overridden":
            raise BadRequest(f"{where}.overrideReason is only for an overridden outcome")
        if not isinstance(raw_override, dict):
            raise BadRequest(f"{where}.overrideReason must be an object")
        coding = raw_override.get("reason")
        if coding is not None:
            if not isinstance(coding, dict):
                raise BadRequest(f"{where}.overrideReason.reason must be a Coding")
            system = _string(
                coding.get("system"), f"{where}.overrideReason.reason.system", max_len=255
            )
            code = _string(coding.get("code"), f"{where}.overrideReason.reason.code", max_len=64)
            reason = (system, code)
            raw_display = coding.get("display")
            if raw_display is not None:
                display = _string(
                    raw_display, f"{where}.overrideReason.reason.display", max_len=255
                )
            display = (displays or {}).get(code, display)
        raw_comment = raw_override.get("userComment")
        if raw_comment is not None:
            if not isinstance(raw_comment, str):
                raise BadRequest(f"{where}.overrideReason.userComment must be a string")
            if len(raw_comment) > MAX_COMMENT_CHARS:
                raise BadRequest(
                    f"{where}.overrideReason.userComment is too long "
                    f"(at most {MAX_COMMENT_CHARS} characters)"
                )
            comment = raw_comment.strip() or None
    return ParsedFeedback(card, outcome, outcome_at, accepted, reason, display, comment)
