"""A tiny FHIR server on loopback that answers every read after a delay, or drips it.

``Patient/<id>`` gets a Patient; any search gets an empty searchset Bundle. Enough for the
service to evaluate (as "insufficient information") while a request is slow on purpose, and to
see which headers the service sent (request id propagation). With ``drip_s`` the answer,
status line first, is written one byte every ``drip_s`` seconds: a socket read timeout never
fires, only a deadline on the whole exchange ends it; ``dropped`` counts the connections the
client closed mid-answer. ``drip_under`` drips only the paths under it (one tenant's base
on a host and port that another tenant's base shares), except those under ``fast_under`` (a
base nested in it); ``paths`` lists every path read.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the service opens one connection per search, all at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping the connection mid-answer is what the tests make it do."""


class _Serving:
    """Serves a handler on a free loopback port, from ``__enter__`` until ``__exit__``."""

    base_url: str

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class SlowFhirServer(_Serving):
    """``with SlowFhirServer(delay_s=1.5) as fhir: fhir.base_url``"""

    def __init__(
        self, delay_s: float = 0.0, drip_s: float = 0.0, drip_under: str = "", fast_under: str = ""
    ) -> None:
        self.delay_s = delay_s
        self.drip_s = drip_s
        self.drip_under = drip_under
        self.fast_under = fast_under
        self.paths: list[str] = []
        self.request_ids: list[str | None] = []
        self.authorizations: list[str | None] = []
        self.requests = 0
        self.dropped = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with stub._lock:
                    stub.requests += 1
                    stub.request_ids.append(self.headers.get("X-Request-ID"))
                    stub.authorizations.append(self.headers.get("Authorization"))
                    stub.paths.append(self.path)
                time.sleep(stub.delay_s)
                path = self.path.split("?", 1)[0]
                parts = [p for p in path.split("/") if p]
                body: dict[str, Any]
                if len(parts) >= 2 and parts[-2] == "Patient":
                    body = {"resourceType": "Patient", "id": parts[-1], "birthDate": "1980-01-01"}
                else:
                    body = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
                data = json.dumps(body).encode()
                fast = bool(stub.fast_under) and path.startswith(stub.fast_under)
                if stub.drip_s and path.startswith(stub.drip_under) and not fast:
                    self._drip(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, data: bytes) -> None:
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                try:
                    for i in range(len(head + data)):
                        self.wfile.write((head + data)[i : i + 1])
                        self.wfile.flush()
                        time.sleep(stub.drip_s)
                except OSError:  # the client dropped the connection
                    with stub._lock:
                        stub.dropped += 1
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._serve(Handler)


def gzip_bomb(decompressed_mib: int = 300) -> bytes:
    """A gzip answer of ``decompressed_mib`` MiB of JSON whitespace (about 300 KB for 300 MiB):
    one member inflating to a MiB, repeated (a gzip stream may hold many members)."""
    mib = gzip.compress(b" " * (1024 * 1024), 9)
    head = gzip.compress(b'{"resourceType": "Bundle", "type": "searchset", "entry": [')
    return head + mib * decompressed_mib + gzip.compress(b"]}")


class FixedAnswerServer(_Serving):
    """Answers every GET with the same bytes and headers (a gzip bomb, an endless body);
    ``requests`` counts the reads. ``with FixedAnswerServer(body, headers) as s: s.base_url``"""

    def __init__(self, body: bytes, headers: dict[str, str], chunked: bool = False) -> None:
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub.requests += 1
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                if not chunked:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if not chunked:
                        self.wfile.write(body)
                        return
                    for i in range(0, len(body), 65536):
                        part = body[i : i + 65536]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client stopped reading and dropped the connection
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._serve(Handler)
