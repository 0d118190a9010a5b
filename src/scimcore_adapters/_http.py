"""What the WSGI and ASGI adapters share when they turn HTTP into a :class:`~scimcore.ScimRequest`
(internal)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from scimcore import ScimResponse
from scimcore.errors import InvalidSyntaxError
from scimcore.service import error_response

__all__ = ["body_too_large", "query_values"]


def query_values(query_string: str) -> dict[str, str]:
    """The decoded query parameters, the first value of each (blank values kept)."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(key, value)
    return query


def body_too_large(limit: int) -> ScimResponse:
    """The answer to a body the adapter stopped reading at ``limit`` bytes."""
    return error_response(InvalidSyntaxError(f"the request body exceeds {limit} bytes"))
