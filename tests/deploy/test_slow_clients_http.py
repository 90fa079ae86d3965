"""Clients that send their headers or body a byte a second take no thread, over real gunicorn
with deploy/gunicorn.conf.py: its event loop reads each request whole before a thread sees it
(service/buffered_worker.py)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import requests

from tests.deploy.slow_sockets import slow_clients
from tests.hooks import SERVICE
from tests.service_process import ServiceProcess

HOOK = f"/cds-services/{SERVICE['order-sign']}"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


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
    # None reached a thread: the server's event loop held them and answered each at the
    # read deadline.
    assert statuses == [b"408"] * 30
    timeout = answers[0]
    outcome = json.loads(timeout.split(b"\r\n\r\n", 1)[1])
    assert outcome["resourceType"] == "OperationOutcome"
    assert "did not arrive within 3 s" in outcome["issue"][0]["diagnostics"]


def test_slow_headers_and_bodies_take_no_thread_over_the_production_server() -> None:
    """300 clients dripping their headers and 300 their bodies, over deploy/gunicorn.conf.py
    (2 workers x 8 threads): the probes and other clients' hooks are answered all along.
    Latency under this load is measured by bench/slow_clients.py."""
    hook = json.loads((GOLDEN / "order-sign-type1-meets.request.json").read_text())
    env = {"BODY_READ_SECONDS": "60", "ACCESS_LOG": ""}
    with ServiceProcess(env, workers=2) as svc, slow_clients(svc.port, 300, 300):
        probes, hooks = [], []
        with requests.Session() as ehr:
            for n in range(40):
                try:
                    probes.append(requests.get(f"{svc.url}/healthz", timeout=2).status_code)
                    if n % 4 == 0:
                        hooks.append(ehr.post(svc.url + HOOK, json=hook, timeout=5).status_code)
                except requests.RequestException as exc:
                    probes.append(type(exc).__name__)
                time.sleep(0.05)
    assert probes == [200] * 40
    assert hooks == [200] * 10


def test_kept_alive_pipelined_and_100_continue_requests_are_answered() -> None:
    """What the event loop reads before a thread does is what the thread then parses: two
    requests sent together get two answers, the connection stays open for a third, and a
    client that waits for "100 Continue" is told to send its body."""
    with ServiceProcess({"BODY_READ_SECONDS": "5"}) as svc:
        sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(probe * 2)
        first = _answer(sock, 1)
        sock.sendall(probe)
        second = _answer(sock, 1)
        sock.close()
        sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n".encode()
        )
        interim = sock.recv(100)
        sock.sendall(b"{}")
        final = _answer(sock, 2)
        sock.close()
    assert first.count(b"HTTP/1.1 200 OK") == 2
    assert second.count(b"HTTP/1.1 200 OK") == 1
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    # gunicorn may say "100 Continue" again (RFC 9110 allows more than one interim answer)
    final = final.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert final.startswith(b"HTTP/1.1 400 ")  # the body was read: an empty hook request


MALFORMED_FRAMING = [
    b"Content-Length: +100\r\n",
    b"Content-Length : 100\r\n",
    b"Content-Length: 1_00\r\n",
    b"Content-Length: 100, 100\r\n",
    b"Transfer-Encoding:\r\n chunked\r\n",  # obs-fold
]


def test_malformed_framing_is_refused_by_the_loop_and_takes_no_thread() -> None:
    """A Content-Length that is not plain digits, or a folded header, is answered 400 by the
    event loop itself: twenty such connections at once, held open after their headers, leave
    the probes of a one-worker service answered."""
    env = {"FHIR_ALLOW_LOOPBACK": "true", "BODY_READ_SECONDS": "30"}
    with ServiceProcess(env, workers=1) as svc:
        socks = []
        for n in range(20):
            sock = socket.create_connection(("127.0.0.1", svc.port))
            sock.sendall(
                f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
                + MALFORMED_FRAMING[n % len(MALFORMED_FRAMING)]
                + b"\r\n{"
            )
            socks.append(sock)
        probes = []
        for _ in range(5):
            try:
                probes.append(requests.get(f"{svc.url}/healthz", timeout=2).status_code)
            except requests.RequestException as exc:
                probes.append(type(exc).__name__)
        answers = [_answer(s, 3) for s in socks]
        for s in socks:
            s.close()
    assert probes == [200] * 5
    assert all(a.startswith(b"HTTP/1.1 400") for a in answers), {a[:40] for a in answers}
