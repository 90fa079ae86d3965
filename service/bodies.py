"""Request bodies never longer than MAX_CONTENT_LENGTH, however they are sent.

A body with a ``Content-Length`` over the limit is refused by werkzeug before it is read. A
streamed body (``Transfer-Encoding: chunked``, no length) is read through werkzeug's
``LimitedStream``, which stops at the limit and hands back what it has: the body is silently
cut, and its JSON reported as invalid (400). Here a streamed body that goes on past the limit
is a 413 instead; at most one byte beyond the limit is read, and the server (gunicorn) drains
only a bounded amount of the rest before closing the connection.

Slow bodies. A client may send its body a byte a second. Under the production server the
worker's event loop reads each request whole before a thread sees it
(``service.buffered_worker``), so this is the second line: for a request the loop hands on
unfinished (past its buffer budget), or another server, the thread reading the body would be
held all that while. So (under gunicorn, whose ``gunicorn.socket`` is the client's socket):

- ``read_body`` reads within ``BODY_READ_SECONDS`` in all: at that time a watchdog shuts the
  socket's read side, the blocked read returns, and the answer is 408;
- a request refused before its body was read (401, 413, 415, 503 ...) has the read side shut
  as it is answered (``close_unread_body``) and the connection closed after the answer
  (``CloseUnreadBodies``), so the server does not wait to drain a body that may never come.

A request-buffering proxy in front (an ingress) still holds slow uploads before they reach
the service at all (docs/deploying.md).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import IO, Any, cast

from flask import Request, Response, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length, get_input_stream

from fhirdata.transport import WATCHDOG
from service.errors import ServiceError

TOO_LARGE = "the request body is larger than this service accepts ({limit} bytes)"


class CappedStream(LimitedStream):
    """A streamed body read up to ``limit`` bytes; one more byte means 413."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(stream, limit, is_max=True)
        self._raw = stream

    def on_exhausted(self) -> None:
        raise RequestEntityTooLarge(TOO_LARGE.format(limit=self.limit))

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._raw.read(1):  # the limit was reached and more follows
            self.on_exhausted()
        return data


class CappedRequest(Request):
    """Flask's request whose streamed (chunked) body cannot exceed MAX_CONTENT_LENGTH."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        environ = self.environ
        if (
            limit is not None
            and get_content_length(environ) is None
            and environ.get("wsgi.input_terminated")  # the server ends the stream (chunked)
        ):
            return cast(IO[bytes], CappedStream(environ["wsgi.input"], limit))
        return get_input_stream(environ, max_content_length=limit)


_READ = "iport_cds.body_read"  # set in the WSGI environ once the body has been read


class RequestTimeout(ServiceError):
    status = 408
    code = "timeout"


def _has_body(environ: dict[str, object]) -> bool:
    return bool(get_content_length(environ)) or bool(environ.get("wsgi.input_terminated"))


def _shut_read_side(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RD)


def read_body(deadline_s: float) -> bytes:
    """The request body, read within ``deadline_s`` seconds in all, or RequestTimeout."""
    environ = request.environ
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or not _has_body(environ):
        data = request.get_data(cache=False)
        environ[_READ] = True
        return data
    late = threading.Event()

    def cut() -> None:
        late.set()
        _shut_read_side(sock)

    ident = WATCHDOG.at(time.monotonic() + deadline_s, cut)
    try:
        data = request.get_data(cache=False)
    except Exception as exc:
        if late.is_set():
            raise RequestTimeout(_TOO_SLOW.format(seconds=deadline_s)) from exc
        raise
    finally:
        WATCHDOG.cancel(ident)
    if late.is_set():
        raise RequestTimeout(_TOO_SLOW.format(seconds=deadline_s))
    environ[_READ] = True
    return data


_TOO_SLOW = "the request body did not arrive within {seconds:g} s"


def close_unread_body(resp: Response) -> Response:
    """After-request: a refusal whose body was never read closes the connection at once."""
    environ = request.environ
    sock = environ.get("gunicorn.socket")
    if (
        resp.status_code >= 400
        and not environ.get(_READ)
        and isinstance(sock, socket.socket)
        and _has_body(environ)
    ):
        environ[_CLOSE] = True
        _shut_read_side(sock)
    return resp


_CLOSE = "iport_cds.close_connection"


class CloseUnreadBodies:
    """WSGI middleware: when ``close_unread_body`` asked for it, the server is told to close
    the connection after the answer (gunicorn's ``force_close``: ``Connection: close`` is sent,
    and no drain of the unread body is tried). An app cannot send that header itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            if environ.get(_CLOSE):
                force_close = getattr(
                    getattr(start_response, "__self__", None), "force_close", None
                )
                if callable(force_close):
                    force_close()
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
