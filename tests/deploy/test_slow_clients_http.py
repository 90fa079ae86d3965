"""Clients that send their body a byte a second cannot take the threads the probes need, over
real gunicorn (one worker, 8 threads, 6 hook slots)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import requests

from tests.hooks import SERVICE
from tests.service_process import ServiceProcess, free_port
from tests.unit.test_auth import KEY, public_jwk

HOOK = f"/cds-services/{SERVICE['order-sign']}"


def _slow_upload(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{".encode()
    )
    return sock


def _answer(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, OSError):
        pass
    return data


def test_healthz_answers_while_slow_uploads_are_in_progress() -> None:
    env = {"FHIR_ALLOW_LOOPBACK": "true", "BODY_READ_SECONDS": "3"}
    with ServiceProcess(env, workers=1) as svc:
        socks = [_slow_upload(svc.port) for _ in range(30)]
        probes = []
        started = time.monotonic()
        while time.monotonic() - started < 5:
            for s in socks:
                with contextlib.suppress(OSError):  # closed by the service
                    s.sendall(b" ")
            t0 = time.monotonic()
            resp = requests.get(f"{svc.url}/healthz", timeout=2)
            probes.append((resp.status_code, time.monotonic() - t0))
            time.sleep(0.5)
        answers = [_answer(s, 3) for s in socks]
        for s in socks:
            s.close()
    assert {status for status, _ in probes} == {200}
    assert max(took for _, took in probes) < 1.5
    statuses = [a.split(b" ", 2)[1] for a in answers if a.startswith(b"HTTP/1.1 ")]
    assert len(statuses) == 30
    # Six held a hook slot and were cut off at the read deadline; the rest were refused at
    # once, their bodies never read.
    assert statuses.count(b"408") == 6
    assert statuses.count(b"503") == 24
    timeout = next(a for a in answers if a.startswith(b"HTTP/1.1 408"))
    outcome = json.loads(timeout.split(b"\r\n\r\n", 1)[1])
    assert outcome["resourceType"] == "OperationOutcome"
    assert "did not arrive within 3 s" in outcome["issue"][0]["diagnostics"]


def test_a_refusal_before_the_body_is_read_closes_the_connection_at_once(
    tmp_path: Path,
) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": "https://ehr.example.nhs.uk",
                    "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]},
                    "fhir_servers": ["https://fhir.example.nhs.uk/r4"],
                }
            ]
        )
    )
    port = free_port()
    env = {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
    }
    with ServiceProcess(env, workers=1, port=port) as svc:
        socks = [_slow_upload(svc.port) for _ in range(30)]  # no JWT: 401
        started = time.monotonic()
        answers = [_answer(s, 3) for s in socks]  # the answer, then the connection closes
        took = time.monotonic() - started
        probe = requests.get(f"{svc.url}/healthz", timeout=2)
        for s in socks:
            s.close()
    assert [a.split(b" ", 2)[1] for a in answers] == [b"401"] * 30
    assert all(b"Connection: close" in a for a in answers)
    assert took < 3  # no thread waited to drain a body that comes a byte a second
    assert probe.status_code == 200
