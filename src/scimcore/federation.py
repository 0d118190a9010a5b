"""Workload identity federation (RFC 7521, RFC 7523 §2.2): an OAuth client that trusts a
federated identity (Entra's provisioning service) authenticates at the token endpoint with a
JWT that identity's issuer signed, instead of (or beside) a secret. This module holds the
records, the storage and key source protocols and the rules for the configured fields;
:mod:`scimcore.assertions` verifies the assertions.

A :class:`FederatedIdentity` of a client names the ``issuer``, ``subject`` and ``audience`` the
assertion must carry, and optionally the JWKS URL of the issuer's keys (else OpenID discovery
from the issuer). The keys come from a :class:`KeySource` the adapters provide (the core does
no I/O: :class:`scimcore_adapters.jwks.JwksKeySource` fetches them over HTTPS with a cache).

Only asymmetric algorithms (:data:`ALGORITHMS`) are accepted, and the lifetimes are read
with :data:`CLOCK_SKEW` of tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from attrs import frozen

from .errors import SCIMError

__all__ = [
    "ALGORITHMS",
    "ASSERTION_TYPE",
    "CLOCK_SKEW",
    "MAX_FIELD_LENGTH",
    "FederatedIdentity",
    "FederationStorage",
    "KeySource",
    "KeyUnavailableError",
    "allowed_url",
    "check_federation",
]

#: ``client_assertion_type`` of a JWT client assertion (RFC 7523 §2.2).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The signature algorithms accepted: asymmetric only (no ``none``, no ``HS*``).
ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
#: Tolerance for clocks that disagree, on ``exp``, ``nbf`` and ``iat``.
CLOCK_SKEW = timedelta(seconds=60)
#: Longest issuer, subject, audience or URL (Entra's limit for each field).
MAX_FIELD_LENGTH = 600
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class KeyUnavailableError(SCIMError):
    """A :class:`KeySource` could not get the issuer's keys (network, discovery, bad JWKS)."""

    status = 503


@frozen
class FederatedIdentity:
    """A federated identity a client trusts: the assertion's ``iss``, ``sub`` and ``aud``;
    ``jwks_url``: where the issuer's keys are (``None``: OpenID discovery from the issuer)."""

    id: str
    client_id: str
    issuer: str
    subject: str
    audience: str
    jwks_url: str | None
    created_at: datetime
    last_used_at: datetime | None = None


class KeySource(Protocol):
    """The issuers' public keys, for :func:`verify_assertion` (the adapters implement it)."""

    def jwks(self, issuer: str, jwks_url: str | None, kid: str | None) -> Mapping[str, Any]:
        """The issuer's JSON Web Key Set (RFC 7517 §5) from ``jwks_url``, or from the
        ``jwks_uri`` of the issuer's OpenID configuration when ``None``. A cached set may be
        answered; when it has no key ``kid``, the source may fetch it again (rate limited).
        :class:`KeyUnavailableError` when no set can be had."""


@runtime_checkable
class FederationStorage(Protocol):
    """What federation needs from a storage (memory and SQL; ``scimcore.testing``).
    Every method is one transaction."""

    def add_federation(self, federation: FederatedIdentity) -> bool:
        """Store it for an active client; ``False`` (nothing stored) if there is none."""

    def list_federations(self, client_id: str) -> Sequence[FederatedIdentity]:
        """A client's federated identities, oldest first (none once the client is deleted)."""

    def delete_federation(self, client_id: str, federation_id: str) -> bool: ...

    def federations_of(self, issuer: str, subject: str) -> Sequence[FederatedIdentity]:
        """Every client's federated identities with this issuer and subject."""

    def touch_federation(self, federation_id: str, when: datetime) -> None: ...

    def claim_assertion(self, id_hash: str, expires_at: datetime, now: datetime) -> bool:
        """Atomically note a used assertion id until ``expires_at``; ``False`` if it was
        already noted and has not expired (a replay). Ids expired at ``now`` are purged."""


def allowed_url(url: str) -> bool:
    """Whether scimcore fetches keys from ``url``: ``https``, or ``http`` on the loopback
    interface only (a local test issuer). No credentials in it, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host or parts.username or parts.password or parts.fragment:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)


def check_federation(issuer: str, subject: str, audience: str, jwks_url: str | None) -> None:
    """:class:`ValueError` unless the fields make a federated identity: each non-empty,
    printable, at most :data:`MAX_FIELD_LENGTH`; a JWKS URL (or, without one, the issuer)
    :func:`allowed_url`."""
    fields = {"issuer": issuer, "subject": subject, "audience": audience}
    if jwks_url is not None:
        fields["JWKS URL"] = jwks_url
    for name, value in fields.items():
        if not value or not value.isprintable() or value != value.strip():
            raise ValueError(f"the {name} must be printable text without surrounding spaces")
        if len(value) > MAX_FIELD_LENGTH:
            raise ValueError(f"the {name} is longer than {MAX_FIELD_LENGTH} characters")
    where = jwks_url if jwks_url is not None else issuer
    if not allowed_url(where):
        name = "JWKS URL" if jwks_url is not None else "issuer (without --jwks-url)"
        raise ValueError(
            f"the {name} must be an https URL (http only on 127.0.0.1, ::1 or localhost)"
        )
