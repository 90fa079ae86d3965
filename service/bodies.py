"""Request bodies never longer than MAX_CONTENT_LENGTH, however they are sent.

A body with a ``Content-Length`` over the limit is refused by werkzeug before it is read. A
streamed body (``Transfer-Encoding: chunked``, no length) is read through werkzeug's
``LimitedStream``, which stops at the limit and hands back what it has: the body is silently
cut, and its JSON reported as invalid (400). Here a streamed body that goes on past the limit
is a 413 instead; at most one byte beyond the limit is read, and the server (gunicorn) drains
only a bounded amount of the rest before closing the connection.
"""

from __future__ import annotations

from typing import IO, cast

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length, get_input_stream

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
