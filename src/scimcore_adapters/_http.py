"""What the Flask, WSGI and ASGI adapters share when they turn HTTP into a
:class:`~scimcore.ScimRequest` and a :class:`~scimcore.ScimResponse` back into HTTP (internal).

The request body is read under ``ServiceConfig.max_body_bytes`` by one policy,
:class:`BodyReader`: a body within the limit is read whole; a longer one is answered 413
(:class:`~scimcore.errors.PayloadTooLargeError`) and never held in memory, but read and thrown
away in chunks up to :data:`DISCARD_LIMIT`, so that a client that sends all of its body before
it reads (urllib, most IdP clients) reads the 413 instead of a connection reset. Past that
limit the adapter stops reading and the connection is closed after the 413.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

from scimcore import ScimResponse
from scimcore.errors import PayloadTooLargeError
from scimcore.service import error_response

__all__ = [
    "CHUNK",
    "DISCARD_LIMIT",
    "BodyReader",
    "Message",
    "Readable",
    "Receive",
    "Scope",
    "Send",
    "query_values",
    "read_stream",
    "wire_response",
]

#: ASGI 3 types (the ASGI adapter and the servers' middleware).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The most of an over-long body an adapter reads (and throws away) to answer 413 cleanly.
DISCARD_LIMIT = 16 * 1024 * 1024
#: The size of each read of a body being thrown away.
CHUNK = 64 * 1024


def query_values(query_string: str) -> dict[str, str]:
    """The decoded query parameters, the first value of each (blank values kept)."""
    query: dict[str, str] = {}
    if not query_string:
        return query
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(key, value)
    return query


class BodyReader:
    """One request body as it arrives, under ``limit`` bytes (the reading policy above).

    ``declared``: the ``Content-Length`` (``None``: unknown, e.g. chunked). The adapter asks
    :attr:`wanted` how much to read next (0: stop), hands each chunk to :meth:`take`, and then
    answers :meth:`response` when it is not ``None``, else passes :meth:`body` on.
    """

    def __init__(self, limit: int, declared: int | None) -> None:
        if declared is not None and declared < 0:
            declared = None
        self.limit = limit
        self.declared = declared
        self.size = 0
        self.over = declared is not None and declared > limit
        self.ended = declared == 0
        self._chunks: list[bytes] = []

    @property
    def wanted(self) -> int:
        """How many bytes to read next; 0 once the body is read or past :data:`DISCARD_LIMIT`."""
        if self.ended or self.abandoned:
            return 0
        if self.declared is not None:
            remaining = self.declared - self.size
            return remaining if not self.over else min(remaining, CHUNK)
        return self.limit + 1 - self.size if not self.over else CHUNK

    @property
    def abandoned(self) -> bool:
        """Whether more was sent than will be read: the connection must close after the 413."""
        if self.declared is not None and self.declared > DISCARD_LIMIT:
            return True
        return self.size > DISCARD_LIMIT

    def take(self, chunk: bytes) -> None:
        """One chunk read (``b""``: the body, or the connection, ended)."""
        if not chunk:
            self.ended = True
            return
        self.size += len(chunk)
        if self.declared is not None and self.size >= self.declared:
            self.ended = True
        if self.over:
            return
        if self.size > self.limit:
            self.over = True
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    def response(self) -> ScimResponse | None:
        """The 413 to answer, or ``None`` when the body is within the limit."""
        if not self.over:
            return None
        return error_response(PayloadTooLargeError.request_body(self.limit))

    def body(self) -> bytes:
        """The body read (within the limit)."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Readable(Protocol):
    """A WSGI input stream, or anything else with ``read(size)``."""

    def read(self, size: int, /) -> bytes: ...


def read_stream(stream: Readable | None, limit: int, declared: int | None) -> bytes | ScimResponse:
    """The body of a blocking stream read by the policy of :class:`BodyReader`, or the 413 to
    answer. A body declared empty (a ``GET``'s) is not read: no reader is made for it."""
    if declared == 0 or stream is None:
        return b""
    reader = BodyReader(limit, declared)
    while wanted := reader.wanted:
        reader.take(bytes(stream.read(wanted)))
    too_large = reader.response()
    return reader.body() if too_large is None else too_large


def wire_response(method: str, response: ScimResponse) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (``Content-Length`` included) and the body to send: a ``HEAD`` gets the
    headers of the ``GET`` and no body (RFC 9110 §9.3.2)."""
    headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
    return headers, response.body if method != "HEAD" else b""
