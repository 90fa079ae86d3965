"""The HTTP edge under gunicorn: request bodies streamed past the size limit, and the client
address behind a proxy (the dashboard sign-in throttle keys on it)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hooks import SERVICE
from tests.service_process import ServiceProcess

LIMIT = 10 * 1024 * 1024  # MAX_CONTENT_LENGTH's default
HOOK = f"/cds-services/{SERVICE['order-sign']}"
ANALYTICS_TOKEN = "dashboard-admin-token-for-the-edge-tests"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("edge")
    with ServiceProcess({"DATABASE_URL": f"sqlite:///{folder / 'audit.sqlite3'}"}) as service:
        yield service


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def post_chunked(svc: ServiceProcess, path: str, total: int) -> tuple[int, dict[str, str], int]:
    """POST ``total`` bytes of JSON as ``Transfer-Encoding: chunked`` (no Content-Length),
    reading the answer while still sending, as a client that sees an early answer does.

    Returns the status, the JSON body and how many body bytes were sent before the server
    answered and closed the connection.
    """
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{svc.port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    response = bytearray()
    answered = threading.Event()

    def read() -> None:
        while not _complete(bytes(response)):
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            response.extend(data)
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    piece = b" " * (64 * 1024)
    sent = 0
    try:
        while sent < total and not answered.is_set():
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        if not answered.is_set():
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server closed the connection: it has stopped reading
        pass
    reader.join(30)
    sock.close()
    head, _, body = bytes(response).partition(b"\r\n\r\n")
    assert head, "no answer at all"
    return int(head.split()[1]), json.loads(body), sent


@pytest.mark.parametrize("path", [HOOK, f"{HOOK}/feedback"])
def test_a_chunked_body_over_the_limit_is_413_with_an_operation_outcome(
    svc: ServiceProcess, path: str
) -> None:
    status, body, _sent = post_chunked(svc, path, 11 * 1024 * 1024)
    assert status == 413
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "too-long"
    assert str(LIMIT) in body["issue"][0]["diagnostics"]


def test_a_chunked_body_under_the_limit_is_read_whole(svc: ServiceProcess) -> None:
    # Whitespace is valid JSON padding around nothing: the body is read to its end and parsed.
    status, body, _sent = post_chunked(svc, HOOK, 2 * 1024 * 1024)
    assert status == 400
    assert body["issue"][0]["diagnostics"] == "the request body is not valid JSON"


def test_an_endless_chunked_body_is_not_read_past_the_limit(svc: ServiceProcess) -> None:
    status, _body, sent = post_chunked(svc, HOOK, 400 * 1024 * 1024)
    assert status == 413
    # What was sent is the limit plus what the sockets' buffers hold, not the 400 MB offered.
    assert sent < 3 * LIMIT
    health = requests.get(f"{svc.url}/healthz", timeout=5)
    assert health.status_code == 200  # the worker is still serving


# -- the client address behind a proxy -------------------------------------------------------


def _dashboard(tmp_path: Path, hops: int) -> ServiceProcess:
    return ServiceProcess(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
            "ANALYTICS_TOKEN": ANALYTICS_TOKEN,
            "TRUSTED_PROXY_HOPS": str(hops),
        }
    )


def sign_in(svc: ServiceProcess, token: str, forwarded_for: str) -> int:
    resp = requests.post(
        f"{svc.url}/analytics/login",
        data={"token": token},
        headers={"X-Forwarded-For": forwarded_for},
        allow_redirects=False,
        timeout=15,
    )
    return resp.status_code


def test_without_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_throttle(
    tmp_path: Path,
) -> None:
    with _dashboard(tmp_path, hops=0) as svc:
        statuses = [sign_in(svc, f"guess-{i}", f"203.0.113.{i}") for i in range(5)]
        assert statuses == [401] * 5
        # Every guess came from 127.0.0.1 whatever the header said: this one is throttled too.
        assert sign_in(svc, "guess-5", "198.51.100.77") == 429


def test_behind_one_trusted_proxy_forwarded_clients_are_throttled_apart(tmp_path: Path) -> None:
    with _dashboard(tmp_path, hops=1) as svc:
        statuses = [sign_in(svc, f"guess-{i}", "203.0.113.7") for i in range(6)]
        assert statuses == [401] * 5 + [429]
        # Another client behind the same proxy is not locked out by the first one's guesses.
        assert sign_in(svc, "guess-b", "198.51.100.9") == 401
        assert sign_in(svc, ANALYTICS_TOKEN, "198.51.100.9") == 303
        # Only the proxy's own entry counts: a client's forged first entry changes nothing.
        assert sign_in(svc, "guess-6", "192.0.2.1, 203.0.113.7") == 429
