"""The dashboard's sign-in: the ANALYTICS_TOKEN admin token (as a bearer token, or typed once
for a signed session cookie kept in the store), a shared throttle on wrong tokens (the form's and
the bearer header's alike), sign-out.

``require_access`` guards each dashboard view; ``secure`` adds the dashboard's headers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from dashboard.throttle import LoginThrottle
from fhirdata.allowlist import is_loopback
from service.errors import ServiceError, TooManyRequests, Unauthorised
from service.state import app_state

log = logging.getLogger("iport_cds.analytics")
R = TypeVar("R", bound=BaseResponse)

SESSION_COOKIE = "iport_cds_analytics"
SESSION_HOURS = 8
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


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
    return session_id if app_state().store.session_live(session_id, datetime.now(UTC)) else None


def access() -> str:
    """'ok', 'login' (a token is configured and was not shown) or 'forbidden' (no token is
    configured and the service requires authentication: the dashboard is off)."""
    token = current_app.config.get("ANALYTICS_TOKEN")
    if not token:
        return "forbidden" if current_app.config.get("REQUIRE_AUTH", False) else "ok"
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return _bearer_access(given.strip(), str(token))
    return "ok" if _session_id(str(token), request.cookies.get(SESSION_COOKIE)) else "login"


def _throttle() -> LoginThrottle:
    throttle = app_state().login_throttle
    if throttle is None:  # pragma: no cover - init_app always sets it
        raise RuntimeError("the analytics login is not initialised")
    return throttle


def _bearer_access(given: str, token: str) -> str:
    """A bearer token counts toward the same throttle as the sign-in form: past the limit the
    answer is 429 without looking at the token, so it cannot be guessed through the header."""
    throttle = _throttle()
    claim = throttle.claim(request.remote_addr or "unknown", time.time())
    if not claim.granted:
        log.warning("analytics bearer token throttled")
        raise TooManyRequests("too many wrong tokens; try again later", claim.retry_after_s)
    if hmac.compare_digest(given.encode(), token.encode()):
        throttle.right_token(claim)
        return "ok"
    log.warning("analytics bearer token refused")
    return "login"


def require_access() -> None:
    granted = access()
    if granted == "forbidden":
        raise Forbidden("the dashboard is off: set ANALYTICS_TOKEN to enable it")
    if granted == "login":
        raise Unauthorised("unauthorised")


def secure(resp: R) -> R:
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def login_page(error: str | None, status: int) -> Response:
    html = render_template("analytics_login.html", error=error)
    resp = secure(Response(html, status=status, mimetype="text/html"))
    resp.headers["WWW-Authenticate"] = 'Bearer realm="iport-cds analytics"'
    return resp


def analytics_login() -> BaseResponse:
    token = current_app.config.get("ANALYTICS_TOKEN")
    if not token:
        return secure(redirect(url_for("analytics.analytics_page"), code=303))
    throttle = _throttle()
    claim = throttle.claim(request.remote_addr or "unknown", time.time())
    if not claim.granted:
        log.warning("analytics sign-in throttled")
        throttled = login_page(error="Too many wrong tokens; try again later.", status=429)
        throttled.headers["Retry-After"] = str(claim.retry_after_s)
        return throttled
    given = request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), str(token).encode()):
        log.warning("analytics login failed")
        return login_page(error="That token is not right.", status=401)
    throttle.right_token(claim)
    expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
    session_id = app_state().store.start_session(expires)
    resp = secure(redirect(url_for("analytics.analytics_page"), code=303))
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


def analytics_logout() -> BaseResponse:
    token = current_app.config.get("ANALYTICS_TOKEN")
    session_id = _session_id(str(token), request.cookies.get(SESSION_COOKIE)) if token else None
    if session_id is not None:
        # The cookie is worthless from now on, wherever kept.
        app_state().store.end_session(session_id)
    resp = secure(redirect(url_for("analytics.analytics_page"), code=303))
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
