"""Audit trail, clinician feedback and the commissioners' dashboard, on the web app.

``init_app`` opens the store (``store`` package), then registers:

- an evaluation listener that queues one audit record per hook call (the patient id only as
  an HMAC-SHA256 under AUDIT_HASH_KEY; never a token);
- the CDS Hooks feedback handler: validates each item, rejects cards this service never
  issued, stores idempotently;
- ``GET /analytics`` (HTML, charts) and ``GET /analytics.json`` (the same figures), behind
  the ANALYTICS_TOKEN admin token;
- the ``export-audit`` and ``purge-audit`` Flask CLI commands.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import orjson
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import with_appcontext
from werkzeug.wrappers import Response as BaseResponse

import places
import store
from facts.london import london_day
from fhirdata.allowlist import is_loopback
from service import auth, dashboard
from service.errors import BadRequest, ServiceError, Unauthorised
from service.evaluation import HookResult, Runtime
from service.hookrequest import HookRequest
from service.state import AppState, app_state
from store import AccessRecord, people, repository

log = logging.getLogger("iport_cds.analytics")
R = TypeVar("R", bound=BaseResponse)

MAX_FEEDBACK_ITEMS = 100
MAX_COMMENT_CHARS = 4000
FEEDBACK_CARD_WAIT_S = 1.0  # how long to wait for another worker's not-yet-written card
MAX_RANGE_DAYS = 3 * 366
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)
DEFAULT_RANGE_DAYS = 30
SESSION_COOKIE = "iport_cds_analytics"
SESSION_HOURS = 8
OUTCOMES = ("accepted", "overridden")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")

bp = Blueprint(
    "analytics",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/analytics/static",
)

# Paths that carry their own admin-token check: the CDS client JWT check must not apply.
EXEMPT_PATHS = (
    "/analytics",
    "/analytics.json",
    "/analytics/login",
    "/analytics/logout",
    "/analytics/export.csv",
    "/analytics/static/analytics.css",
    "/analytics/static/analytics.js",
    "/analytics/static/vendor/chart.umd.min.js",
)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


def open_app_store(app: Flask) -> store.Store:
    """The app's store (DATABASE_URL, or SQLite in the instance folder), retention applied."""
    instance = Path(app.instance_path)
    url = app.config.get("DATABASE_URL") or store.sqlite_url(instance / "iport-cds.sqlite3")
    opened = store.open_store(str(url))
    retention = app.config.get("AUDIT_RETENTION_DAYS")
    opened.set_retention(int(retention) if retention else None, app.config["CLOCK"])
    opened.apply_retention()
    log.info("audit trail on %s", opened.backend)
    return opened


def init_app(app: Flask, state: AppState) -> None:
    """Register the listener, feedback handler, routes and CLI commands on the open store."""
    instance = Path(app.instance_path)
    configured_key = app.config.get("AUDIT_HASH_KEY")  # str(): an all-digit env value is parsed
    key = store.hash_key(str(configured_key) if configured_key else None, instance)
    clock: Callable[[], datetime] = app.config["CLOCK"]
    opened = state.store
    state.login_throttle = LoginThrottle(opened, key)
    app.after_request(AccessAuditor(opened, key, clock))
    state.places = dashboard.load_places(app, state.runtime)
    state.listeners.append(AuditListener(opened, key, clock, state.places))
    state.feedback_handler = FeedbackHandler(opened, clock, override_displays(state.runtime))
    app.register_blueprint(bp)
    state.auth_exempt.update(EXEMPT_PATHS)
    app.cli.add_command(export_audit)
    app.cli.add_command(purge_audit)


def _store() -> store.AuditStore:
    return app_state().store


# -- audit ---------------------------------------------------------------------------------------
@dataclass
class AuditListener:
    """Called after each evaluation: builds the record and queues it (no database work here)."""

    store: store.AuditStore
    key: bytes
    clock: Callable[[], datetime]
    places: places.PlaceDirectory = field(default_factory=places.PlaceDirectory)

    def __call__(self, service_id: str, req: HookRequest, result: HookResult) -> None:
        try:
            record = audit_record(service_id, req, result, self.key, self.clock())
            practice = places.practice_code(
                places.patient_resource(result.gathered.resources if result.gathered else ())
            )
            place = self.places.place_of(practice, _tenant())
            self.store.record(replace(record, practice_code=practice, place=place))
        except Exception as exc:  # the hook's answer must not depend on the audit trail
            log.error("could not queue an audit record: %s", type(exc).__name__)


@dataclass
class AccessAuditor:
    """After every call to a hook, answered or refused: one access audit record, queued.

    Who (issuer, subject and tenant from the validated token; the EHR user from the hook
    context), about whom (the patient id's HMAC), what happened (status, and the policy outcome
    or why the call was refused) and the request id that ties it to the log lines.
    """

    store: store.AuditStore
    key: bytes
    clock: Callable[[], datetime]

    def __call__(self, response: R) -> R:
        if request.endpoint != "cds.hook":
            return response
        try:
            self.store.record_access(self.access_record(response.status_code))
        except Exception as exc:  # the answer must not depend on the audit trail
            log.error("could not queue an access record: %s", type(exc).__name__)
        return response

    def access_record(self, status: int) -> AccessRecord:
        principal: auth.Principal | None = g.get("principal")
        req: HookRequest | None = g.get("hook_request")
        service_id = (request.view_args or {}).get("service_id")
        runtime = app_state().runtime
        return AccessRecord(
            recorded_at=self.clock(),
            service_id=service_id if service_id in runtime.services else "unknown",
            status=status,
            outcome=_access_outcome(status),
            issuer=principal.iss if principal else None,
            subject=principal.sub if principal else None,
            tenant=principal.tenant if principal else None,
            ehr_user=req.user_id if req else None,
            patient_hash=store.patient_hash(self.key, req.patient_id) if req else None,
            request_id=str(g.get("request_id") or ""),
        )


def _access_outcome(status: int) -> str:
    """The policy outcome of an answered call, or the class of the refusal (never free text
    from the caller)."""
    if status == 200:
        return str(g.get("hook_outcome") or "no-decision")
    if status == 401:
        return f"unauthorised: {g.get('auth_refused') or 'no token'}"[:64]
    if status == 412:
        return f"precondition-failed: {g.get('ops_precondition_reason') or 'other'}"
    return {400: "bad-request", 404: "not-found", 413: "too-large", 415: "unsupported-media",
            503: "overloaded"}.get(status, f"error {status}")  # fmt: skip


def _tenant() -> str | None:
    """The CDS client's tenant, as its validated token says (set by authentication)."""
    principal = g.get("principal") if has_request_context() else None
    tenant = getattr(principal, "tenant", None)
    return tenant if isinstance(tenant, str) else None


def _suggestion_criterion(suggestion: Mapping[str, Any]) -> str:
    """The criterion a suggestion's confirmation Observation records ('referral' for a draft
    referral): the export names accepted suggestions by it."""
    for action in suggestion.get("actions", ()):
        resource = action.get("resource") or {}
        if resource.get("resourceType") == "ServiceRequest":
            return "referral"
        for coding in (resource.get("code") or {}).get("coding", ()):
            if coding.get("code"):
                return str(coding["code"])
    return "unknown"


def audit_record(
    service_id: str, req: HookRequest, result: HookResult, key: bytes, now: datetime
) -> store.AuditRecord:
    decision = result.decision
    criteria: tuple[store.CriterionRecord, ...] = ()
    if decision is not None:
        shown = set(decision.shown_criteria)
        criteria = tuple(
            store.CriterionRecord(cid, r.result.value, cid in shown)
            for cid, r in decision.criteria.items()
        )
    issued = set(result.card_uuids)
    cards = tuple(
        store.CardRecord(
            uuid=str(card["uuid"]),
            suggestion_uuids=tuple(
                str(s["uuid"]) for s in card.get("suggestions", ()) if s.get("uuid")
            ),
            override_codes=tuple(
                (str(r.get("system", "")), str(r.get("code", "")))
                for r in card.get("overrideReasons", ())
            ),
            suggestion_criteria=tuple(
                (str(s["uuid"]), _suggestion_criterion(s))
                for s in card.get("suggestions", ())
                if s.get("uuid")
            ),
        )
        for card in result.body.get("cards", ())
        if card.get("uuid") in issued
    )
    gathered = result.gathered
    return store.AuditRecord(
        recorded_at=now,
        service_id=service_id,
        hook=req.hook,
        hook_instance=req.hook_instance,
        patient_hash=store.patient_hash(key, req.patient_id),
        outcome=result.outcome,
        pathway=result.pathway,
        policy_id=decision.policy.id if decision else None,
        policy_version=decision.policy.version if decision else None,
        cards=cards,
        criteria=criteria,
        prefetch_keys=tuple(gathered.prefetched) if gathered else (),
        fetched_keys=tuple(gathered.fetched) if gathered else (),
        fhir_requests=gathered.fhir_requests if gathered else 0,
        fetch_ms=round(gathered.fetch_ms, 2) if gathered else None,
        total_ms=float(result.timings_ms.get("total", 0.0)),
    )


# -- feedback ------------------------------------------------------------------------------------
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
            records.append(p.record(service_id, now))
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

    def dedup_key(self, service_id: str) -> str:
        canonical = {
            "service": service_id,
            "card": self.card,
            "outcome": self.outcome,
            "at": self.outcome_at.astimezone(UTC).isoformat(),
            "accepted": sorted(self.accepted),
            "reason": list(self.reason) if self.reason else None,
            "comment": self.comment,
        }
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def record(self, service_id: str, received_at: datetime) -> store.FeedbackRecord:
        return store.FeedbackRecord(
            dedup_key=self.dedup_key(service_id),
            service_id=service_id,
            card_uuid=self.card,
            outcome=self.outcome,
            outcome_at=self.outcome_at,
            received_at=received_at,
            accepted_suggestions=self.accepted,
            reason_system=self.reason[0] if self.reason else None,
            reason_code=self.reason[1] if self.reason else None,
            reason_display=self.reason_display,
            user_comment=self.comment,
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


# -- dashboard -----------------------------------------------------------------------------------
def _session_cookie(token: str, session_id: str) -> str:
    mac = hmac.new(token.encode(), f"iport-cds-analytics:{session_id}".encode(), hashlib.sha256)
    return f"{session_id}.{mac.hexdigest()}"


def _session_id(token: str, cookie: str | None) -> str | None:
    """The live session a cookie names: signed with the current admin token (rotating the token
    signs everyone out) and not expired or signed out (the store is shared by every worker)."""
    if not cookie or "." not in cookie:
        return None
    session_id, _, _ = cookie.rpartition(".")
    if not hmac.compare_digest(_session_cookie(token, session_id), cookie):
        return None
    return session_id if _store().session_live(session_id, datetime.now(UTC)) else None


class LoginThrottle:
    """Failed sign-ins allowed per client address (and in all) per window, counted in the
    store so that every worker and pod shares the count; past that, sign-in answers 429
    without looking at the token. Addresses are kept only as an HMAC under the hash key."""

    def __init__(
        self,
        opened: store.AuditStore,
        key: bytes,
        per_address: int = 5,
        overall: int = 50,
        window_s: float = 900,
    ) -> None:
        self.store, self._key = opened, key
        self.per_address, self.overall, self.window_s = per_address, overall, window_s

    def _hash(self, address: str) -> str:
        return hmac.new(
            self._key, f"analytics-login:{address}".encode(), hashlib.sha256
        ).hexdigest()

    def retry_after(self, address: str, now: float) -> int | None:
        """Seconds to wait before trying again, or None when a try is allowed now."""
        return self.store.login_retry_after(
            self._hash(address),
            datetime.fromtimestamp(now, UTC),
            timedelta(seconds=self.window_s),
            self.per_address,
            self.overall,
        )

    def failed(self, address: str, now: float) -> None:
        self.store.login_failed(
            self._hash(address), datetime.fromtimestamp(now, UTC), timedelta(seconds=self.window_s)
        )


def _access() -> str:
    """'ok', 'login' (a token is configured and was not shown) or 'forbidden' (no token is
    configured and the service requires authentication: the dashboard is off)."""
    token = current_app.config.get("ANALYTICS_TOKEN")
    if not token:
        return "forbidden" if current_app.config.get("REQUIRE_AUTH", False) else "ok"
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return "ok" if hmac.compare_digest(given.strip().encode(), str(token).encode()) else "login"
    return "ok" if _session_id(str(token), request.cookies.get(SESSION_COOKIE)) else "login"


def _require_access() -> None:
    access = _access()
    if access == "forbidden":
        raise Forbidden("the dashboard is off: set ANALYTICS_TOKEN to enable it")
    if access == "login":
        raise Unauthorised("unauthorised")


def _secure(resp: R) -> R:
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _today() -> date:
    now: datetime = current_app.config["CLOCK"]()
    return london_day(now)


def _filter(args: Mapping[str, str]) -> store.Filter:
    def day(name: str, default: date) -> date:
        raw = args.get(name)
        if not raw:
            return default
        try:
            found = date.fromisoformat(raw)
        except ValueError as exc:
            raise BadRequest(f"'{name}' must be a date (YYYY-MM-DD)") from exc
        if not EARLIEST_DAY <= found <= LATEST_DAY:
            # Also keeps date arithmetic (a default start, time zones) far from its limits.
            raise BadRequest(f"'{name}' must be between {EARLIEST_DAY} and {LATEST_DAY}")
        return found

    end = day("to", _today())
    start = day("from", end - timedelta(days=DEFAULT_RANGE_DAYS - 1))
    if start > end:
        raise BadRequest("'from' must not be after 'to'")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise BadRequest(f"the date range may span at most {MAX_RANGE_DAYS} days")
    service = args.get("service") or None
    runtime = app_state().runtime
    if service is not None and service not in runtime.services:
        raise BadRequest("'service' is not a service of this deployment")
    policy = args.get("policy") or None
    if policy is not None and policy not in runtime.policies:
        raise BadRequest("'policy' is not a policy of this deployment")
    place = args.get("place") or None
    directory = app_state().places
    if place is not None and place not in dashboard.place_keys(runtime, directory):
        raise BadRequest("'place' is not a place of this deployment")
    return store.Filter(
        start, end, service, _policy_services(runtime, policy) if policy else (), place
    )


def _policy_services(runtime: Runtime, policy_id: str) -> tuple[str, ...]:
    return tuple(sorted(s.id for s in runtime.services.values() if s.policy == policy_id))


def figures(f: store.Filter) -> dict[str, Any]:
    """The dashboard's figures, with criterion titles and policy versions added."""
    out = _store().analytics(f)
    runtime = app_state().runtime
    titles: dict[str, str] = {}
    for policy in runtime.policies.values():
        for cid in policy.criterion_ids:
            titles.setdefault(cid, policy.title_of(cid))
    for b in out["blockingCriteria"]:
        b["title"] = titles.get(b["id"], b["id"])
    out["access"] = _store().access_counts(f)
    out["generatedAt"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["policies"] = [
        {"key": key, "id": p.info.id, "version": p.info.version, "title": p.info.title}
        for key, p in runtime.policies.items()
    ]
    out["policy"] = next(
        (
            p
            for p in runtime.policies
            if f.service_ids and f.service_ids == _policy_services(runtime, p)
        ),
        None,
    )
    out.update(dashboard.figures(_store(), f, runtime))
    # The same totals split by policy (i-Port Advance and NICE insulin pump), for the date range.
    out["byPolicy"] = {
        p: _store().analytics(replace(f, service_ids=_policy_services(runtime, p)))["totals"]
        for p in runtime.policies
    }
    return out


@bp.get("/analytics.json")
def analytics_json() -> Response:
    _require_access()
    body = orjson.dumps(figures(_filter(request.args)))
    return _secure(Response(body, mimetype="application/json"))


@bp.get("/analytics")
def analytics_page() -> Response | str:
    access = _access()
    if access == "forbidden":
        raise Forbidden("the dashboard is off: set ANALYTICS_TOKEN to enable it")
    if access == "login":
        return _login_page(error=None, status=401)
    try:
        f = _filter(request.args)
    except BadRequest as exc:  # a person typed it: a page that says what to change
        html = render_template("analytics_bad_input.html", message=exc.message)
        return _secure(Response(html, status=400, mimetype="text/html"))
    runtime = app_state().runtime
    directory = app_state().places
    policy = request.args.get("policy") or ""
    html = render_template(
        "analytics.html",
        start=f.start.isoformat(),
        end=f.end.isoformat(),
        service=f.service_id or "",
        services=sorted(dashboard.service_names(runtime).items(), key=lambda kv: kv[1]),
        policy=policy,
        policies=[(pid, dashboard.policy_name(p)) for pid, p in sorted(runtime.policies.items())],
        place=f.place or "",
        places=[(p, places.place_name(p)) for p in dashboard.place_keys(runtime, directory)],
        heading=dashboard.policy_name(runtime.policies[policy]) if policy else None,
        policy_places=sorted(
            {places.place_name(p) for pol in runtime.policies.values() for p in pol.info.places}
        ),
        token_login=bool(current_app.config.get("ANALYTICS_TOKEN")),
    )
    return _secure(Response(html, mimetype="text/html"))


@bp.get("/analytics/export.csv")
def analytics_export() -> Response:
    """The evaluations (or, with ``kind=feedback``, the feedback) of the current filters as a
    spreadsheet-ready CSV: behind the same sign-in as the dashboard."""
    _require_access()
    f = _filter(request.args)
    kind = request.args.get("kind") or "evaluations"
    if kind not in ("evaluations", "feedback"):
        raise BadRequest("'kind' must be 'evaluations' or 'feedback'")
    runtime = app_state().runtime
    s = _store()
    s.flush(10)

    def body() -> Iterator[bytes]:
        with s.engine.connect() as conn, conn.begin():
            if kind == "feedback":
                yield from dashboard.csv_stream(
                    dashboard.FEEDBACK_COLUMNS,
                    dashboard.feedback_rows(people.export_feedback(conn, f), runtime),
                )
                return
            columns = dashboard.criterion_columns(runtime)
            yield from dashboard.csv_stream(
                (*dashboard.EVALUATION_COLUMNS, *(c.header for c in columns)),
                dashboard.evaluation_rows(people.export_evaluations(conn, f), runtime, columns),
            )

    name = f"iport-cds-{kind}-{f.start.isoformat()}-to-{f.end.isoformat()}.csv"
    resp = Response(body(), mimetype="text/csv")
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return _secure(resp)


def _login_page(error: str | None, status: int) -> Response:
    html = render_template("analytics_login.html", error=error)
    resp = _secure(Response(html, status=status, mimetype="text/html"))
    resp.headers["WWW-Authenticate"] = 'Bearer realm="iport-cds analytics"'
    return resp


@bp.post("/analytics/login")
def analytics_login() -> BaseResponse:
    token = current_app.config.get("ANALYTICS_TOKEN")
    if not token:
        return _secure(redirect(url_for("analytics.analytics_page"), code=303))
    throttle = app_state().login_throttle
    if throttle is None:  # pragma: no cover - init_app always sets it
        raise RuntimeError("the analytics login is not initialised")
    address, now = request.remote_addr or "unknown", time.time()
    wait_s = throttle.retry_after(address, now)
    if wait_s is not None:
        log.warning("analytics sign-in throttled")
        throttled = _login_page(error="Too many wrong tokens; try again later.", status=429)
        throttled.headers["Retry-After"] = str(wait_s)
        return throttled
    given = request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), str(token).encode()):
        throttle.failed(address, now)
        log.warning("analytics login failed")
        return _login_page(error="That token is not right.", status=401)
    session_id = _store().start_session(datetime.now(UTC) + timedelta(hours=SESSION_HOURS))
    resp = _secure(redirect(url_for("analytics.analytics_page"), code=303))
    resp.set_cookie(
        SESSION_COOKIE,
        _session_cookie(str(token), session_id),
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        secure=_cookie_must_be_secure(),
        samesite="Strict",
        path="/",
    )
    return resp


def _cookie_must_be_secure() -> bool:
    """Secure unless the dashboard is being used on this machine: behind a TLS-terminating
    ingress the request the service sees is plain http, yet the browser's is https."""
    return not is_loopback((request.host.rpartition(":")[0] or request.host).strip("[]").lower())


@bp.post("/analytics/logout")
def analytics_logout() -> BaseResponse:
    token = current_app.config.get("ANALYTICS_TOKEN")
    session_id = _session_id(str(token), request.cookies.get(SESSION_COOKIE)) if token else None
    if session_id is not None:
        _store().end_session(session_id)  # the cookie is worthless from now on, wherever kept
    resp = _secure(redirect(url_for("analytics.analytics_page"), code=303))
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# -- CLI -----------------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Spreadsheet-safe: text that a spreadsheet would run as a formula is quoted."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Iterable[str], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        n += 1
    return n


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("must be a date, YYYY-MM-DD", param_hint=name) from exc


@click.command("export-audit")
@click.option("--since", required=True, help="First day (YYYY-MM-DD, Europe/London).")
@click.option("--until", default=None, help="Last day, inclusive (default: today).")
@click.option(
    "--feedback", is_flag=True, help="Export clinician feedback items instead of evaluations."
)
@click.option(
    "--access",
    is_flag=True,
    help="Export the access audit (every hook call, answered or refused: who, about which "
    "patient hash, what happened) for an information governance review.",
)
@click.option(
    "--output",
    "-o",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="CSV file to write (default: standard output).",
)
@with_appcontext
def export_audit(since: str, until: str | None, feedback: bool, access: bool, output: str) -> None:
    """Write the audit trail (or feedback, or the access audit) as CSV."""
    first = _parse_day(since, "--since")
    last = _parse_day(until, "--until")
    assert first is not None
    s = _store()
    s.flush(30)
    what = "access" if access else "feedback" if feedback else "audit"
    columns = {
        "access": repository.ACCESS_COLUMNS,
        "feedback": repository.FEEDBACK_COLUMNS,
        "audit": repository.AUDIT_COLUMNS,
    }[what]
    rows = s.export(what, first, last)
    if output == "-":
        n = write_csv(rows, columns, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8", newline="") as out:
            n = write_csv(rows, columns, out)
    click.echo(f"exported {n} row(s)", err=True)


@click.command("purge-audit")
@with_appcontext
def purge_audit() -> None:
    """Delete audit records and feedback older than AUDIT_RETENTION_DAYS now."""
    events, items = _store().apply_retention()
    click.echo(f"deleted {events} evaluation(s) and {items} feedback item(s)")


__all__ = ["EXEMPT_PATHS", "bp", "init_app"]
