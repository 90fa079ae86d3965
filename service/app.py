"""The app factory: the CDS Hooks 2.0 API, with the commissioners' dashboard (``dashboard``)
and the SMART assessment app (``review_app``) mounted beside it. ``service.create_app`` is its
entry point (``gunicorn -c deploy/gunicorn.conf.py "service:create_app()"``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import uuid6
from flask import Flask, Response
from flask_cors import CORS
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import review_app
from dashboard import data as dashboard_data
from dashboard import pages as dashboard_pages
from disclosure import Disclosure
from fhirdata import FetchSettings, FhirServerPolicy, new_session, prefetch_templates
from fhirdata.breaker import OriginBreakers
from fhirdata.transport import OriginExecutors, TenantSessions
from service import audit, audit_commands, auth, ops, refusals
from service.admission import HookAdmission
from service.bodies import CappedRequest, CloseUnreadBodies, close_unread_body
from service.config import core_from_config, load_config
from service.discovery import enabled_services
from service.errors import ServiceError, operation_outcome
from service.evaluation import Runtime
from service.feedback import FeedbackHandler, override_displays
from service.logs import configure_logging
from service.routes import bp, json_response
from service.state import AppState, install

log = logging.getLogger("iport_cds")

_HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def build_runtime(config: Mapping[str, Any]) -> Runtime:
    """Everything loaded once at start-up; a malformed value set or policy file fails here."""
    core = core_from_config(config)
    for policy in core.policies.values():
        for companion in policy.companions:
            if companion not in core.policies:
                log.info(
                    "policy %s names companion %s, which is not loaded: its note is not shown",
                    policy.info.id,
                    companion,
                )
    pool = int(config["FHIR_POOL_SIZE"])
    return Runtime(
        core=core,
        services=enabled_services(core.policies.values(), config.get("PATIENT_VIEW_SPEAKS")),
        templates=prefetch_templates(
            core.vsl,
            core.criteria_system,
            {v for p in core.policies.values() for v in p.value_sets},
        ),
        server_policy=FhirServerPolicy.from_config(
            config["FHIR_SERVER_ALLOWLIST"],
            config["FHIR_INSECURE_HOSTS"],
            bool(config["FHIR_ALLOW_LOOPBACK"]),
        ),
        fetch_settings=FetchSettings(
            deadline_s=float(config["FHIR_DEADLINE_SECONDS"]),
            connect_timeout_s=float(config["FHIR_CONNECT_TIMEOUT_SECONDS"]),
            read_timeout_s=float(config["FHIR_READ_TIMEOUT_SECONDS"]),
            max_pages=int(config["FHIR_MAX_PAGES"]),
            mode=str(config["FHIR_FETCH_MODE"]),
            max_response_bytes=int(config["FHIR_RESPONSE_MAX_BYTES"]),
            max_response_compressed_bytes=int(config["FHIR_RESPONSE_MAX_COMPRESSED_BYTES"]),
            max_hook_bytes=int(config["FHIR_HOOK_MAX_BYTES"]),
            max_hook_compressed_bytes=int(config["FHIR_HOOK_MAX_COMPRESSED_BYTES"]),
        ),
        session=new_session(pool),
        fhir_sessions=TenantSessions(pool),
        executors=OriginExecutors(pool),
        breakers=OriginBreakers(
            int(config["FHIR_BREAKER_FAILURES"]), float(config["FHIR_BREAKER_COOL_OFF_SECONDS"])
        ),
        one_card_per_patient=bool(config["PATIENT_VIEW_ONE_CARD"]),
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app. ``config`` overrides defaults, the config file and IPORT_CDS_* variables."""
    app = Flask("service", instance_relative_config=True)  # its name and instance path
    app.request_class = CappedRequest  # a streamed body past MAX_CONTENT_LENGTH is 413 too
    app.after_request(close_unread_body)  # a refusal does not wait for a (slow) body
    app.wsgi_app = CloseUnreadBodies(app.wsgi_app)  # type: ignore[method-assign]
    load_config(app, config)
    app.config.setdefault("CLOCK", lambda: datetime.now(UTC))
    # Card uuids are time-ordered (UUIDv7), like the audit trail's ids: the issued_card table is
    # keyed by them.
    app.config.setdefault("UUID_FACTORY", lambda: str(uuid6.uuid7()))
    configure_logging(str(app.config["LOG_LEVEL"]))
    _trust_proxies(app)
    runtime = build_runtime(app.config)
    disclosure = Disclosure.from_setting(app.config["SMALL_NUMBER_THRESHOLD"])
    # The store first: it also holds the token ids seen, shared by every worker and pod.
    state = install(
        app,
        AppState(
            runtime=runtime,
            store=audit.open_app_store(app),
            admission=HookAdmission.from_config(app.config),
            places=dashboard_data.load_places(app, runtime),
            disclosure=disclosure,
        ),
    )
    key = audit.hash_key_of(app)
    CORS(
        app,
        resources={r"/cds-services*": {"origins": app.config["CORS_ORIGINS"]}},
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
        max_age=600,
    )
    audit.init_app(app, state, key)
    state.feedback_handler = FeedbackHandler(
        state.store,
        app.config["CLOCK"],
        override_displays(runtime),
        store_comments=_keep_feedback_comments(app, state),
    )
    dashboard_pages.init_app(app, state, key)
    audit_commands.init_app(app)
    refusals.init_app(  # before authentication: a throttled client's token is not read
        app,
        refusals.RefusalLimiter(
            int(app.config["REFUSED_CALLS_BURST"]), float(app.config["REFUSED_CALLS_PER_MINUTE"])
        ),
    )
    auth.init_app(app, runtime.session, state.store)
    app.register_blueprint(bp)
    _register_error_handlers(app)
    ops.init_app(app)
    review_app.init_app(app)  # the SMART assessment app the cards link to
    return app


def _keep_feedback_comments(app: Flask, state: AppState) -> bool:
    """FEEDBACK_STORE_COMMENTS, checked; when it is off, comment texts stored while it was on
    are deleted now (their lengths stay), so turning it off leaves none behind."""
    keep = app.config["FEEDBACK_STORE_COMMENTS"]
    if not isinstance(keep, bool):
        raise ValueError(f"FEEDBACK_STORE_COMMENTS must be true or false (got {keep!r})")
    if not keep:
        deleted = state.store.forget_feedback_comments()
        if deleted:
            log.info(
                "FEEDBACK_STORE_COMMENTS is off: the text of %d stored feedback comments was "
                "deleted (their lengths are kept)",
                deleted,
            )
    return keep


def _trust_proxies(app: Flask) -> None:
    """With TRUSTED_PROXY_HOPS = n > 0, the client address is the one the n-th proxy from
    this service put in X-Forwarded-For (werkzeug's ProxyFix); with 0 the header is ignored,
    so a client cannot choose its own address (the dashboard sign-in throttle keys on it).
    Only the address: the scheme and host are not taken from forwarded headers."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(
            f"TRUSTED_PROXY_HOPS must be a whole number of proxies, 0 or more (got {hops!r})"
        )
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0
        )


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        resp = json_response(operation_outcome(exc.code, exc.message), exc.status)
        if exc.retry_after_s is not None:
            resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_ISSUE_CODES.get(status, "invalid" if status < 500 else "exception")
        return json_response(operation_outcome(code, exc.description or exc.name), status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # The type only: an exception's message could quote request data.
        log.error("unexpected error handling a request: %s", type(exc).__name__)
        return json_response(
            operation_outcome("exception", "internal error; see the service log"), 500
        )
