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
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from werkzeug.wrappers.response import Response as BaseResponse

from facts.london import london_day
from fhirdata import FhirServerNotAllowed, read_types
from policy.technology import day_text
from review_app import smart
from review_app.assessment import (
    NO_NAMED_CLINICIAN,
    UNNAMED_USER,
    AlreadyWithdrawn,
    Assessment,
    AssessmentError,
    ChangedMeanwhile,
    Clinician,
    TokenRejected,
    already_withdrawn_text,
    app_text,
    assess,
    clinician,
    record_confirmation,
    today_text,
    unnamed_notice,
    withdraw_confirmation,
)
from review_app.guards import DiscoveryCache, LaunchLimiter
from review_app.pack import pdf_of
from service.evaluation import Runtime
from service.state import app_state, state_of
from service.tenants import FhirAccess, TenantDirectory
from store.keys import session_keys
from store.sessions import LAUNCH, SESSION, SessionStore

log = logging.getLogger("iport_cds.review_app")

PREFIX = "/review"
LAUNCH_PATH = f"{PREFIX}/launch"
COOKIE = "iport_review"
STATE_COOKIE = "iport_review_launch"
STATIC_FILES = ("review.css", "favicon.svg", "vendor/nhsuk-frontend.min.css")
DEFAULTS = {
    "REVIEW_APP_CLIENT_ID": "iport-cds-review",  # as registered with the authorization server
    "REVIEW_APP_SESSION_MINUTES": 60,  # a session ends then, or when its token expires
    # Fernet key(s) encrypting sessions in the database; None: generated in the instance folder
    "REVIEW_APP_SESSION_KEY": None,
    "REVIEW_APP_STANDALONE_ISS": None,  # the FHIR server of a standalone launch without ?iss=
    "REVIEW_APP_LAUNCHES_PER_MINUTE": 20,  # per client address per worker; past it 429
    "REVIEW_APP_DISCOVERY_SECONDS": 2.0,  # reading a SMART configuration, in all
    "REVIEW_APP_DISCOVERY_CACHE_SECONDS": 300,  # how long it is kept (a failure: a tenth)
}
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "font-src https://assets.nhs.uk; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

bp = Blueprint(
    "review",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
)


LAUNCH_SECONDS = 600  # from the redirect to the authorization server until its answer


def init_app(app: Flask) -> None:
    """Register the app's routes; they carry their own credential (the SMART launch).

    Launches and sessions live in the service's database (``store.sessions``), shared by
    every worker and pod; the store must be open (``dashboard.pages.init_app``) first.
    """
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    state = state_of(app)
    read_types(state.runtime.templates)  # a query of unknown scope fails at start, not at launch
    configured = app.config["REVIEW_APP_SESSION_KEY"]
    keys = session_keys(str(configured) if configured else None, Path(app.instance_path))
    state.review_sessions = SessionStore(state.store.engine, keys)
    state.smart_launch_path = LAUNCH_PATH
    cache_s = float(app.config["REVIEW_APP_DISCOVERY_CACHE_SECONDS"])
    state.smart_discovery = DiscoveryCache(cache_s, cache_s / 10)
    state.launch_limiter = LaunchLimiter(int(app.config["REVIEW_APP_LAUNCHES_PER_MINUTE"]))
    pages = ("", "launch", "callback", "confirm", "withdraw", "summary", "summary.pdf", "logout")
    paths = [f"{PREFIX}/{p}" for p in pages]
    paths += [f"{PREFIX}/static/{f}" for f in STATIC_FILES]
    state.auth_exempt.update(paths)
    app.register_blueprint(bp)


_T = TypeVar("_T")


def _initialised(value: _T | None) -> _T:
    if value is None:  # pragma: no cover - init_app always sets it
        raise RuntimeError("the review app is not initialised")
    return value


def _sessions() -> SessionStore:
    return _initialised(app_state().review_sessions)


def _runtime() -> Runtime:
    return app_state().runtime


def _launch_limiter() -> LaunchLimiter:
    return _initialised(app_state().launch_limiter)


def _discovery() -> DiscoveryCache:
    return _initialised(app_state().smart_discovery)


def _discover(base: str) -> smart.SmartConfiguration:
    deadline_s = float(current_app.config["REVIEW_APP_DISCOVERY_SECONDS"])
    return smart.discover(base, _runtime().session, deadline_s)


def _tenants() -> TenantDirectory:
    tenants = app_state().tenants
    if tenants is None:  # pragma: no cover - service.auth.init_app always sets it
        raise RuntimeError("the tenants' FHIR servers are not configured")
    return tenants


def _access(session: smart.ReviewSession) -> FhirAccess:
    """The FHIR servers of the tenant the session was started for (FhirServerNotAllowed
    when it is gone)."""
    return _tenants().access(session.issuer, session.tenant)


def _base_url() -> str:
    return str(current_app.config.get("EXTERNAL_BASE_URL") or request.host_url).rstrip("/")


def _page(template: str, status: int = 200, **values: Any) -> Response:
    html = render_template(f"review/{template}", clinical=app_text, long_date=day_text, **values)
    return Response(html, status=status, mimetype="text/html")


@bp.after_request
def _headers(resp: BaseResponse) -> BaseResponse:
    """Every answer of the app (pages, redirects, its CSS): no other site may frame it (a
    framed page's "Record that I confirm" could be clicked through a disguise), nor run
    script in it, nor keep it."""
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers.setdefault("Cache-Control", "no-store")
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
    wait_s = _launch_limiter().refuse(request.remote_addr or "")
    if wait_s is not None:
        busy = _error("Too many launches from this address: wait a minute and try again.", 429)
        busy.headers["Retry-After"] = str(wait_s)
        return busy
    try:
        # Only a tenant's own FHIR server (nothing is sent, nothing stored, before that is
        # known), and the launch remembers whose it is.
        owner, base = _tenants().owner_of(iss)
        config = _discovery().get(base, lambda: _discover(base))
    except FhirServerNotAllowed as exc:
        return _error(f"This FHIR server cannot be used: {exc}.", 400)
    except smart.LaunchError as exc:
        return _error(f"The launch could not start: {exc}.", 502)
    url, pending = smart.authorization_url(
        base,
        launch_id,
        config,
        current_app.config["REVIEW_APP_CLIENT_ID"],
        f"{_base_url()}{PREFIX}/callback",
        read_types(_runtime().templates),
        issuer=owner.issuer,
        tenant=owner.tenant,
    )
    launch_sid = _sessions().put(LAUNCH, pending.to_dict(), LAUNCH_SECONDS)
    log.info("SMART %s launch started", "EHR" if launch_id else "standalone")
    resp = redirect(url, 302)
    # The answer must come back to the browser that started the launch (no login CSRF).
    _cookie(resp, STATE_COOKIE, launch_sid, max_age=LAUNCH_SECONDS)
    return resp


def _cookie(resp: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    secure = _base_url().startswith("https://")
    resp.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=secure, samesite="Lax", path=PREFIX
    )


@bp.get("/callback")
def callback() -> BaseResponse:
    launch_sid = request.cookies.get(STATE_COOKIE)
    found = _sessions().get(LAUNCH, launch_sid)
    # The answer is for the launch this browser started, and is used once.
    same_launch = found is not None and hmac.compare_digest(
        request.args.get("state", ""), str(found.get("state", ""))
    )
    data = _sessions().pop(LAUNCH, launch_sid) if same_launch else None
    if data is None:
        return _error("This sign-in has expired or was not started here: launch again.", 400)
    if request.args.get("error") or not request.args.get("code"):
        return _error("Access was not granted by the EHR.", 403)
    try:
        session = smart.exchange_code(
            smart.PendingLaunch.from_dict(data),
            request.args["code"],
            current_app.config["REVIEW_APP_CLIENT_ID"],
            _runtime().session,
        )
    except smart.LaunchError as exc:
        return _error(f"The launch could not finish: {exc}.", 502)
    ttl = float(current_app.config["REVIEW_APP_SESSION_MINUTES"]) * 60
    if session.expires_in_s is not None:  # the session ends with its token
        ttl = min(ttl, session.expires_in_s)
    sid = _sessions().put(SESSION, session.to_dict(), ttl)
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
    return policy if isinstance(policy, str) and policy in _runtime().policies else None


def _session() -> smart.ReviewSession | None:
    data = _sessions().get(SESSION, request.cookies.get(COOKIE))
    return None if data is None else smart.ReviewSession.from_dict(data)


def _policy_id(session: smart.ReviewSession) -> str:
    wanted = request.values.get("policy") or _context_policy(session.app_context)
    policies = _runtime().policies
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
        access = _access(session)
        return session, assess(_runtime(), access, session, _policy_id(session), _now())
    except TokenRejected:
        return _end_session()
    except (AssessmentError, FhirServerNotAllowed) as exc:
        return _error(str(exc), 502)


@bp.get("/")
def assessment() -> Response:
    found = _with_clinician()
    if isinstance(found, Response):
        return found
    session, a, who = found
    return _page(
        "assessment.html",
        unnamed=unnamed_notice(session.user_ref, who),
        a=a,
        csrf=session.csrf_token,
        confirmed=request.args.get("confirmed"),
        withdrawn=request.args.get("withdrawn"),
        already=already_withdrawn_text(a, request.args.get("already", "")),
        cannot_withdraw=_cannot_withdraw(session),
        policies=_runtime().policies,
        user=session.user_ref,
    )


@bp.post("/confirm")
def confirm() -> BaseResponse:
    launched = _launched(check_csrf=True)
    if isinstance(launched, Response):
        return launched
    session, a = launched
    criterion = request.form.get("criterion", "")
    reason = request.form.get("reason", "")
    try:
        record_confirmation(
            _runtime(), _access(session), session, a, criterion, _now(), reason=reason
        )
    except TokenRejected:
        return _end_session()
    except (AssessmentError, FhirServerNotAllowed) as exc:
        return _error(str(exc), 400)
    log.info("a clinician's confirmation was recorded for criterion %s", criterion)
    query = urlencode({"policy": a.policy.info.id, "confirmed": criterion})
    return redirect(f"{PREFIX}/?{query}", 303)


@bp.post("/withdraw")
def withdraw() -> BaseResponse:
    """Withdraw a confirmation (``review_app.assessment.withdraw_confirmation``); the
    assessment is made again from the record."""
    launched = _launched(check_csrf=True)
    if isinstance(launched, Response):
        return launched
    session, a = launched
    why_not = _cannot_withdraw(session)
    if why_not:
        return _error(why_not, 403)
    try:
        form = request.form
        criterion = withdraw_confirmation(
            _runtime(),
            _access(session),
            session,
            a,
            form.get("observation", ""),
            form.get("version", ""),
            _now(),
            reason=form.get("reason", ""),
        )
    except TokenRejected:
        return _end_session()
    except AlreadyWithdrawn as exc:  # from another tab, or by a colleague: the page again
        query = urlencode({"policy": a.policy.info.id, "already": exc.observation_id})
        return redirect(f"{PREFIX}/?{query}", 303)
    except ChangedMeanwhile as exc:
        return _error(str(exc), 409)
    except (AssessmentError, FhirServerNotAllowed) as exc:
        return _error(str(exc), 400)
    log.info("a clinician's confirmation was withdrawn for criterion %s", criterion)
    query = urlencode({"policy": a.policy.info.id, "withdrawn": criterion})
    return redirect(f"{PREFIX}/?{query}", 303)


def _cannot_withdraw(session: smart.ReviewSession) -> str | None:
    """Why this session cannot withdraw a confirmation (said on the page, in place of the
    button), or None: the EHR must let the app update Observations, and the record must be
    able to say who withdrew it."""
    if not session.may("u", "Observation"):
        return (
            "The EHR did not give this app permission to change Observations (the SMART "
            "scope patient/Observation.u, or patient/Observation.write in SMART v1), so a "
            "confirmation cannot be withdrawn here: mark it entered in error in the EHR "
            "itself, or ask for the app's registration to include that scope."
        )
    if not session.user_ref:
        return NO_NAMED_CLINICIAN
    return None


def _with_clinician() -> tuple[smart.ReviewSession, Assessment, Clinician | None] | Response:
    """The session, the assessment and the signed-in clinician (None when their record
    cannot be read), or the error page to show."""
    launched = _launched()
    if isinstance(launched, Response):
        return launched
    session, a = launched
    try:
        return session, a, clinician(_runtime(), _access(session), session)
    except FhirServerNotAllowed as exc:
        return _error(str(exc), 502)


@bp.get("/summary")
def summary() -> Response:
    found = _with_clinician()
    if isinstance(found, Response):
        return found
    session, a, who = found
    user = (who.name if who else None) or (UNNAMED_USER if session.user_ref else None)
    return _page("summary.html", a=a, user=user, today=today_text(_now()))


@bp.get("/summary.pdf")
def summary_pdf() -> Response:
    """The evidence pack as an A4 PDF (review_app/pack.py), for a referral or an IFR."""
    found = _with_clinician()
    if isinstance(found, Response):
        return found
    session, a, who = found
    d = a.decision
    main = [c for c in a.criteria if c.on_pathway] or list(a.criteria)
    html = render_template(
        "review/pack.html",
        a=a,
        who=who,
        prepared_by=(who.name if who else None) or (UNNAMED_USER if session.user_ref else None),
        today=today_text(_now()),
        main=main,
        rest=[c for c in a.criteria if c not in main],
        pathway_title=a.pathway_title,
        short_name=str(a.policy.info.presentation.get("shortName") or d.policy.title),
        policy_url=d.policy.url,
        ifr_url=d.policy.funding_request_url,
        clinical=app_text,
        long_date=day_text,
    )
    resp = Response(pdf_of(html), mimetype="application/pdf")
    name = f"commissioning-evidence-{a.policy.info.id}-{london_day(_now()).isoformat()}.pdf"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.post("/logout")
def logout() -> Response:
    """End the session: its row (and so the token) is deleted, the cookie cleared."""
    session = _session()
    if session is not None and not hmac.compare_digest(
        request.form.get("csrf", ""), session.csrf_token
    ):
        return _error("This form has expired: reload the page and try again.", 403)
    _sessions().delete(request.cookies.get(COOKIE))
    log.info("a review app session was ended by its user")
    return _signed_out(_page("signed-out.html"))


def _end_session() -> Response:
    """The FHIR server refused the session's token (revoked or expired): the row goes too."""
    _sessions().delete(request.cookies.get(COOKIE))
    log.info("a review app session ended: the FHIR server refused its token")
    return _signed_out(_error(_NO_SESSION, 401))


def _signed_out(resp: Response) -> Response:
    resp.delete_cookie(COOKIE, path=PREFIX)
    return resp
