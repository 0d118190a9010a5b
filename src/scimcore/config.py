"""The service's tunables and limits, in one place: :class:`ServiceConfig`."""

from __future__ import annotations

from datetime import timedelta

from attrs import frozen

__all__ = ["ServiceConfig"]


@frozen
class ServiceConfig:
    """Tunables. ``max_count`` caps ``count`` (RFC 7644 §3.4.2.4); it must stay >= 100 for
    Okta's import paging (idp-quirks Okta 4). ``max_body_bytes``: a longer request body is
    answered 413 (:class:`~scimcore.errors.PayloadTooLargeError`), by the service and by every
    adapter before it reads the body whole. ``log_retention``: provisioning log entries kept
    per workspace. ``access_token_seconds``: the lifetime of the OAuth access tokens of the
    token endpoint (3600 to 21600, as Entra's gallery asks)."""

    default_count: int = 100
    max_count: int = 1000
    max_body_bytes: int = 1_048_576
    log_retention: int = 10_000
    access_token_seconds: int = 3600

    def __attrs_post_init__(self) -> None:
        if self.max_count < 100 or not 0 < self.default_count <= self.max_count:
            raise ValueError("need 0 < default_count <= max_count and max_count >= 100")
        if not 3600 <= self.access_token_seconds <= 21600:
            raise ValueError("access_token_seconds must be between 3600 and 21600")

    @property
    def access_token_lifetime(self) -> timedelta:
        """How long an OAuth access token lives (``access_token_seconds``)."""
        return timedelta(seconds=self.access_token_seconds)
