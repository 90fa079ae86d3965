"""The gunicorn worker the service runs under: gunicorn's ``gthread`` worker, whose threads
get only whole requests.

gthread's event loop accepts connections and parks idle kept-alive ones, but hands a new
connection to a thread as soon as its first byte arrives, and the thread then reads the
headers and the body with blocking reads: a client sending a byte a second holds a thread for
as long as it likes, and a few dozen such clients hold them all, probes included. Here the
event loop (one selector, non-blocking reads) reads each request whole — its headers, then its
body by ``Content-Length`` or to the last chunk — before any thread sees it, as waitress does.
A thread then parses it from memory and never waits on the client:

- a request not whole within ``BODY_READ_SECONDS`` (the app's setting) is answered 408 with an
  OperationOutcome by the loop, and closed;
- a body announced or sent past ``MAX_CONTENT_LENGTH``, headers past gunicorn's limits, or
  anything that is not HTTP/1 framing the loop understands, goes to a thread as it is: the
  app or gunicorn's parser refuses it at once from what is already read (413, 400);
- the bytes held for unfinished requests are bounded per worker (``BUFFER_BUDGET``): a
  connection that would pass it goes to a thread unfinished, where the app's own read
  deadline (``service.bodies``) and hook slots bound it, as without this worker;
- the number of open connections per worker is gunicorn's ``worker_connections``;
- a worker that holds a few connections (at most its thread count) steps back from a new one
  for a moment (``ACCEPT_STEP_BACK_S`` for each it holds, at most ``ACCEPT_STEP_BACK_MAX_S``),
  so that a worker holding fewer takes it. Every worker is woken by the same waiting
  connection, and the first to call ``accept`` wins: without this, the four kept-alive
  connections of a client that opens them at once often all land on one worker, whose one GIL
  then serves them while the other worker idles (half the throughput, twice the latency,
  until they close). A connection still waiting when the moment is over is taken by whichever
  worker comes first. A worker holding more connections than threads accepts at once: among
  many connections chance spreads the load, and stepping back from each of a flood of new
  connections would only keep the probes' connections waiting behind them.

Everything else — processes, threads, keep-alive, timeouts, graceful shutdown — is gthread's.
"""

from __future__ import annotations

import contextlib
import errno
import re
import select
import selectors
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from gunicorn.workers.gthread import TConn, ThreadWorker

from service.errors import operation_outcome

BUFFER_BUDGET = 64 * 1024 * 1024  # bytes held for unfinished requests, per worker
_READ_SIZE = 64 * 1024
_FRAMING_SLACK = 64 * 1024  # a chunked body's size lines, beyond the body itself
_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"^content-length:[ \t]*([0-9]+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.IGNORECASE | re.MULTILINE)
_CONTINUE = re.compile(rb"^expect:[ \t]*100-continue", re.IGNORECASE | re.MULTILINE)
# A Content-Length that is not plain digits ("+100", "1_00", "100, 100", "Content-Length :"),
# or a folded header line (obs-fold, which hides a Transfer-Encoding): the loop refuses it
# itself, 400, rather than hand a thread a request whose framing the parser must puzzle out.
_BAD_LENGTH = re.compile(
    rb"^content-length[ \t]*:(?![ \t]*[0-9]+[ \t]*\r?$)|^content-length[ \t]+:",
    re.IGNORECASE | re.MULTILINE,
)
_FOLDED = re.compile(rb"\n[ \t]")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})[^\r\n]*\r\n")
ACCEPT_STEP_BACK_S = 0.0005  # per connection the worker already holds
ACCEPT_STEP_BACK_MAX_S = 0.002
_DEFAULT_READ_SECONDS = 10.0
_DEFAULT_MAX_BODY = 10 * 1024 * 1024


class Incomplete:
    """One request being read by the event loop: its bytes and what is still missing."""

    def __init__(self, deadline: float, head_limit: int, body_limit: int) -> None:
        self.data = bytearray()
        self.deadline = deadline
        self._head_limit = head_limit
        self._body_limit = body_limit
        self._body_start: int | None = None
        self._length: int | None = None  # of the body, when it has a Content-Length
        self._chunked = False
        self._scanned = 0  # of a chunked body: where the next chunk's size line starts
        self.expects_continue = False
        self.continued = False  # "100 Continue" has been sent
        self.malformed = False  # framing the loop refuses itself (400), never a thread's

    def feed(self, data: bytes) -> bool:
        """Add bytes; True once a thread may have the request: whole, or beyond what the loop
        reads (too large, or framing left for the parser to refuse)."""
        self.data += data
        if self._body_start is None:
            end = self.data.find(_HEAD_END)
            if end < 0:
                return len(self.data) > self._head_limit
            self._body_start = end + len(_HEAD_END)
            head = bytes(self.data[:end])
            if _BAD_LENGTH.search(head) or _FOLDED.search(head):
                self.malformed = True
                return True
            lengths = _LENGTH.findall(head)
            self._chunked = bool(_CHUNKED.search(head))
            self.expects_continue = bool(_CONTINUE.search(head))
            if (self._chunked and lengths) or len(set(lengths)) > 1:
                return True  # ambiguous framing: gunicorn's parser refuses it
            self._length = int(lengths[0]) if lengths else None
            if self._length is not None and self._length > self._body_limit:
                return True  # refused by the app from its Content-Length, unread
            self._scanned = self._body_start
        body = len(self.data) - self._body_start
        if body > self._body_limit + _FRAMING_SLACK:
            return True  # a streamed body past the limit: the app answers 413
        if self._chunked:
            return self._last_chunk_in()
        return body >= (self._length or 0)

    def _last_chunk_in(self) -> bool:
        while True:
            size = _CHUNK_SIZE.match(self.data, self._scanned)
            if size is None:
                # no whole size line yet; a malformed one goes to the parser to refuse
                line = self.data.find(b"\r\n", self._scanned)
                return line >= 0
            n = int(size.group(1), 16)
            if n == 0:  # the last chunk, then optional trailer fields, then an empty line
                rest = self.data[size.end() :]
                return rest.startswith(b"\r\n") or _HEAD_END in rest
            after = size.end() + n + 2
            if len(self.data) < after:
                return False
            self._scanned = after


def _app_settings(app: Any) -> tuple[float, int]:
    """BODY_READ_SECONDS and MAX_CONTENT_LENGTH of the Flask app this worker serves."""
    config = getattr(app, "config", None)
    if not isinstance(config, dict):
        return _DEFAULT_READ_SECONDS, _DEFAULT_MAX_BODY
    seconds = config.get("BODY_READ_SECONDS") or _DEFAULT_READ_SECONDS
    limit = config.get("MAX_CONTENT_LENGTH") or _DEFAULT_MAX_BODY
    return float(seconds), int(limit)


class BufferedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no types
    """gthread whose event loop reads each request whole before a thread gets it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: dict[Any, Incomplete] = {}  # TConn -> its request so far
        self.buffered = 0  # bytes held in ``reading``
        self.read_seconds, self.body_limit = _DEFAULT_READ_SECONDS, _DEFAULT_MAX_BODY
        self.stepping_back = False  # left a waiting connection to the other workers
        self.step_back_until = 0.0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """gthread's checks, and: no TLS in gunicorn, whose bytes the loop could not read."""
        if cfg.is_ssl:
            raise SystemExit(
                "iport-cds: the server's event loop reads plain HTTP; terminate TLS in front "
                "(the ingress or integration engine) and leave certfile/keyfile unset"
            )
        super().check_config(cfg, log)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.read_seconds, self.body_limit = _app_settings(self.wsgi)

    def enqueue_req(self, conn: Any) -> None:
        """Every path to a thread (a new connection, a kept-alive one with a new request, a
        request pipelined behind the last) goes through the loop's reading first."""
        if getattr(conn, "whole", False):
            conn.whole = False
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        incomplete = Incomplete(
            time.monotonic() + self.read_seconds, self._head_limit(), self.body_limit
        )
        self.reading[conn] = incomplete
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if conn.parser is not None and (ahead := conn.parser.unreader.take_buffered()):
            self._add(conn, incomplete, ahead)

    def _head_limit(self) -> int:
        """The longest request line and header fields gunicorn's parser accepts."""
        line = int(self.cfg.limit_request_line or 8190)
        fields = int(self.cfg.limit_request_fields or 32768)
        field_size = int(self.cfg.limit_request_field_size or 8190)
        return line + 2 + fields * (field_size + 2) + len(_HEAD_END)

    def handle(self, conn: Any) -> Any:
        try:
            return super().handle(conn)
        finally:
            _stop_reading_first(conn)

    def _on_readable(self, conn: Any, sock: Any) -> None:
        try:
            data = sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._add(conn, self.reading[conn], data)
            return
        self._forget(conn)  # the client has gone
        self.nr_conns -= 1
        conn.close()

    def _add(self, conn: Any, incomplete: Incomplete, data: bytes) -> None:
        """Feed ``data``; hand the request to a thread once it may have it."""
        self.buffered += len(data)
        ready = incomplete.feed(data) or self.buffered > BUFFER_BUDGET
        if incomplete.malformed:
            _send_now(conn.sock, _malformed_answer())
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()
            return
        if not ready:
            if incomplete.expects_continue and not incomplete.continued:
                incomplete.continued = True  # the client waits for this to send the body
                _send_now(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        whole = bytes(incomplete.data)
        self._forget(conn)
        if conn.parser is None:
            conn.init = _then_read_first(conn, whole)
        else:
            _read_first(conn.parser.unreader, whole)
        conn.whole = conn.data_ready = True
        self.enqueue_req(conn)

    def _forget(self, conn: Any) -> None:
        """Stop reading ``conn`` in the loop."""
        incomplete = self.reading.pop(conn, None)
        if incomplete is not None:
            self.buffered -= len(incomplete.data)
            with contextlib.suppress(OSError, KeyError, ValueError):  # already closed
                self.poller.unregister(conn.sock)

    def murder_pending(self) -> None:
        """gthread's, and: a request not whole by its deadline is answered 408 and closed."""
        super().murder_pending()
        now = time.monotonic()
        for conn, incomplete in list(self.reading.items()):
            if incomplete.deadline > now:
                continue
            self._forget(conn)
            _send_now(conn.sock, _timeout_answer(self.read_seconds))
            self.nr_conns -= 1
            conn.close()

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's, and: while stepping back, accepting stays off."""
        if enabled and self.stepping_back and time.monotonic() < self.step_back_until:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's, woken when a step-back is over. Once it is over and accepting again,
        a connection another worker took meanwhile ends the step-back (never a busy loop)."""
        if self.stepping_back:
            left = self.step_back_until - time.monotonic()
            if left > 0:
                timeout = min(timeout, left)
            elif self._accepting and not _any_waiting(self.sockets):
                self.stepping_back = False
        super().wait_for_and_dispatch_events(timeout)

    def accept(self, listener: Any) -> None:
        if self.stepping_back:
            self.stepping_back = False  # it is still waiting after the step-back: take it
        elif 0 < self.nr_conns <= self.cfg.threads:
            self.stepping_back = True
            self.step_back_until = time.monotonic() + min(
                self.nr_conns * ACCEPT_STEP_BACK_S, ACCEPT_STEP_BACK_MAX_S
            )
            super().set_accept_enabled(False)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(TConn(self.cfg, client_sock, client_addr, listener.getsockname()))


def _any_waiting(listeners: Any) -> bool:
    """Whether a connection waits to be accepted on any of ``listeners``."""
    try:
        readable, _, _ = select.select(listeners, [], [], 0)
    except (OSError, ValueError):  # a listener closed meanwhile (shutting down)
        return False
    return bool(readable)


def _then_read_first(conn: Any, data: bytes) -> Callable[[], None]:
    """``conn.init`` that, once gthread has made the connection's parser (in the thread),
    has the parser read the bytes the loop read before the socket."""
    init = conn.init

    def init_then_read_first() -> None:
        init()
        _read_first(conn.parser.unreader, data)
        del conn.init  # back to TConn.init for the connection's next request

    return init_then_read_first


class _ReadFirst:
    """gunicorn's socket reader's ``chunk``, returning the bytes the loop read first, in pieces
    as the socket would (the reader's ``unread`` would copy the whole buffer at every read of a
    large body), then reading the socket again."""

    def __init__(self, unreader: Any, data: bytes) -> None:
        self._unreader = unreader
        self._view = memoryview(data)
        self._at = 0

    def __call__(self, size_hint: int | None = None) -> bytes:
        if self._at >= len(self._view):
            del self._unreader.chunk
            return bytes(self._unreader.chunk(size_hint))
        piece = bytes(self._view[self._at : self._at + max(size_hint or 0, _READ_SIZE)])
        self._at += len(piece)
        return piece

    def stop(self) -> None:
        """Back to the socket, with what the request did not read (a request pipelined behind
        it) in the reader's own buffer, where gthread looks for it."""
        del self._unreader.chunk
        self._unreader.unread(bytes(self._view[self._at :]))


def _read_first(unreader: Any, data: bytes) -> None:
    unreader.chunk = _ReadFirst(unreader, data)


def _stop_reading_first(conn: Any) -> None:
    reader = getattr(conn.parser, "unreader", None)
    first = vars(reader).get("chunk") if reader is not None else None
    if isinstance(first, _ReadFirst):
        first.stop()


def _timeout_answer(seconds: float) -> bytes:
    body = orjson.dumps(
        operation_outcome("timeout", f"the request did not arrive within {seconds:g} s")
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _malformed_answer() -> bytes:
    body = orjson.dumps(
        operation_outcome(
            "invalid",
            "the request's Content-Length is not plain digits, or a header line is folded",
        )
    )
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _send_now(sock: Any, data: bytes) -> None:
    """A short answer written without waiting: what the socket's buffer takes, or nothing."""
    with contextlib.suppress(OSError):
        sock.send(data)
