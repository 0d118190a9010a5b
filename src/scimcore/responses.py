"""SCIM responses as values: JSON bodies, SCIM Error bodies, ETags (RFC 7644 §3.12, §3.14).

Everything that decides what an answer looks like on the wire, apart from what it says: the
content type, the Error resource of a :class:`~scimcore.errors.SCIMError` with the headers
its status calls for (``WWW-Authenticate`` on 401, ``Allow`` on 405), the generic 500, and the
version tag of a resource and how ``If-Match``/``If-None-Match`` compare with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _json
from .errors import (
    InvalidTokenError,
    MethodNotAllowedError,
    PreconditionFailedError,
    SCIMError,
    TooManyRequestsError,
)
from .messages import SCIM_CONTENT_TYPE, ScimResponse

__all__ = [
    "MethodNotAllowed",
    "check_if_match",
    "error_response",
    "etag",
    "etag_matches",
    "internal_error_response",
    "json_response",
    "next_meta",
]


def json_response(
    status: int, body: Any = None, headers: Mapping[str, str] | None = None
) -> ScimResponse:
    """A response with ``body`` as ``application/scim+json`` (``None``: no body)."""
    out = {"Content-Type": SCIM_CONTENT_TYPE} if body is not None else {}
    out.update(headers or {})
    return ScimResponse(status, out, _json.dumps(body) if body is not None else b"")


class MethodNotAllowed(MethodNotAllowedError):
    """405 with the methods the endpoint allows, for the ``Allow`` header (RFC 9110 §15.5.6)."""

    def __init__(self, method: str, path: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not supported on {path}; allowed: {', '.join(allowed)}")
        self.allowed = allowed


def error_response(error: SCIMError) -> ScimResponse:
    """The SCIM Error response for ``error`` (RFC 7644 §3.12)."""
    headers = {"WWW-Authenticate": 'Bearer realm="SCIM"'} if error.status == 401 else {}
    if isinstance(error, InvalidTokenError):  # an OAuth access token (RFC 6750 §3)
        headers["WWW-Authenticate"] = 'Bearer realm="SCIM", error="invalid_token"'
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, TooManyRequestsError):  # RFC 6585 §4
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.status, error.to_body(), headers)


def internal_error_response() -> ScimResponse:
    """The answer to anything that escaped the core unexpectedly: no traceback, no detail."""
    return json_response(
        500,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "500",
            "detail": "internal server error",
        },
    )


def etag(doc: Mapping[str, Any]) -> str:
    """The ``ETag`` of a stored resource: its ``meta.version`` (a weak tag, RFC 7644 §3.14)."""
    return str(doc["meta"]["version"])


def etag_matches(header: str, version: str) -> bool:
    """RFC 7232 §3.1/§3.2 list matching, with weak comparison for If-None-Match."""
    tags = [t.strip() for t in header.split(",")]

    def bare(t: str) -> str:
        return t[2:] if t.startswith("W/") else t

    return "*" in tags or bare(version) in {bare(t) for t in tags}


def check_if_match(if_match: str | None, current: Mapping[str, Any]) -> None:
    """RFC 7644 §3.14: a write with ``If-Match`` applies only to the version it names;
    :class:`~scimcore.errors.PreconditionFailedError` (412) otherwise."""
    if if_match is not None and not etag_matches(if_match, etag(current)):
        raise PreconditionFailedError(
            f"If-Match {if_match} does not match the current version {etag(current)}"
        )


def next_meta(meta: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    """``meta`` of a resource written anew at ``stamp``: ``lastModified`` and the next
    version (``W/"n"`` to ``W/"n+1"``)."""
    version = int(str(meta["version"]).strip('W/"') or 0) + 1
    return {**meta, "lastModified": stamp, "version": f'W/"{version}"'}
