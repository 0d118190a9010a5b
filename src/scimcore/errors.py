"""One error hierarchy for every SCIM failure (RFC 7644 §3.12).

Every error the core raises on purpose is a :class:`SCIMError`. It carries the HTTP status, the
``scimType`` keyword where RFC 7644 Table 9 defines one, and a human-readable ``detail``. The
service (:mod:`scimcore.service`) is the only place that turns them into HTTP responses; anything
else escaping the core is a bug and becomes a generic 500 with no traceback.
"""

from __future__ import annotations

__all__ = [
    "InvalidFilterError",
    "InvalidPathError",
    "InvalidSyntaxError",
    "InvalidTokenError",
    "InvalidValueError",
    "InvalidVersionError",
    "MethodNotAllowedError",
    "MutabilityError",
    "NoTargetError",
    "NotFoundError",
    "NotImplementedSCIMError",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "SCIMError",
    "TooManyError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UniquenessError",
]


class SCIMError(Exception):
    """Base of every SCIM error: an HTTP ``status``, an optional ``scim_type`` and a ``detail``."""

    status: int = 400
    scim_type: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def to_body(self) -> dict[str, object]:
        """The SCIM Error resource of RFC 7644 §3.12 (``status`` is a string)."""
        body: dict[str, object] = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        return body


class InvalidFilterError(SCIMError):
    """400 invalidFilter: the filter syntax is invalid or the filter is unsupported (§3.4.2.2)."""

    scim_type = "invalidFilter"


class TooManyError(SCIMError):
    """400 tooMany: the query would return more results than allowed."""

    scim_type = "tooMany"


class UniquenessError(SCIMError):
    """409 uniqueness: a value that must be unique is already taken (RFC 7643 §2.1)."""

    status = 409
    scim_type = "uniqueness"


class MutabilityError(SCIMError):
    """400 mutability: the request tried to change an immutable or read-only attribute."""

    scim_type = "mutability"


class InvalidSyntaxError(SCIMError):
    """400 invalidSyntax: the request body could not be parsed or violates the schema."""

    scim_type = "invalidSyntax"


class InvalidPathError(SCIMError):
    """400 invalidPath: a PATCH path is malformed or names no attribute (§3.5.2)."""

    scim_type = "invalidPath"


class NoTargetError(SCIMError):
    """400 noTarget: a PATCH path matched nothing where a target is required (§3.5.2)."""

    scim_type = "noTarget"


class InvalidValueError(SCIMError):
    """400 invalidValue: a required value is missing or a value is of the wrong type."""

    scim_type = "invalidValue"


class InvalidVersionError(SCIMError):
    """400 invalidVers: the requested SCIM version is not supported."""

    scim_type = "invalidVers"


class NotFoundError(SCIMError):
    """404: the resource or endpoint does not exist (in this workspace)."""

    status = 404


class UnauthorizedError(SCIMError):
    """401: the bearer token is missing, malformed, unknown, deleted or orphaned (R2.4)."""

    status = 401


class InvalidTokenError(UnauthorizedError):
    """401 for an OAuth access token that is expired, revoked, malformed or unknown: the
    response carries RFC 6750 §3's ``WWW-Authenticate: Bearer error="invalid_token"``."""


class MethodNotAllowedError(SCIMError):
    """405: the endpoint exists but does not support this HTTP method."""

    status = 405


class PreconditionFailedError(SCIMError):
    """412: ``If-Match`` did not match the resource's current version (§3.14)."""

    status = 412


class PayloadTooLargeError(SCIMError):
    """413: "one or more of the limits for this request have been exceeded" (RFC 7644 §3.12);
    the detail names the limit."""

    status = 413

    @classmethod
    def request_body(cls, limit: int) -> PayloadTooLargeError:
        """The request body is longer than ``ServiceConfig.max_body_bytes`` (``limit``)."""
        return cls(
            f"the request body is larger than the limit of {limit} bytes "
            f"(max_body_bytes): one or more of the limits for this request have been exceeded"
        )


class TooManyRequestsError(SCIMError):
    """429: the workspace sent more requests than its rate limit (``ServiceConfig.rate_limit``,
    :mod:`scimcore.ratelimit`); ``retry_after`` whole seconds, the ``Retry-After`` header."""

    status = 429

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class NotImplementedSCIMError(SCIMError):
    """501: the operation is not supported by this service provider (e.g. Bulk)."""

    status = 501
