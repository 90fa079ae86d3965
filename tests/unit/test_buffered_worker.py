"""When the server's event loop may hand a request to a thread (service/buffered_worker.py):
once it is whole, or once the loop should read no more of it. Fed a byte at a time, as a slow
client sends it, and all at once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.buffered_worker import Incomplete

HEAD = b"POST /cds-services/x HTTP/1.1\r\nHost: x\r\n"
LIMIT = 1000


def ready_at(request: bytes, head_limit: int = 4096) -> int | None:
    """The number of bytes after which the request may go to a thread (None: never)."""
    incomplete = Incomplete(deadline=0, head_limit=head_limit, body_limit=LIMIT)
    for n in range(1, len(request) + 1):
        if incomplete.feed(request[n - 1 : n]):
            return n
    return None


def whole(request: bytes, head_limit: int = 4096) -> bool:
    incomplete = Incomplete(deadline=0, head_limit=head_limit, body_limit=LIMIT)
    return incomplete.feed(request)


CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "at"),  # at: after how many bytes it may (None: the last)
    [
        # no body: whole at the end of the headers
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", None),
        # a body of known length: whole at its last byte
        (HEAD + b"Content-Length: 5\r\n\r\nhello", len(HEAD) + 21 + 5),
        (HEAD + b"content-length:   5  \r\n\r\nhello", len(HEAD) + 25 + 5),
        # chunked: whole at the empty line after the last chunk (and any trailer fields)
        (CHUNKED + b"5\r\nhello\r\n0\r\n\r\n", None),
        (CHUNKED + b"5;ext=1\r\nhello\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", None),
        (CHUNKED + b"5\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n", None),
        # a body announced over the limit: at once, for the app to refuse unread (413)
        (HEAD + b"Content-Length: 1001\r\n\r\n", len(HEAD) + 24),
        # framing the loop does not read goes to gunicorn's parser to refuse (400)
        (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", None),
        (HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", None),
        (CHUNKED + b"zz\r\n", len(CHUNKED) + 4),
    ],
)
def test_when_a_request_may_go_to_a_thread(request_bytes: bytes, at: int | None) -> None:
    expected = len(request_bytes) if at is None else at
    assert ready_at(request_bytes) == expected
    assert whole(request_bytes)


def test_headers_past_the_parsers_limit_go_to_the_parser_to_refuse() -> None:
    endless = HEAD + b"X-A: " + b"a" * 200
    assert ready_at(endless, head_limit=100) == 101


@pytest.mark.parametrize(
    "unfinished",
    [
        HEAD,  # still in the headers
        HEAD + b"Content-Length: 5\r\n\r\nhell",
        CHUNKED + b"5\r\nhello\r\n",
        CHUNKED + b"5\r\nhel",
        CHUNKED + b"0\r\nX-Trailer: y\r\n",
    ],
)
def test_an_unfinished_request_stays_in_the_loop(unfinished: bytes) -> None:
    assert ready_at(unfinished) is None


def test_a_streamed_body_past_the_limit_goes_to_the_app_to_refuse() -> None:
    endless = CHUNKED + b"ffff\r\n" + b"x" * 70_000
    at = ready_at(endless)
    assert at is not None
    assert LIMIT < at - len(CHUNKED) < 70_000


def test_a_client_that_expects_100_continue_is_told_to_send_its_body() -> None:
    incomplete = Incomplete(deadline=0, head_limit=4096, body_limit=LIMIT)
    assert not incomplete.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert incomplete.expects_continue


def test_tls_in_gunicorn_is_refused_at_start_up(tmp_path: Path) -> None:
    """The event loop reads plain HTTP: with gunicorn terminating TLS it would read ciphertext,
    so such a configuration stops at start-up, naming what to do instead."""
    from gunicorn.config import Config

    from service.buffered_worker import BufferedThreadWorker

    cfg = Config()
    cfg.set("certfile", str(tmp_path / "cert.pem"))
    with pytest.raises(SystemExit, match="terminate TLS in front"):
        BufferedThreadWorker.check_config(cfg, logging.getLogger("test"))
    BufferedThreadWorker.check_config(Config(), logging.getLogger("test"))  # plain HTTP: fine


@pytest.mark.parametrize(
    ("framing", "malformed"),
    [
        (b"Content-Length: 2\r\n", False),
        (b"content-length:2 \r\n", False),
        (b"Content-Length: +2\r\n", True),
        (b"Content-Length : 2\r\n", True),
        (b"Content-Length: 1_0\r\n", True),
        (b"Content-Length: 2, 2\r\n", True),
        (b"Content-Length:\r\n", True),
        (b"Transfer-Encoding:\r\n chunked\r\n", True),
        (b"X-Note: a\r\n\tfolded\r\n", True),
    ],
)
def test_framing_that_is_not_plain_is_the_loops_to_refuse(framing: bytes, malformed: bool) -> None:
    incomplete = Incomplete(deadline=0, head_limit=4096, body_limit=LIMIT)
    ready = incomplete.feed(b"POST / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n{}")
    assert incomplete.malformed is malformed
    assert ready
