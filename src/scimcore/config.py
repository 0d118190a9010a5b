"""The service's tunables and limits, in one place: :class:`ServiceConfig`."""

from __future__ import annotations

from attrs import frozen

__all__ = ["ServiceConfig"]


@frozen
class ServiceConfig:
    """Tunables. ``max_count`` caps ``count`` (RFC 7644 §3.4.2.4); it must stay >= 100 for
    Okta's import paging (idp-quirks Okta 4). ``max_body_bytes``: a longer request body is
    answered 413 (:class:`~scimcore.errors.PayloadTooLargeError`), by the service and by every
    adapter before it reads the body whole. ``log_retention``: provisioning log entries kept
    per workspace."""

    default_count: int = 100
    max_count: int = 1000
    max_body_bytes: int = 1_048_576
    log_retention: int = 10_000
    #: Groups (R5.3): served at ``/Groups`` and listed by discovery; ``False``: absent (404).
    groups: bool = True
    #: Members one group write may name (Okta pushes 256 per PATCH); ``tooMany`` above.
    max_members_per_request: int = 1000

    def __attrs_post_init__(self) -> None:
        if self.max_count < 100 or not 0 < self.default_count <= self.max_count:
            raise ValueError("need 0 < default_count <= max_count and max_count >= 100")
