"""What the WSGI and ASGI adapters share when they turn HTTP into a :class:`~scimcore.ScimRequest`
and a :class:`~scimcore.ScimResponse` back into HTTP (internal)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from scimcore import ScimResponse
from scimcore.errors import InvalidSyntaxError
from scimcore.service import error_response

__all__ = ["body_too_large", "query_values", "wire_response"]


def query_values(query_string: str) -> dict[str, str]:
    """The decoded query parameters, the first value of each (blank values kept)."""
    query: dict[str, str] = {}
    if not query_string:
        return query
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(key, value)
    return query


def body_too_large(limit: int) -> ScimResponse:
    """The answer to a body the adapter stopped reading at ``limit`` bytes."""
    return error_response(InvalidSyntaxError(f"the request body exceeds {limit} bytes"))


def wire_response(method: str, response: ScimResponse) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (``Content-Length`` included) and the body to send: a ``HEAD`` gets the
    headers of the ``GET`` and no body (RFC 9110 §9.3.2)."""
    headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
    return headers, response.body if method != "HEAD" else b""
