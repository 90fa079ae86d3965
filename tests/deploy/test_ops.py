"""Operations endpoints over the Flask test client: /healthz, /readyz, /metrics, request ids."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from fhirdata import DataUnavailable, FhirServerNotAllowed
from fhirdata.client import (
    FhirBadResponse,
    FhirError,
    FhirNotFound,
    FhirTimeout,
    FhirTooLarge,
    FhirUnauthorised,
    FhirUnreachable,
)
from service import create_app, ops
from service.errors import PreconditionFailed
from service.evaluation import HookResult
from service.state import state_of
from tests.builders import (
    iport_device_request,
    type1_meets,
)
from tests.hooks import PREFETCH_KEYS, SERVICE, hook_request

FHIR = "https://fhir.example.nhs.uk/r4"
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
SECRET_PID = "pat-ops-9434765919"
SECRET_TOKEN = "fhir-access-token-ops-5f2b"
ORDER_SIGN = f"/cds-services/{SERVICE['order-sign']}"
MEETS = type1_meets(SECRET_PID)


def make_app(**config: Any) -> Flask:
    settings: dict[str, Any] = {
        "REQUIRE_AUTH": False,
        "FHIR_SERVER_ALLOWLIST": [FHIR],
        "CLOCK": lambda: NOW,
        **config,
    }
    app = create_app(settings)
    app.testing = True
    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


def samples(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, keyed by (name, labels)."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    out = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    snapshot: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return snapshot.get((name, frozenset(labels.items())), 0.0)


def sign_body(**kw: Any) -> dict[str, Any]:
    return hook_request(
        "order-sign", drafts=[iport_device_request(pid=SECRET_PID)], patient_id=SECRET_PID, **kw
    )


# ----------------------------------------------------------------------------- health / ready


def test_healthz_says_ok_and_nothing_else(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_fails_without_policies(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = state_of(app).runtime
    monkeypatch.setattr(runtime, "core", replace(runtime.core, policies={}))
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json["checks"]["valueSets"] == "unavailable"


def trusted_issuers(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    path = tmp_path / "issuers.json"
    path.write_text(
        json.dumps([{"iss": "https://ehr.example.nhs.uk", "jwks": {"keys": [{**jwk, "kid": "k"}]}}])
    )
    return path


def test_probes_and_metrics_need_no_token_but_hooks_do(tmp_path: Path) -> None:
    app = make_app(
        REQUIRE_AUTH=True,
        TRUSTED_ISSUERS_FILE=str(trusted_issuers(tmp_path)),
        EXTERNAL_BASE_URL="http://localhost",
    )
    with app.test_client() as client:
        before = samples(client)
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code in (200, 503)
        assert client.post(ORDER_SIGN, json=sign_body()).status_code == 401
        assert client.get("/cds-services").status_code == 401
        after = samples(client)
    name = "iport_cds_http_requests_total"
    labels = {"endpoint": "hook", "service": SERVICE["order-sign"], "hook": "order-sign"}
    assert (
        value(after, name, **labels, status="401") - value(before, name, **labels, status="401")
        == 1
    )
    disc = {"endpoint": "discovery", "service": "none", "hook": "none", "status": "401"}
    assert value(after, name, **disc) - value(before, name, **disc) == 1


# ----------------------------------------------------------------------------------- metrics


def test_metrics_is_prometheus_text(client: FlaskClient) -> None:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    names = {f.name for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    assert {
        "iport_cds_http_requests",
        "iport_cds_evaluations",
        "iport_cds_fhir_fetch_duration_seconds",
        "iport_cds_data_keys",
        "iport_cds_precondition_failed",
        "iport_cds_http_requests_in_progress",
    } <= names


def test_a_hook_call_moves_the_counters(client: FlaskClient) -> None:
    before = samples(client)
    body = sign_body(resources=MEETS)
    resp = client.post(ORDER_SIGN, json=body)
    assert resp.status_code == 200
    assert len(resp.json["cards"]) == 1
    after = samples(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    service = SERVICE["order-sign"]
    assert (
        delta(
            "iport_cds_http_requests_total",
            endpoint="hook",
            service=service,
            hook="order-sign",
            status="200",
        )
        == 1
    )
    assert delta("iport_cds_evaluations_total", service=service, outcome="meets-criteria") == 1
    assert delta("iport_cds_cards_total", service=service) == 1
    assert delta("iport_cds_evaluation_duration_seconds_count", service=service) == 1
    assert (
        delta("iport_cds_data_keys_total", service=service, key="conditions", source="prefetch")
        == 1
    )
    # Everything was prefetched: nothing read from a FHIR server.
    assert delta("iport_cds_fhir_fetch_duration_seconds_count", service=service) == 0
    text = client.get("/metrics").get_data(as_text=True)
    assert SECRET_PID not in text


def test_an_order_without_i_port_is_not_applicable(client: FlaskClient) -> None:
    before = samples(client)
    body = hook_request("order-sign", drafts=[], patient_id=SECRET_PID)
    assert client.post(ORDER_SIGN, json=body).status_code == 200
    after = samples(client)
    labels = {"service": SERVICE["order-sign"], "outcome": "not-applicable"}
    name = "iport_cds_evaluations_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def serve_meets_record() -> None:
    """Answer every read under FHIR from the MEETS record (a Patient read or a search)."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        path = urlsplit(request.url).path[len(urlsplit(FHIR).path) :].strip("/")
        rtype = path.split("/")[0]
        if "/" in path:
            found = next(r for r in MEETS if r["resourceType"] == rtype)
            return 200, {}, json.dumps(found)
        entry = [{"resource": r} for r in MEETS if r["resourceType"] == rtype]
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entry})

    responses.add_callback(responses.GET, re.compile(re.escape(FHIR) + "/.*"), callback=answer)


@responses.activate
def test_fetches_are_timed_and_counted(client: FlaskClient) -> None:
    serve_meets_record()
    before = samples(client)
    body = sign_body(fhir_server=FHIR, access_token=SECRET_TOKEN)
    resp = client.post(ORDER_SIGN, json=body, headers={"X-Request-ID": "ehr-req-42"})
    assert resp.status_code == 200, resp.json
    after = samples(client)
    service = SERVICE["order-sign"]
    assert (
        value(after, "iport_cds_fhir_fetch_duration_seconds_count", service=service)
        - value(before, "iport_cds_fhir_fetch_duration_seconds_count", service=service)
        == 1
    )
    sent = len(responses.calls)
    assert (
        value(after, "iport_cds_fhir_requests_total", service=service)
        - value(before, "iport_cds_fhir_requests_total", service=service)
        == sent
    )
    fetched = {"service": service, "key": "patient", "source": "fetched"}
    assert (
        value(after, "iport_cds_data_keys_total", **fetched)
        - value(before, "iport_cds_data_keys_total", **fetched)
        == 1
    )
    # The EHR's request id reached the FHIR server.
    assert {c.request.headers.get("X-Request-ID") for c in responses.calls} == {"ehr-req-42"}


@responses.activate
def test_412s_are_counted_by_reason(client: FlaskClient) -> None:
    service = SERVICE["order-sign"]
    name = "iport_cds_precondition_failed_total"
    before = samples(client)
    # Nothing prefetched and no fhirServer: nothing to read.
    assert client.post(ORDER_SIGN, json=sign_body()).status_code == 412
    # A FHIR server that cannot be reached (responses refuses unregistered URLs).
    resp = client.post(ORDER_SIGN, json=sign_body(fhir_server=FHIR, access_token=SECRET_TOKEN))
    assert resp.status_code == 412
    assert resp.json["resourceType"] == "OperationOutcome"  # the app's own 412 body, unchanged
    # A FHIR server not on the allowlist.
    other = "https://elsewhere.example.org/fhir"
    assert client.post(ORDER_SIGN, json=sign_body(fhir_server=other)).status_code == 412
    after = samples(client)
    for reason in ("no_fhir_server", "unreachable", "server_not_allowed"):
        assert (
            value(after, name, service=service, reason=reason)
            - value(before, name, service=service, reason=reason)
            == 1
        ), reason
    status = {"endpoint": "hook", "service": service, "hook": "order-sign", "status": "412"}
    assert (
        value(after, "iport_cds_http_requests_total", **status)
        - value(before, "iport_cds_http_requests_total", **status)
        == 3
    )


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (FhirTimeout("t"), "timeout"),
        (FhirUnreachable("u"), "unreachable"),
        (FhirUnauthorised("401"), "unauthorised"),
        (FhirNotFound("404"), "not_found"),
        (FhirBadResponse("500"), "bad_response"),
        (FhirTooLarge("over FHIR_RESPONSE_MAX_BYTES"), "too_large"),
        (FhirError("?"), "fhir_error"),
        (FhirServerNotAllowed("no"), "server_not_allowed"),
        (None, "no_fhir_server"),
    ],
)
def test_precondition_reason_classes(cause: Exception | None, reason: str) -> None:
    def fail() -> None:
        try:
            try:
                if cause is not None:
                    raise cause
                raise DataUnavailable("not prefetched")
            except FhirError as exc:
                raise DataUnavailable("could not") from exc
            except FhirServerNotAllowed as exc:
                raise DataUnavailable("not allowed") from exc
        except DataUnavailable as exc:
            raise PreconditionFailed(str(exc)) from exc

    with pytest.raises(PreconditionFailed) as caught:
        fail()
    assert ops.precondition_reason(caught.value) == reason
    assert ops.precondition_reason(PreconditionFailed("bare")) == "other"


def test_unknown_service_ids_never_become_labels(client: FlaskClient) -> None:
    probe = "no-such-service-" + uuid.uuid4().hex
    assert client.post(f"/cds-services/{probe}", json={}).status_code == 404
    assert client.get(f"/not/a/route/{probe}").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert probe not in text
    assert 'endpoint="hook",hook="unknown",service="unknown",status="404"' in text
    assert 'endpoint="unmatched",hook="none",service="none",status="404"' in text


def test_the_listener_never_raises() -> None:
    ops.record_evaluation("iport-advance-order-sign", None, HookResult(body={}))  # type: ignore[arg-type]
    broken = HookResult(body={"cards": None})  # type: ignore[dict-item]
    ops.record_evaluation("iport-advance-order-sign", None, broken)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- request ids


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the service's JSON log handler writes, for the duration of a test."""
    handler = next(
        h for h in logging.getLogger("iport_cds").handlers if getattr(h, "_iport_cds", False)
    )
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(old)


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_request_id_is_made_echoed_and_logged(client: FlaskClient, json_log: io.StringIO) -> None:
    resp = client.post(ORDER_SIGN, json=sign_body(resources=MEETS))
    assert resp.status_code == 200
    rid = resp.headers["X-Request-ID"]
    assert uuid.UUID(rid)
    (answered,) = [line for line in log_lines(json_log) if line["message"] == "hook answered"]
    assert answered["request_id"] == rid
    assert answered["hookInstance"]
    assert answered["outcome"] == "meets-criteria"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("ehr-7f3a:42", True),
        ("0b9c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4", True),
        ("x" * 129, False),
        ("bad id with spaces", False),
        ("<script>", False),
        ("", False),
    ],
)
def test_a_callers_request_id_is_kept_only_when_sane(
    client: FlaskClient, sent: str, kept: bool
) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": sent})
    rid = resp.headers["X-Request-ID"]
    if kept:
        assert rid == sent
    else:
        assert rid != sent
        assert uuid.UUID(rid)


@responses.activate
def test_a_generated_request_id_reaches_the_fhir_server(client: FlaskClient) -> None:
    """Needs routes.hook to pass ``request_id=g.request_id`` (ops makes it for every request)."""
    responses.get(f"{FHIR}/Patient/{SECRET_PID}", json=MEETS[0])
    resp = client.post(ORDER_SIGN, json=sign_body(fhir_server=FHIR, access_token=SECRET_TOKEN))
    assert resp.status_code == 412  # the searches are not registered: unreachable
    sent = {c.request.headers.get("X-Request-ID") for c in responses.calls}
    assert sent == {resp.headers["X-Request-ID"]}


@responses.activate
def test_log_lines_hold_no_token_or_patient_id(client: FlaskClient, json_log: io.StringIO) -> None:
    body = sign_body(resources=MEETS, fhir_server=FHIR, access_token=SECRET_TOKEN)
    assert client.post(ORDER_SIGN, json=body).status_code == 200
    body = sign_body(fhir_server=FHIR, access_token=SECRET_TOKEN)
    assert client.post(ORDER_SIGN, json=body).status_code == 412  # unreachable FHIR server
    client.post(
        ORDER_SIGN, json=sign_body(resources=MEETS), headers={"Authorization": "Bearer jwt.x.y"}
    )
    text = json_log.getvalue()
    lines = log_lines(json_log)
    assert any(line["message"] == "hook answered" for line in lines)
    assert any(line["message"] == "hook precondition failed" for line in lines)
    for secret in (SECRET_PID, SECRET_TOKEN, "jwt.x.y"):
        assert secret not in text


# ------------------------------------------------------------------------ capacity and headers


def test_hooks_past_the_in_flight_cap_are_answered_503_at_once() -> None:
    from tests.deploy.fhir_stub import SlowFhirServer

    with SlowFhirServer(delay_s=1.0) as fhir:
        app = make_app(HOOKS_IN_FLIGHT_MAX=1, FHIR_SERVER_ALLOWLIST=[fhir.base_url])
        body = hook_request(
            "order-sign",
            drafts=[iport_device_request(pid=SECRET_PID)],
            patient_id=SECRET_PID,
            fhir_server=fhir.base_url,
        )
        first: dict[str, int] = {}

        def slow_hook() -> None:
            first["status"] = app.test_client().post(ORDER_SIGN, json=body).status_code

        holder = threading.Thread(target=slow_hook)
        holder.start()
        while fhir.requests == 0:  # the first hook is now waiting on the FHIR server
            time.sleep(0.01)
        started = time.monotonic()
        busy = app.test_client().post(ORDER_SIGN, json=body)
        assert time.monotonic() - started < 0.2
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.json["issue"][0]["code"] == "transient"
        assert app.test_client().get("/healthz").status_code == 200
        holder.join(10)
        assert first["status"] == 200
        # The slot is free again.
        assert app.test_client().post(ORDER_SIGN, json=body).status_code == 200


def test_hooks_in_flight_default_leaves_threads_for_the_probes() -> None:
    from service.admission import hooks_in_flight_max

    assert hooks_in_flight_max({"THREADS": 8}) == 6
    assert hooks_in_flight_max({"THREADS": 2}) == 1
    assert hooks_in_flight_max({"THREADS": 8, "HOOKS_IN_FLIGHT_MAX": 3}) == 3


def test_hook_answers_are_not_cached_nor_sniffed_and_need_json(client: FlaskClient) -> None:
    body = sign_body(resources=MEETS)
    resp = client.post(ORDER_SIGN, json=body)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    form = client.post(ORDER_SIGN, data=json.dumps(body), content_type="text/plain")
    assert form.status_code == 415
    assert form.json["resourceType"] == "OperationOutcome"
    assert form.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("instance", ["<script>", "a b", "x" * 129, "ünï"])
def test_hook_instance_must_look_like_a_uuid(client: FlaskClient, instance: str) -> None:
    resp = client.post(ORDER_SIGN, json={**sign_body(resources=MEETS), "hookInstance": instance})
    assert resp.status_code == 400
    assert "hookInstance" in resp.json["issue"][0]["diagnostics"]


def test_a_slow_fhir_server_cannot_take_every_hook_slot_of_a_worker() -> None:
    from tests.deploy.fhir_stub import SlowFhirServer

    with SlowFhirServer(delay_s=1.0) as slow, SlowFhirServer() as healthy:
        app = make_app(
            HOOKS_IN_FLIGHT_MAX=4,
            FHIR_SERVER_HOOKS_MAX=1,
            FHIR_SERVER_ALLOWLIST=[slow.base_url, healthy.base_url],
        )

        def body(fhir: str) -> dict[str, Any]:
            return hook_request(
                "order-sign",
                drafts=[iport_device_request(pid=SECRET_PID)],
                patient_id=SECRET_PID,
                fhir_server=fhir,
            )

        holder = threading.Thread(
            target=lambda: app.test_client().post(ORDER_SIGN, json=body(slow.base_url))
        )
        reads = len(PREFETCH_KEYS)  # one read per prefetch key, all sent at once
        holder.start()
        end = time.monotonic() + 5
        while slow.requests < reads and time.monotonic() < end:  # the holder's reads
            time.sleep(0.01)
        refused = app.test_client().post(ORDER_SIGN, json=body(slow.base_url))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert slow.requests == reads  # the refused hook sent nothing
        served = app.test_client().post(ORDER_SIGN, json=body(healthy.base_url))
        assert served.status_code == 200
        holder.join(10)


def test_hooks_per_fhir_server_default_leaves_slots_for_the_others() -> None:
    from service.admission import hooks_per_fhir_server

    assert hooks_per_fhir_server({"THREADS": 8}) == 4
    assert hooks_per_fhir_server({"THREADS": 3}) == 1
    assert hooks_per_fhir_server({"THREADS": 8, "FHIR_SERVER_HOOKS_MAX": 2}) == 2


def test_another_spelling_of_a_fhir_server_shares_its_slots() -> None:
    from service.admission import HookAdmission

    admission = HookAdmission(limit=10, per_server=1)
    held = admission.admit("https://FHIR.example.nhs.uk:443/r4")
    assert held is not None
    assert admission.admit("https://fhir.example.nhs.uk/other-base") is None  # same server
    assert admission.admit("https://fhir.other.nhs.uk/r4") is not None
    admission.release(held)
    assert admission.admit("https://fhir.example.nhs.uk/r4") is not None


def test_two_tenants_on_one_fhir_server_have_their_own_slots() -> None:
    from service.admission import HookAdmission

    admission = HookAdmission(limit=10, per_server=1)
    assert admission.admit("https://engine.example.nhs.uk/a", ("engine", "trust-a")) is not None
    assert admission.admit("https://engine.example.nhs.uk/a", ("engine", "trust-a")) is None
    assert admission.admit("https://engine.example.nhs.uk/b", ("engine", "trust-b")) is not None
