"""OAuth 2.0 clients of a workspace (R2.6, issue 20): records, the storage they need, and the
Python API behind ``scimcore client ...``.

A client has a public id (32 hex digits) and one or more secrets, each with its own expiry
(default :data:`DEFAULT_SECRET_DAYS`, between :data:`MIN_SECRET_DAYS` and
:data:`MAX_SECRET_DAYS`). A secret is 256 random bits from :class:`~scimcore.runtime.Runtime`,
shown once; only its SHA-256 is stored (a fast hash is right for random secrets: there is
nothing to guess) and compared with :func:`hmac.compare_digest`.

Access tokens issued by the token endpoint (:mod:`scimcore.oauth`) read
``scimat_<token id>_<secret>``: a prefix the SCIM bearer tokens (``scim_<id>_<secret>``) never
have, so the two paths never meet. They are stored as the hash of their secret, bound to a
client and its workspace, and expire.

A client follows the tokens' rules (R2.3, R2.5): it works only while the admin who created it
is an active admin; when that admin is deactivated the storage marks the client dead in the
same transaction (:meth:`OAuthStorage.bury_admin_clients`) and removes its access tokens; its
secrets' hashes stay, unusable, only so that the IdP's next refused token request is logged in
the workspace (R9.2). Nothing it issued works any more, and re-adding the admin revives nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs
from attrs import frozen

from .errors import InvalidTokenError
from .federation import FederatedIdentity, FederationStorage, check_federation
from .runtime import Runtime
from .storage import Storage, Workspace
from .workspaces import (
    DEAD_ADMIN_DEACTIVATED,
    REFUSAL_LOG_INTERVAL,
    AuthContext,
    WorkspaceError,
    Workspaces,
)

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "CLIENT_ACTIVE",
    "CLIENT_DEAD",
    "DEFAULT_SECRET_DAYS",
    "EXPIRY_WARNING",
    "MAX_SECRET_DAYS",
    "MIN_SECRET_DAYS",
    "TOUCH_INTERVAL",
    "AccessGrant",
    "AccessToken",
    "ClientGrant",
    "ClientSecret",
    "IssuedSecret",
    "OAuthClient",
    "OAuthClients",
    "OAuthStorage",
    "hash_secret",
    "matching_secret",
]

#: Every access token starts so (the SCIM bearer tokens start ``scim_``).
ACCESS_TOKEN_PREFIX = "scimat_"
DEFAULT_SECRET_DAYS = 365
MIN_SECRET_DAYS = 1
MAX_SECRET_DAYS = 3 * 365
#: A secret expiring within this is flagged by ``client list`` and the console.
EXPIRY_WARNING = timedelta(days=30)
#: ``OAuthClient.state`` of a working client (while its admin is active).
CLIENT_ACTIVE = "active"
#: A client whose admin was deactivated: dead for good (R2.5), listed until deleted.
CLIENT_DEAD = "dead"
#: A secret's ``last_used_at`` is refreshed at most this often.
TOUCH_INTERVAL = timedelta(minutes=1)

_log = logging.getLogger(__name__)
_ACCESS_RE = re.compile(r"^scimat_([0-9a-f]{32})_([A-Za-z0-9_-]{20,200})$")
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def hash_secret(secret: str) -> str:
    """The stored form of a random secret or token: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@frozen
class OAuthClient:
    """An OAuth 2.0 client of a workspace (never a secret)."""

    id: str
    workspace_id: str
    label: str
    created_by: str
    created_at: datetime
    state: str = CLIENT_ACTIVE
    dead_reason: str | None = None


@frozen
class ClientSecret:
    """One secret of a client: only its SHA-256 is stored."""

    id: str
    client_id: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None


@frozen
class AccessToken:
    """An access token issued to a client: only the SHA-256 of its secret part is stored."""

    id: str
    client_id: str
    workspace_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime


@frozen
class ClientGrant:
    """A client read for authentication: with its workspace, whether its admin is active, and
    its secrets."""

    client: OAuthClient
    workspace: Workspace
    admin_active: bool
    secrets: tuple[ClientSecret, ...]


@frozen
class AccessGrant:
    """An access token read for a SCIM request, with its client, workspace and admin state."""

    token: AccessToken
    client: OAuthClient
    workspace: Workspace
    admin_active: bool


@frozen
class IssuedSecret:
    """A new secret: its record and the plaintext, shown once and never stored."""

    client: OAuthClient
    secret: ClientSecret
    plaintext: str = attrs.field(repr=False)


@runtime_checkable
class OAuthStorage(Protocol):
    """What OAuth clients need from a storage (memory and SQL implement it; contract tests in
    ``scimcore.testing``). Every method is one transaction."""

    def add_client(self, client: OAuthClient, secret: ClientSecret | None) -> None:
        """Store a new client with its first secret (``None``: a client that will
        authenticate with a federated identity only, :mod:`scimcore.federation`)."""

    def get_client(self, workspace_id: str, client_id: str) -> OAuthClient | None: ...

    def list_clients(self, workspace_id: str) -> Sequence[OAuthClient]:
        """Active and dead clients, oldest first."""

    def list_secrets(self, client_id: str) -> Sequence[ClientSecret]:
        """A client's secrets, oldest first."""

    def add_secret(self, secret: ClientSecret) -> bool:
        """Store a secret of an active client; ``False`` (nothing stored) if there is none."""

    def delete_secret(self, client_id: str, secret_id: str) -> bool: ...

    def delete_client(self, workspace_id: str, client_id: str) -> bool:
        """Remove a client with its secrets and access tokens."""

    def bury_admin_clients(self, workspace_id: str, email: str, reason: str) -> int:
        """Mark the admin's active clients dead and remove their access tokens (the backends
        run it inside ``deactivate_admin``'s transaction too); how many."""

    def claim_client_refusal(self, client_id: str, when: datetime, interval: timedelta) -> bool:
        """Note a refused token request of the client at ``when``; ``True`` if none was noted
        in the ``interval`` before (the caller then logs it)."""

    def client_grant(self, client_id: str) -> ClientGrant | None: ...

    def touch_secret(self, secret_id: str, when: datetime) -> None: ...

    def add_access_token(self, token: AccessToken) -> None:
        """Store an access token, and drop the client's tokens expired before its creation."""

    def access_grant(self, token_id: str) -> AccessGrant | None: ...


def _days(days: int | None) -> timedelta:
    days = DEFAULT_SECRET_DAYS if days is None else days
    if not MIN_SECRET_DAYS <= days <= MAX_SECRET_DAYS:
        raise WorkspaceError(
            f"a secret lives {MIN_SECRET_DAYS} to {MAX_SECRET_DAYS} days, not {days}"
        )
    return timedelta(days=days)


def matching_secret(grant: ClientGrant | None, secret: str, now: datetime) -> ClientSecret | None:
    """The unexpired secret of ``grant`` that ``secret`` is (hashes compared in constant time,
    with every stored secret), or ``None``."""
    presented = hash_secret(secret)
    found: ClientSecret | None = None
    for stored in grant.secrets if grant else ():
        if hmac.compare_digest(presented, stored.secret_hash) and stored.expires_at > now:
            found = stored
    return found


class OAuthClients:
    """Administration of a workspace's OAuth clients (Python API and CLI), and the check of
    an access token on a SCIM request."""

    def __init__(self, workspaces: Workspaces, runtime: Runtime) -> None:
        self.workspaces = workspaces
        self.runtime = runtime

    @property
    def storage(self) -> OAuthStorage:
        """The storage, if it keeps OAuth clients (:class:`OAuthStorage`)."""
        storage: Storage = self.workspaces.storage
        if not isinstance(storage, OAuthStorage):
            raise WorkspaceError("this storage does not keep OAuth clients")
        return storage

    def _new_secret(self, client: OAuthClient, days: int | None) -> IssuedSecret:
        lifetime = _days(days)
        plaintext = self.runtime.new_secret()
        now = self.runtime.now()
        secret = ClientSecret(
            id=self._new_id(),
            client_id=client.id,
            secret_hash=hash_secret(plaintext),
            created_at=now,
            expires_at=now + lifetime,
        )
        return IssuedSecret(client, secret, plaintext)

    def _new_id(self) -> str:
        new = self.runtime.new_id()
        if not _ID_RE.match(new):
            raise ValueError("Runtime.new_id must return 32 lowercase hex digits")
        return new

    def create(
        self, slug: str, admin_email: str, label: str = "", secret_days: int | None = None
    ) -> IssuedSecret:
        """A new client created by an active admin, with its first secret (shown once)."""
        client = self._new_client(slug, admin_email, label)
        issued = self._new_secret(client, secret_days)
        self.storage.add_client(client, issued.secret)
        detail = f"OAuth client {client.id} {label!r}"
        self.workspaces._log(client.workspace_id, client.created_by, "client.create", detail)
        return issued

    def _new_client(self, slug: str, admin_email: str, label: str) -> OAuthClient:
        """A client record made by an active admin of the workspace (not stored yet)."""
        ws = self.workspaces.get(slug)
        admin = self.workspaces.storage.get_admin(ws.id, admin_email.lower())
        if admin is None or not admin.active:
            raise WorkspaceError(f"{admin_email} is not an active admin of {slug!r}")
        return OAuthClient(self._new_id(), ws.id, label, admin.email, self.runtime.now())

    def create_without_secret(self, slug: str, admin_email: str, label: str = "") -> OAuthClient:
        """A new client with no secret, for a federated identity (:meth:`federate`): until
        it has one, nothing authenticates as it."""
        client = self._new_client(slug, admin_email, label)
        self.storage.add_client(client, None)
        detail = f"OAuth client {client.id} {label!r} (no secret)"
        self.workspaces._log(client.workspace_id, client.created_by, "client.create", detail)
        return client

    @property
    def federation_storage(self) -> FederationStorage:
        """The storage, if it keeps federated identities (:class:`FederationStorage`)."""
        storage: Storage = self.workspaces.storage
        if not isinstance(storage, FederationStorage):
            raise WorkspaceError("this storage does not keep federated identities")
        return storage

    def federate(
        self,
        slug: str,
        client_id: str,
        issuer: str,
        subject: str,
        audience: str,
        jwks_url: str | None = None,
        *,
        actor: str = "admin",
    ) -> FederatedIdentity:
        """Trust a federated identity (Entra workload identity federation): a JWT its
        ``issuer`` signed with ``sub`` = ``subject`` and ``aud`` = ``audience`` authenticates
        as the client (RFC 7523 §2.2). ``jwks_url``: the issuer's keys (default: OpenID
        discovery from the issuer); https only, http on the loopback interface for tests."""
        client = self.get(slug, client_id)
        if client.state != CLIENT_ACTIVE:
            raise WorkspaceError(f"OAuth client {client_id} is dead: create a new client")
        try:
            check_federation(issuer, subject, audience, jwks_url)
        except ValueError as exc:
            raise WorkspaceError(str(exc)) from None
        federation = FederatedIdentity(
            self._new_id(), client.id, issuer, subject, audience, jwks_url, self.runtime.now()
        )
        if not self.federation_storage.add_federation(federation):
            raise WorkspaceError(f"OAuth client {client_id} is dead: create a new client")
        detail = f"OAuth client {client.id}: federated identity {federation.id} of {issuer}"
        self.workspaces._log(client.workspace_id, actor, "client.federate", detail)
        return federation

    def federations(self, slug: str, client_id: str) -> Sequence[FederatedIdentity]:
        """The federated identities a client trusts, oldest first."""
        client = self.get(slug, client_id)
        storage = self.workspaces.storage
        return storage.list_federations(client.id) if isinstance(storage, FederationStorage) else []

    def delete_federation(
        self, slug: str, client_id: str, federation_id: str, *, actor: str = "admin"
    ) -> None:
        """Stop trusting a federated identity, at once."""
        client = self.get(slug, client_id)
        if not self.federation_storage.delete_federation(client.id, federation_id):
            raise WorkspaceError(
                f"OAuth client {client_id} has no federated identity {federation_id!r}"
            )
        detail = f"OAuth client {client.id}: federated identity {federation_id} deleted"
        self.workspaces._log(client.workspace_id, actor, "client.unfederate", detail)

    def get(self, slug: str, client_id: str) -> OAuthClient:
        """The client ``client_id`` of the workspace; :class:`WorkspaceError` if none."""
        ws = self.workspaces.get(slug)
        client = self.storage.get_client(ws.id, client_id) if _ID_RE.match(client_id) else None
        if client is None:
            raise WorkspaceError(f"no OAuth client {client_id!r} in workspace {slug!r}")
        return client

    def list(self, slug: str) -> Sequence[tuple[OAuthClient, Sequence[ClientSecret]]]:
        """The workspace's clients (active and dead), each with its secrets."""
        storage = self.storage
        clients = storage.list_clients(self.workspaces.get(slug).id)
        return [(c, storage.list_secrets(c.id)) for c in clients]

    def add_secret(
        self, slug: str, client_id: str, secret_days: int | None = None, *, actor: str = "admin"
    ) -> IssuedSecret:
        """Another secret for a client (rotation: the older ones keep working until deleted)."""
        client = self.get(slug, client_id)
        if client.state != CLIENT_ACTIVE:
            raise WorkspaceError(f"OAuth client {client_id} is dead: create a new client")
        issued = self._new_secret(client, secret_days)
        if not self.storage.add_secret(issued.secret):
            raise WorkspaceError(f"OAuth client {client_id} is dead: create a new client")
        detail = f"OAuth client {client.id}: secret {issued.secret.id} added"
        self.workspaces._log(client.workspace_id, actor, "client.secret.add", detail)
        return issued

    def delete_secret(
        self, slug: str, client_id: str, secret_id: str, *, actor: str = "admin"
    ) -> None:
        """Delete a secret at once (access tokens it obtained live until they expire)."""
        client = self.get(slug, client_id)
        if not self.storage.delete_secret(client.id, secret_id):
            raise WorkspaceError(f"OAuth client {client_id} has no secret {secret_id!r}")
        detail = f"OAuth client {client.id}: secret {secret_id} deleted"
        self.workspaces._log(client.workspace_id, actor, "client.secret.delete", detail)

    def delete(self, slug: str, client_id: str, *, actor: str = "admin") -> None:
        """Delete a client, active or dead: its secrets and access tokens stop working at once."""
        client = self.get(slug, client_id)
        if not self.storage.delete_client(client.workspace_id, client.id):
            raise WorkspaceError(f"no OAuth client {client_id!r} in workspace {slug!r}")
        detail = f"OAuth client {client.id} deleted"
        self.workspaces._log(client.workspace_id, actor, "client.delete", detail)

    def refused(self, grant: ClientGrant) -> None:
        """A token request presented a valid secret of a client that is dead or whose admin
        is inactive: bury it if it is not yet (a client made while its admin was being
        deactivated), and log the refusal in its workspace (R9.2), at most once per
        :data:`~scimcore.workspaces.REFUSAL_LOG_INTERVAL`. Its own failure changes nothing."""
        client = grant.client
        try:
            storage = self.storage
            reason = client.dead_reason or DEAD_ADMIN_DEACTIVATED
            if client.state == CLIENT_ACTIVE:
                storage.bury_admin_clients(client.workspace_id, client.created_by, reason)
            if not storage.claim_client_refusal(
                client.id, self.runtime.now(), REFUSAL_LOG_INTERVAL
            ):
                return
            name = f"{client.label!r} ({client.id})" if client.label else client.id
            detail = (
                f"refused: OAuth client {name} is dead: {reason} ({client.created_by}); "
                "create a new client"
            )
            self.workspaces._log(client.workspace_id, "idp", "auth.refused", detail, status=401)
        except Exception:  # the request is refused all the same
            _log.exception("could not log a refused token request")

    def authenticate(self, credentials: str) -> AuthContext:
        """The workspace an access token (``scimat_...``) grants, for a SCIM request;
        :class:`~scimcore.errors.InvalidTokenError` (401, RFC 6750 ``invalid_token``) when it
        is malformed, unknown, expired, or its client or the client's admin is gone."""
        match = _ACCESS_RE.match(credentials)
        grant = self.storage.access_grant(match.group(1)) if match else None
        presented = hash_secret(match.group(2) if match else credentials)
        expected = grant.token.token_hash if grant else hash_secret("")
        if not hmac.compare_digest(presented, expected) or grant is None:
            raise InvalidTokenError("invalid access token")
        if grant.token.expires_at <= self.runtime.now():
            raise InvalidTokenError("the access token expired: request a new one")
        if grant.client.state != CLIENT_ACTIVE or not grant.admin_active:
            raise InvalidTokenError("the access token's OAuth client is no longer active")
        return AuthContext(grant.workspace, f"oauth:{grant.client.id}")
