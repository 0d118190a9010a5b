"""Client assertions at the token endpoint (RFC 7521 §4.2, RFC 7523 §2.2, §3): verified with
PyJWT (the ``federation`` extra, imported only here and only when an assertion arrives).

:func:`verify_assertion` checks the signature with an asymmetric algorithm of
:data:`~scimcore.federation.ALGORITHMS` (never ``none``, never HMAC) against the issuer's key
from a :class:`~scimcore.federation.KeySource`, then ``iss``, ``sub``, ``aud``, and the
lifetimes ``exp`` (required), ``nbf`` and ``iat`` against the :class:`~scimcore.runtime.Runtime`
clock with :data:`~scimcore.federation.CLOCK_SKEW`. :class:`ClientAssertions` is the token
endpoint's side: which client, its state, the one-time ``jti`` (stored as a hash until the
assertion expires; an assertion without one is accepted, see docs/decisions.md), the refusal
log. An assertion is never logged, stored or echoed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from .errors import SCIMError
from .federation import (
    ALGORITHMS,
    ASSERTION_TYPE,
    CLOCK_SKEW,
    FederatedIdentity,
    FederationStorage,
    KeySource,
    KeyUnavailableError,
)
from .oauth_clients import CLIENT_ACTIVE, TOUCH_INTERVAL, ClientGrant, OAuthClients
from .storage import Workspace
from .workspaces import REFUSAL_LOG_INTERVAL

__all__ = ["AssertionRefusedError", "ClientAssertions", "assertion_support", "verify_assertion"]

#: Longest assertion read (an Entra token is about 1.5 KB).
_MAX_ASSERTION = 16 * 1024
_NAMED = frozenset({"none", "HS256", "HS384", "HS512", *ALGORITHMS})

_log = logging.getLogger(__name__)


class AssertionRefusedError(SCIMError):
    """A client assertion was refused (RFC 7521 §4.2.1: ``invalid_client``, 401); the token
    endpoint answers its ``detail``, which never quotes the assertion. ``status`` 400: the
    request itself is at fault (``invalid_request``)."""

    status = 401


def _jwt() -> ModuleType:
    try:
        import jwt
    except ImportError:
        raise KeyUnavailableError(
            "client assertions need PyJWT: pip install 'scimcore[federation]'"
        ) from None
    return jwt


def assertion_support() -> bool:
    """Whether PyJWT (with cryptography) is installed, so assertions can be verified."""
    try:
        _jwt().get_algorithm_by_name("RS256")
    except (KeyUnavailableError, NotImplementedError):
        return False
    return True


def _refused(detail: str) -> AssertionRefusedError:
    return AssertionRefusedError(detail)


def _unverified(jwt: ModuleType, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, before any check: for choosing the key and the federation only."""
    if len(assertion) > _MAX_ASSERTION:
        raise _refused("the client assertion is too long")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _refused("the client assertion is not a well-formed signed JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        name = f"'{alg}'" if isinstance(alg, str) and alg in _NAMED else "its algorithm"
        raise _refused(
            f"the client assertion is signed with {name}: only asymmetric algorithms "
            f"are accepted ({', '.join(ALGORITHMS)})"
        )
    return header, claims


def _matching(
    federations: Sequence[FederatedIdentity], claims: Mapping[str, Any]
) -> FederatedIdentity:
    """The client's federation the (unverified) claims name, or a refusal saying which
    claim matches none (never quoting a value)."""
    by_issuer = [f for f in federations if f.issuer == claims.get("iss")]
    if not by_issuer:
        raise _refused("the client assertion's issuer (iss) is not trusted by this client")
    by_subject = [f for f in by_issuer if f.subject == claims.get("sub")]
    if not by_subject:
        raise _refused("the client assertion's subject (sub) is not trusted by this client")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    return next((f for f in by_subject if f.audience in audiences), by_subject[0])


def _key(jwt: ModuleType, jwks: Mapping[str, Any], kid: str | None, alg: str) -> Any:
    """The public key to verify with: the JWKS key ``kid`` (or its only key without one),
    built by PyJWT for ``alg`` (a key of another type or algorithm is refused)."""
    keys = jwks.get("keys")
    keys = [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
    keys = [k for k in keys if k.get("use", "sig") == "sig"]  # not an encryption key
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    elif len(keys) != 1:
        keys = []
    if not keys:
        raise _refused("the client assertion's signing key (kid) is not among the issuer's keys")
    if keys[0].get("alg", alg) != alg:
        raise _refused("the client assertion's algorithm is not the one of its signing key")
    try:
        return jwt.PyJWK(keys[0], algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise _refused("the issuer's key for this client assertion is unusable") from None


def _instant(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refused(f"the client assertion's {name} is not a number")
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise _refused(f"the client assertion's {name} is out of range") from None


def _check_times(claims: Mapping[str, Any], now: datetime) -> datetime:
    """``exp`` (required), ``nbf`` and ``iat`` against ``now`` with :data:`CLOCK_SKEW`;
    the expiry."""
    expires = _instant(claims, "exp")
    if expires is None:
        raise _refused("the client assertion has no exp claim")
    if now >= expires + CLOCK_SKEW:
        raise _refused("the client assertion has expired")
    not_before = _instant(claims, "nbf")
    if not_before is not None and now + CLOCK_SKEW < not_before:
        raise _refused("the client assertion is not valid yet (nbf)")
    issued = _instant(claims, "iat")
    if issued is not None and now + CLOCK_SKEW < issued:
        raise _refused("the client assertion is issued in the future (iat)")
    return expires


def verify_assertion(
    assertion: str,
    federations: Sequence[FederatedIdentity],
    keys: KeySource,
    now: datetime,
) -> tuple[FederatedIdentity, Mapping[str, Any]]:
    """The federation of ``federations`` that ``assertion`` proves, and its verified claims;
    :class:`AssertionRefusedError` (or :class:`KeyUnavailableError`) otherwise."""
    jwt = _jwt()
    header, unverified = _unverified(jwt, assertion)
    federation = _matching(federations, unverified)
    kid = header.get("kid")
    kid = kid if isinstance(kid, str) else None
    jwks = keys.jwks(federation.issuer, federation.jwks_url, kid)
    key = _key(jwt, jwks, kid, header["alg"])
    options = {
        "require": ["iss", "sub", "aud", "exp"],
        "verify_exp": False,  # the lifetimes are read from the Runtime clock: _check_times
        "verify_nbf": False,
        "verify_iat": False,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,
            algorithms=[header["alg"]],
            audience=federation.audience,
            issuer=federation.issuer,
            options=options,
        )
    except jwt.InvalidAudienceError:
        raise _refused("the client assertion's audience (aud) is not this client's") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _refused(f"the client assertion has no {exc.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise _refused("the client assertion's signature does not verify") from None
    except jwt.PyJWTError:
        raise _refused("the client assertion does not verify") from None
    _check_times(claims, now)
    return federation, claims


def _id_hash(claims: Mapping[str, Any]) -> str | None:
    """What is stored of a ``jti``: the SHA-256 of issuer and id; ``None`` without one."""
    jti = claims.get("jti")
    if jti is None:
        return None
    if not isinstance(jti, str) or not jti:
        raise _refused("the client assertion's jti is not a string")
    return hashlib.sha256(f"{claims['iss']}\n{jti}".encode()).hexdigest()


class ClientAssertions:
    """Client authentication by assertion at the token endpoint (:mod:`scimcore.oauth`):
    ``key_source`` is set by the adapter that mounts the endpoint (``None``: refused)."""

    def __init__(self, clients: OAuthClients) -> None:
        self.clients = clients
        self.key_source: KeySource | None = None

    @property
    def enabled(self) -> bool:
        """Whether assertions can be verified: a key source, PyJWT and a storage for them."""
        return (
            self.key_source is not None
            and isinstance(self.clients.workspaces.storage, FederationStorage)
            and assertion_support()
        )

    def authenticate(self, form: Mapping[str, str]) -> tuple[str, Workspace]:
        """The client id and workspace the form's ``client_assertion`` proves (with an
        optional ``client_id`` that must be its client); :class:`AssertionRefusedError`."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _refused(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if assertion is None:
            raise _MissingAssertion("the parameter client_assertion is missing")
        storage = self.clients.workspaces.storage
        if self.key_source is None or not isinstance(storage, FederationStorage):
            raise _refused("client assertions are not accepted by this server")
        _jwt()  # KeyUnavailableError now, before anything else, when PyJWT is missing
        grant, federations = self._candidates(storage, form.get("client_id"), assertion)
        now = self.clients.runtime.now()
        try:
            federation, claims = verify_assertion(assertion, federations, self.key_source, now)
            expires = _check_times(claims, now)  # verified already: the expiry
            id_hash = _id_hash(claims)
            if grant.client.state != CLIENT_ACTIVE or not grant.admin_active:
                self.clients.refused(grant)
                raise _refused("client authentication failed")
            if id_hash is not None and not storage.claim_assertion(
                id_hash, expires + CLOCK_SKEW, now
            ):
                raise _refused("the client assertion was used already (jti)")
        except AssertionRefusedError as exc:
            self._log_refusal(grant, exc.detail)
            raise
        except KeyUnavailableError as exc:
            _log.warning("client assertion for OAuth client %s: %s", grant.client.id, exc)
            self._log_refusal(grant, "the issuer's keys could not be fetched")
            raise _refused("the issuer's signing keys cannot be fetched now; retry") from None
        last = federation.last_used_at
        if last is None or now - last >= TOUCH_INTERVAL:
            storage.touch_federation(federation.id, now)
        return grant.client.id, grant.workspace

    def _candidates(
        self, storage: FederationStorage, client_id: str | None, assertion: str
    ) -> tuple[ClientGrant, Sequence[FederatedIdentity]]:
        """The client (named by ``client_id``, else found by the assertion's unverified
        issuer and subject) and its federated identities."""
        oauth = self.clients.storage
        if client_id is None:
            _, claims = _unverified(_jwt(), assertion)
            iss, sub = claims.get("iss"), claims.get("sub")
            ids: set[str] = set()
            if isinstance(iss, str) and isinstance(sub, str):
                ids = {f.client_id for f in storage.federations_of(iss, sub)}
            if len(ids) > 1:
                raise _Ambiguous("several clients trust this assertion's identity: send client_id")
            client_id = ids.pop() if ids else ""
        grant = oauth.client_grant(client_id) if len(client_id) == 32 else None
        federations = storage.list_federations(grant.client.id) if grant else ()
        if grant is None or not federations:
            raise _refused("no client with a federated identity matches the client assertion")
        return grant, federations

    def _log_refusal(self, grant: ClientGrant, reason: str) -> None:
        """A refused assertion of a known client in its workspace's log (R9.2), at most once
        per :data:`~scimcore.workspaces.REFUSAL_LOG_INTERVAL` per client."""
        client = grant.client
        try:
            if not self.clients.storage.claim_client_refusal(
                client.id, self.clients.runtime.now(), REFUSAL_LOG_INTERVAL
            ):
                return
            name = f"{client.label!r} ({client.id})" if client.label else client.id
            detail = f"refused: client assertion for OAuth client {name}: {reason}"
            self.clients.workspaces._log(
                client.workspace_id, "idp", "auth.refused", detail, status=401
            )
        except Exception:  # the request is refused all the same
            _log.exception("could not log a refused client assertion")


class _Ambiguous(AssertionRefusedError):
    status = 400


class _MissingAssertion(AssertionRefusedError):
    status = 400
