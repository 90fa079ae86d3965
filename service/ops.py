"""Operations: health and readiness probes, Prometheus metrics, request ids.

``init_app(app)`` adds:

- ``GET /healthz``: the process is up and serving (liveness). Touches nothing else.
- ``GET /readyz``: the value sets and policy are loaded and the database (when one is
  configured, ``store.Store.ping()``: a query on its schema) answers (readiness).
- ``GET /metrics``: Prometheus text format. Under gunicorn ``PROMETHEUS_MULTIPROC_DIR`` is set
  (``deploy/gunicorn.conf.py`` does it) and the figures are summed over every worker.
- ``Cache-Control: no-store`` on every CDS Hooks answer, ``X-Content-Type-Options: nosniff``
  on every answer.
- A request id for every request: the caller's ``X-Request-ID`` when it is sane, else a new
  UUID; kept in ``flask.g.request_id``, sent back in the ``X-Request-ID`` response header,
  forwarded to the FHIR server and added to every JSON log line written during the request.

None of these endpoints needs a JWT and none reveals anything but counts and "ok". Metric labels
are closed sets (service ids, hook names, outcomes, prefetch keys, reason classes, HTTP
statuses): never a patient id, a token, a FHIR server URL or a raw request path.

Graceful shutdown is gunicorn's: on SIGTERM the master closes the listening socket and each
worker stops accepting, finishes the requests it has in flight (up to ``graceful_timeout``) and
exits. Kubernetes keeps sending traffic for a moment after it sends SIGTERM, hence the preStop
sleep in ``deploy/k8s/deployment.yaml``; see docs/deploying.md.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

from fhirdata import DataUnavailable, FhirError, FhirServerNotAllowed
from fhirdata.client import (
    FhirBadResponse,
    FhirNotFound,
    FhirTimeout,
    FhirTooLarge,
    FhirUnauthorised,
    FhirUnreachable,
)
from service.errors import PreconditionFailed, ServiceError
from service.evaluation import HookResult
from service.hookrequest import HookRequest
from service.state import app_state, state_of

log = logging.getLogger("iport_cds.ops")

REQUEST_ID_HEADER = "X-Request-ID"
# Printable, header-safe, short: anything else from a caller is replaced by a fresh UUID.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Endpoint labels: Flask endpoint name -> metric label. Anything else is "other"; a request
# that matched no route is "unmatched" (its path is never used as a label).
_ENDPOINTS = {
    "cds.discovery": "discovery",
    "cds.hook": "hook",
    "cds.feedback": "feedback",
    "ops_healthz": "healthz",
    "ops_readyz": "readyz",
    "ops_metrics": "metrics",
}
NONE = "none"  # label value when a request is not about one CDS service
UNKNOWN = "unknown"  # label value for a service id this deployment does not offer

# ------------------------------------------------------------------------------------ metrics
# Created once per process at import, so any number of create_app() calls (tests) is fine.

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

HTTP_REQUESTS = Counter(
    "iport_cds_http_requests",
    "HTTP requests answered, by endpoint, CDS service, hook and status code.",
    ["endpoint", "service", "hook", "status"],
)
HTTP_DURATION = Histogram(
    "iport_cds_http_request_duration_seconds",
    "Time from the request reaching Flask to the response leaving it.",
    ["endpoint", "service"],
    buckets=_LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge(
    "iport_cds_http_requests_in_progress",
    "Requests being handled now (summed over live workers).",
    multiprocess_mode="livesum",
)
EVALUATIONS = Counter(
    "iport_cds_evaluations",
    "Hook calls answered with cards, by service and policy outcome "
    "(not-applicable: no i-Port Advance order in the hook, so no evaluation).",
    ["service", "outcome"],
)
CARDS = Counter("iport_cds_cards", "Cards returned, by service.", ["service"])
EVALUATION_DURATION = Histogram(
    "iport_cds_evaluation_duration_seconds",
    "Whole hook evaluation (data, facts, decision, cards), by service.",
    ["service"],
    buckets=_LATENCY_BUCKETS,
)
DATA_KEYS = Counter(
    "iport_cds_data_keys",
    "Prefetch keys used from the request (source=prefetch) or read from the FHIR server "
    "(source=fetched), by service and key.",
    ["service", "key", "source"],
)
FHIR_FETCH_DURATION = Histogram(
    "iport_cds_fhir_fetch_duration_seconds",
    "Time spent reading the FHIR server for one hook call that needed it.",
    ["service"],
    buckets=_LATENCY_BUCKETS,
)
FHIR_REQUESTS = Counter(
    "iport_cds_fhir_requests",
    "HTTP requests sent to FHIR servers by successful hook calls, by service.",
    ["service"],
)
PRECONDITION_FAILED = Counter(
    "iport_cds_precondition_failed",
    "412 answers (required data could not be had), by service and reason class. "
    "timeout, unreachable, unauthorised, not_found, too_large and bad_response are FHIR fetch "
    "errors.",
    ["service", "reason"],
)


_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (FhirServerNotAllowed, "server_not_allowed"),
    (FhirTimeout, "timeout"),
    (FhirUnreachable, "unreachable"),
    (FhirUnauthorised, "unauthorised"),
    (FhirNotFound, "not_found"),
    (FhirTooLarge, "too_large"),  # before its base class: the byte budget, not the server
    (FhirBadResponse, "bad_response"),
)


def _service_labels(service_id: str | None) -> tuple[str, str]:
    """(service, hook) labels for a service id from the URL: known ids only."""
    if service_id is None:
        return NONE, NONE
    service = app_state().runtime.services.get(service_id)
    if service is None:
        return UNKNOWN, UNKNOWN
    return service.id, service.hook


def _outcome_label(result: HookResult) -> str:
    return result.outcome or "not-applicable"


def record_evaluation(service_id: str, req: HookRequest, result: HookResult) -> None:
    """Evaluation listener (called by routes.hook after each evaluation); never raises."""
    del req  # identifiers live there; metrics use none of it
    try:
        service, _hook = _service_labels(service_id)
        EVALUATIONS.labels(service, _outcome_label(result)).inc()
        CARDS.labels(service).inc(len(result.body.get("cards", [])))
        total_ms = result.timings_ms.get("total")
        if total_ms is not None:
            EVALUATION_DURATION.labels(service).observe(total_ms / 1000)
        gathered = result.gathered
        if gathered is None:
            return
        templates = _runtime_templates()
        for key in gathered.prefetched:
            DATA_KEYS.labels(service, _key_label(key, templates), "prefetch").inc()
        for key in gathered.fetched:
            DATA_KEYS.labels(service, _key_label(key, templates), "fetched").inc()
        if gathered.fetched or gathered.fhir_requests:
            FHIR_FETCH_DURATION.labels(service).observe(gathered.fetch_ms / 1000)
            FHIR_REQUESTS.labels(service).inc(gathered.fhir_requests)
    except Exception as exc:  # metrics must never break a hook answer
        log.warning("metrics listener failed: %s", type(exc).__name__)


def _runtime_templates() -> Mapping[str, str]:
    return app_state().runtime.templates


def _key_label(key: str, templates: Mapping[str, str]) -> str:
    return key if key in templates else "other"


def precondition_reason(exc: BaseException) -> str:
    """The class of a 412: which link of the exception chain caused it (no message text)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__
    for link in chain:
        for cls, label in _REASONS:
            if isinstance(link, cls):
                return label
    if any(isinstance(link, FhirError) for link in chain):
        return "fhir_error"
    if isinstance(chain[-1], DataUnavailable):
        return "no_fhir_server"  # not prefetched, and no usable fhirServer to read it from
    return "other"


def metrics_registry() -> CollectorRegistry:
    """The default registry, or under gunicorn one that sums every worker's files."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


# ------------------------------------------------------------------------------- request ids


def request_id() -> str:
    """This request's id (created on first use)."""
    rid: str | None = g.get("request_id")
    if rid is None:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        rid = supplied if _REQUEST_ID_RE.fullmatch(supplied) else str(uuid.uuid4())
        g.request_id = rid
    return rid


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to log records written while a request is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__ and has_request_context():
            record.request_id = g.get("request_id")
        return True


def _install_log_filter() -> None:
    """On the service's JSON handler(s) (service.logs), once per process."""
    for handler in logging.getLogger("iport_cds").handlers:
        if getattr(handler, "_iport_cds", False) and not any(
            isinstance(f, RequestIdFilter) for f in handler.filters
        ):
            handler.addFilter(RequestIdFilter())


# ---------------------------------------------------------------------------------- the app


def _json(body: Mapping[str, Any], status: int) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _database_check() -> str:
    # Typed (AppState.store is an AuditStore), so mypy holds readiness to what the Store offers.
    try:
        return "ok" if app_state().store.ping() else "unavailable"
    except Exception as exc:  # a failed ping is "not ready", never a 500 with a driver message
        log.warning("readiness: database ping failed: %s", type(exc).__name__)
        return "unavailable"


def _value_sets_check() -> str:
    runtime = app_state().runtime
    if not runtime.vsl.sets or not runtime.policies:
        return "unavailable"
    needed = {vs for policy in runtime.policies.values() for vs in policy.value_sets}
    return "ok" if needed <= set(runtime.vsl.sets) else "unavailable"


def healthz() -> Response:
    return _json({"status": "ok"}, 200)


def readyz() -> Response:
    checks = {"valueSets": _value_sets_check(), "database": _database_check()}
    ready = all(v == "ok" for v in checks.values())
    return _json(
        {"status": "ready" if ready else "not-ready", "checks": checks}, 200 if ready else 503
    )


def metrics() -> Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    resp = Response(encoder(metrics_registry()), status=200)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _before() -> None:
    g.ops_started = time.perf_counter()
    request_id()
    IN_PROGRESS.inc()
    g.ops_in_progress = True


def _labels() -> tuple[str, str, str]:
    rule = request.url_rule
    if rule is None:
        return "unmatched", NONE, NONE
    endpoint = _ENDPOINTS.get(str(request.endpoint), "other")
    service_id = (request.view_args or {}).get("service_id")
    service, hook = _service_labels(service_id if isinstance(service_id, str) else None)
    return endpoint, service, hook


def _after(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith("/cds-services"):
        # Cards and OperationOutcomes are about one patient: no cache may keep them.
        response.headers["Cache-Control"] = "no-store"
    try:
        endpoint, service, hook = _labels()
        HTTP_REQUESTS.labels(endpoint, service, hook, str(response.status_code)).inc()
        started = g.get("ops_started")
        if started is not None:
            HTTP_DURATION.labels(endpoint, service).observe(time.perf_counter() - started)
        reason = g.get("ops_precondition_reason")
        if reason is not None:
            PRECONDITION_FAILED.labels(service, reason).inc()
            log.info(
                "hook precondition failed",
                extra={"service": service, "hook": hook, "status": 412, "reason": reason},
            )
    except Exception as exc:  # metrics must never break an answer
        log.warning("request metrics failed: %s", type(exc).__name__)
    return response


def _teardown(_exc: BaseException | None) -> None:
    if g.pop("ops_in_progress", False):
        IN_PROGRESS.dec()


def init_app(app: Flask) -> None:
    """Register the probes, /metrics, request ids and the metrics hooks on ``app``."""
    app.add_url_rule("/healthz", "ops_healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "ops_readyz", readyz, methods=["GET"])
    app.add_url_rule("/metrics", "ops_metrics", metrics, methods=["GET"])
    # First, so the id exists before any other before_request hook (e.g. auth) can fail.
    app.before_request_funcs.setdefault(None, []).insert(0, _before)
    app.after_request(_after)
    app.teardown_request(_teardown)
    state_of(app).listeners.append(record_evaluation)
    _wrap_precondition_handler(app)
    _install_log_filter()


def _wrap_precondition_handler(app: Flask) -> None:
    """Note a 412's reason class for the metrics, then answer as the app's ServiceError handler."""
    handlers = app.error_handler_spec.get(None, {}).get(None, {})
    delegate = handlers.get(PreconditionFailed) or handlers.get(ServiceError)

    def precondition_failed(exc: PreconditionFailed) -> Any:
        g.ops_precondition_reason = precondition_reason(exc)
        if delegate is not None:
            return delegate(exc)
        return _json({"resourceType": "OperationOutcome", "issue": []}, exc.status)

    app.register_error_handler(PreconditionFailed, precondition_failed)
