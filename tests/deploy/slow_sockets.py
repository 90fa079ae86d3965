"""Clients that send a request a byte at a time: some still in their headers, some in their
body. Loopback only; bounded in count; the dripping stops and every socket closes on exit."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

HOOK = "/cds-services/iport-advance-order-sign"
SLOW_HEADERS = f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
SLOW_BODY = (
    f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Content-Length: 100000\r\n\r\n{"
).encode()


@contextlib.contextmanager
def slow_clients(
    port: int, headers: int, bodies: int, drip_s: float = 1.0
) -> Iterator[list[socket.socket]]:
    """``headers`` connections that never finish their headers and ``bodies`` that never finish
    their body, each sent one more byte every ``drip_s`` seconds while the block runs."""
    socks: list[socket.socket] = []
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(drip_s):
            for sock in socks:
                with contextlib.suppress(OSError):  # closed by the service
                    sock.send(b"a")

    dripper = threading.Thread(target=drip, daemon=True)
    try:
        for first in [SLOW_HEADERS] * headers + [SLOW_BODY] * bodies:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(sock)
            sock.sendall(first)
        dripper.start()
        yield socks
    finally:
        stop.set()
        if dripper.is_alive():
            dripper.join(10)
        for sock in socks:
            sock.close()
