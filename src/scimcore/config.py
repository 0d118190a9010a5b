"""The service's tunables and limits, in one place: :class:`ServiceConfig`.

Every limit a request can meet is a field here, with its default and the answer past it, and
the same table is in ``docs/limits.md``."""

from __future__ import annotations

from datetime import timedelta

from attrs import frozen

from .ratelimit import RateLimit

__all__ = ["ServiceConfig"]


@frozen
class ServiceConfig:
    """Tunables. ``max_count`` caps ``count`` (RFC 7644 §3.4.2.4); it must stay >= 100 for
    Okta's import paging (idp-quirks Okta 4). ``max_body_bytes``: a longer request body is
    answered 413 (:class:`~scimcore.errors.PayloadTooLargeError`), by the service and by every
    adapter before it reads the body whole. ``log_retention``: provisioning log entries kept
    per workspace. ``access_token_seconds``: the lifetime of the OAuth access tokens of the
    token endpoint (3600 to 21600, as Entra's gallery asks).

    The request limits (``docs/limits.md``; :mod:`scimcore.limits` enforces them):
    ``max_operations`` PATCH ``Operations`` per request (413 past it); ``max_values`` values
    of one multi-valued attribute of a user (400 ``invalidValue``); ``max_string_bytes`` UTF-8
    bytes of one string value (400 ``invalidValue``); ``max_filter_chars`` characters and
    ``max_filter_terms`` comparisons of a filter (400 ``invalidFilter``).

    ``rate_limit``: requests per second and burst per workspace, past which a request is
    answered 429 with ``Retry-After`` (:mod:`scimcore.ratelimit`); ``None``, the default for
    a host app, is no limit. The servers set it from ``SCIMCORE_RATE_LIMIT``
    (:func:`~scimcore.ratelimit.rate_limit_from_env`, on by default there)."""

    default_count: int = 100
    max_count: int = 1000
    max_body_bytes: int = 1_048_576
    log_retention: int = 10_000
    #: Groups (R5.3): served at ``/Groups`` and listed by discovery; ``False``: absent (404).
    groups: bool = True
    #: Members one group write may name (Okta pushes 256 per PATCH); ``tooMany`` above.
    max_members_per_request: int = 1000
    max_operations: int = 1000
    max_values: int = 100
    max_string_bytes: int = 8192
    max_filter_chars: int = 4096
    max_filter_terms: int = 100
    rate_limit: RateLimit | None = None
    access_token_seconds: int = 3600

    def __attrs_post_init__(self) -> None:
        if self.max_count < 100 or not 0 < self.default_count <= self.max_count:
            raise ValueError("need 0 < default_count <= max_count and max_count >= 100")
        limits = (
            self.max_body_bytes,
            self.max_operations,
            self.max_values,
            self.max_string_bytes,
            self.max_filter_chars,
            self.max_filter_terms,
        )
        if min(limits) < 1:
            raise ValueError("every limit must be at least 1")
        if not 3600 <= self.access_token_seconds <= 21600:
            raise ValueError("access_token_seconds must be between 3600 and 21600")

    @property
    def access_token_lifetime(self) -> timedelta:
        """How long an OAuth access token lives (``access_token_seconds``)."""
        return timedelta(seconds=self.access_token_seconds)
