"""A reverse proxy that adds a fixed latency before forwarding to a real FHIR server.

Used by bench/fetch_path.py to put 100 ms between the service and sekmet, as a WAN FHIR
server would. Threaded, keep-alive, loopback only.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class _Server(ThreadingHTTPServer):
    # The service opens a connection per read, all at once (ten with three policies): a
    # listen backlog of 5 drops the rest of the SYNs, whose retries come a second later.
    request_queue_size = 64


def start_proxy(upstream: str, latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    """Start the proxy on a free loopback port; returns (server, base URL mirroring upstream's path)."""
    session = requests.Session()
    upstream_root = upstream.split("/fhir")[0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

        def _forward(self, method: str) -> None:
            time.sleep(latency_s)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("accept", "content-type", "authorization")
            }
            resp = session.request(
                method, upstream_root + self.path, data=body, headers=headers, timeout=30
            )
            content = resp.content.replace(upstream_root.encode(), self.server.public_root.encode())  # type: ignore[attr-defined]
            self.send_response(resp.status_code)
            self.send_header(
                "Content-Type", resp.headers.get("Content-Type", "application/fhir+json")
            )
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.public_root = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.public_root + "/fhir"  # type: ignore[attr-defined]
