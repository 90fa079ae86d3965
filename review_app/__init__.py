"""The SMART on FHIR assessment app every card links to: the full assessment, a clinician's
confirmation of a criterion, and the printable commissioning evidence summary.

Served by the service itself under ``/review``; registered by ``init_app(app)``. The EHR (or
the CDS Hooks Sandbox) opens ``/review/launch?iss=…&launch=…``; a standalone launch opens it
with ``iss`` alone. See ``review_app.smart`` for the launch and ``review_app.assessment`` for
how the same policy core as the cards is run.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from werkzeug.wrappers.response import Response as BaseResponse

from cds_cards.render import clinical_text, long_date
from fhirdata import FhirServerNotAllowed
from review_app import smart
from review_app.assessment import (
    Assessment,
    AssessmentError,
    assess,
    clinician_name,
    record_confirmation,
    today_text,
)
from service.evaluation import Engine

log = logging.getLogger("iport_cds.review_app")

PREFIX = "/review"
LAUNCH_PATH = f"{PREFIX}/launch"
COOKIE = "iport_review"
STATE_COOKIE = "iport_review_launch"
STATIC_FILES = ("review.css", "vendor/nhsuk-frontend.min.css")
DEFAULTS = {
    "REVIEW_APP_CLIENT_ID": "iport-cds-review",  # as registered with the authorization server
    "REVIEW_APP_SESSION_MINUTES": 60,
    "REVIEW_APP_STANDALONE_ISS": None,  # the FHIR server of a standalone launch without ?iss=
}
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "font-src https://assets.nhs.uk; form-action 'self'; base-uri 'none'"
)

bp = Blueprint(
    "review",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
)


class _State:
    """The app's server-side state: launches under way (by OAuth ``state``) and sessions."""

    def __init__(self, session_minutes: float) -> None:
        self.pending: smart.SessionStore[smart.PendingLaunch] = smart.SessionStore(600)
        self.sessions: smart.SessionStore[smart.ReviewSession] = smart.SessionStore(
            session_minutes * 60
        )


def init_app(app: Flask) -> None:
    """Register the app's routes; they carry their own credential (the SMART launch)."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.extensions["iport_cds.review_app"] = _State(float(app.config["REVIEW_APP_SESSION_MINUTES"]))
    app.extensions["iport_cds.smart_launch_path"] = LAUNCH_PATH
    paths = [f"{PREFIX}/{p}" for p in ("", "launch", "callback", "confirm", "summary")]
    paths += [f"{PREFIX}/static/{f}" for f in STATIC_FILES]
    app.extensions.setdefault("iport_cds.auth_exempt", set()).update(paths)
    app.register_blueprint(bp)


def _state() -> _State:
    state: _State = current_app.extensions["iport_cds.review_app"]
    return state


def _engine() -> Engine:
    engine: Engine = current_app.extensions["iport_cds.engine"]
    return engine


def _base_url() -> str:
    return str(current_app.config.get("EXTERNAL_BASE_URL") or request.host_url).rstrip("/")


def _page(template: str, status: int = 200, **values: Any) -> Response:
    html = render_template(
        f"review/{template}", clinical=clinical_text, long_date=long_date, **values
    )
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _error(message: str, status: int) -> Response:
    return _page("error.html", status, message=message)


@bp.get("/launch")
def launch() -> BaseResponse:
    """SMART EHR launch (``iss`` and ``launch``) or standalone launch (``iss`` only)."""
    launch_id = request.args.get("launch") or None
    iss = request.args.get("iss") or str(current_app.config["REVIEW_APP_STANDALONE_ISS"] or "")
    if not iss:
        return _error("Open this app from the EHR, or give the FHIR server as ?iss=.", 400)
    try:
        base = _engine().server_policy.check(iss)
        config = smart.discover(base, _engine().session)
    except FhirServerNotAllowed as exc:
        return _error(f"This FHIR server cannot be used: {exc}.", 400)
    except smart.LaunchError as exc:
        return _error(f"The launch could not start: {exc}.", 502)
    url, state, pending = smart.authorization_url(
        base,
        launch_id,
        config,
        current_app.config["REVIEW_APP_CLIENT_ID"],
        f"{_base_url()}{PREFIX}/callback",
    )
    _state().pending.put(pending, key=state)
    log.info("SMART %s launch started", "EHR" if launch_id else "standalone")
    resp = redirect(url, 302)
    # The answer must come back to the browser that started the launch (no login CSRF).
    _cookie(resp, STATE_COOKIE, state, max_age=600)
    return resp


def _cookie(resp: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    secure = _base_url().startswith("https://")
    resp.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=secure, samesite="Lax", path=PREFIX
    )


@bp.get("/callback")
def callback() -> BaseResponse:
    state = request.args.get("state", "")
    same_browser = hmac.compare_digest(state, request.cookies.get(STATE_COOKIE, ""))
    pending = _state().pending.pop(state) if same_browser else None
    if pending is None:
        return _error("This sign-in has expired or was not started here: launch again.", 400)
    if request.args.get("error") or not request.args.get("code"):
        return _error("Access was not granted by the EHR.", 403)
    try:
        session = smart.exchange_code(
            pending,
            request.args["code"],
            current_app.config["REVIEW_APP_CLIENT_ID"],
            _engine().session,
        )
    except smart.LaunchError as exc:
        return _error(f"The launch could not finish: {exc}.", 502)
    sid = _state().sessions.put(session, ttl_s=session.expires_in_s)
    policy = _context_policy(session.app_context)
    resp = redirect(f"{PREFIX}/" + (f"?{urlencode({'policy': policy})}" if policy else ""), 303)
    _cookie(resp, COOKIE, sid)
    resp.delete_cookie(STATE_COOKIE, path=PREFIX)
    return resp


def _context_policy(app_context: str | None) -> str | None:
    """The policy named by the card's ``appContext``, if it is one this service evaluates."""
    try:
        ctx = json.loads(app_context or "")
    except ValueError:
        return None
    policy = ctx.get("policy") if isinstance(ctx, dict) else None
    return policy if isinstance(policy, str) and policy in _engine().policies else None


def _session() -> smart.ReviewSession | None:
    return _state().sessions.get(request.cookies.get(COOKIE))


def _policy_id(session: smart.ReviewSession) -> str:
    wanted = request.values.get("policy") or _context_policy(session.app_context)
    policies = _engine().policies
    return wanted if wanted in policies else next(iter(policies))


def _now() -> datetime:
    now: datetime = current_app.config["CLOCK"]()
    return now


_NO_SESSION = "Open this app from the EHR (or launch it again): your session has ended."


def _launched(check_csrf: bool = False) -> tuple[smart.ReviewSession, Assessment] | Response:
    """The clinician's session and the assessment made now, or the error page to show."""
    session = _session()
    if session is None:
        return _error(_NO_SESSION, 401)
    if check_csrf and not hmac.compare_digest(request.form.get("csrf", ""), session.csrf_token):
        return _error("This form has expired: reload the page and try again.", 403)
    try:
        return session, assess(_engine(), session, _policy_id(session), _now())
    except (AssessmentError, FhirServerNotAllowed) as exc:
        return _error(str(exc), 502)


@bp.get("/")
def assessment() -> Response:
    launched = _launched()
    if isinstance(launched, Response):
        return launched
    session, a = launched
    return _page(
        "assessment.html",
        a=a,
        csrf=session.csrf_token,
        confirmed=request.args.get("confirmed"),
        policies=_engine().policies,
        user=session.user_ref,
    )


@bp.post("/confirm")
def confirm() -> BaseResponse:
    launched = _launched(check_csrf=True)
    if isinstance(launched, Response):
        return launched
    session, a = launched
    criterion = request.form.get("criterion", "")
    try:
        record_confirmation(_engine(), session, a, criterion, _now())
    except (AssessmentError, FhirServerNotAllowed) as exc:
        return _error(str(exc), 400)
    log.info("a clinician's confirmation was recorded for criterion %s", criterion)
    query = urlencode({"policy": a.policy.info.id, "confirmed": criterion})
    return redirect(f"{PREFIX}/?{query}", 303)


@bp.get("/summary")
def summary() -> Response:
    launched = _launched()
    if isinstance(launched, Response):
        return launched
    session, a = launched
    user = clinician_name(_engine(), session) or session.user_ref
    return _page("summary.html", a=a, user=user, today=today_text(_now()))
