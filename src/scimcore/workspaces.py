"""Workspaces, admins and bearer tokens (R1, R2): the Python API behind the CLI and host apps.

A token reads ``scim_<token id>_<secret>``. Only ``sha256(secret)`` is stored; the id part is
public and lets the server find the record, after which the hashes are compared with
:func:`hmac.compare_digest` (constant time, R2.4). The plaintext is returned once, by
:meth:`Workspaces.generate_token`, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs
from attrs import frozen

from .errors import UnauthorizedError
from .runtime import Runtime, system_runtime
from .storage import (
    TOKEN_DEAD,
    Admin,
    AuthenticatedWrites,
    Grant,
    LogEntry,
    Page,
    Storage,
    TokenRecord,
    UserReadAhead,
    UserStore,
    Workspace,
)

__all__ = [
    "DEAD_ADMIN_DEACTIVATED",
    "REFUSAL_LOG_INTERVAL",
    "TOUCH_INTERVAL",
    "AuthContext",
    "GeneratedToken",
    "ReadAhead",
    "ReadAheadKind",
    "WorkspaceError",
    "Workspaces",
]

TOUCH_INTERVAL = timedelta(minutes=1)
"""``last_used_at`` is refreshed at most this often: one write per token per minute, not one
per request."""

REFUSAL_LOG_INTERVAL = timedelta(minutes=1)
"""A request refused because its token is dead or deleted is logged in the token's workspace
at most once per token and interval (an IdP retrying every few seconds makes one entry a
minute, not thousands)."""

DEAD_ADMIN_DEACTIVATED = "admin deactivated"
"""``TokenRecord.dead_reason`` of the tokens of a deactivated admin (R2.3, R2.5)."""

_log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"^scim_([0-9a-f]{32})_([A-Za-z0-9_-]{20,200})$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


class WorkspaceError(ValueError):
    """An administrative request that cannot be carried out (unknown workspace, bad slug...)."""


#: What a request reads right after authenticating: a user by id, or the users of a filter.
ReadAheadKind = Literal["id", "filter"]


@frozen
class ReadAhead:
    """What was read together with the authentication (see
    :class:`~scimcore.storage.UserReadAhead`): for ``kind == "id"`` the user ``key``
    (``document``, ``None`` if the workspace has none); for ``kind == "filter"`` the users the
    filter ``key`` matches (``page``)."""

    kind: ReadAheadKind
    key: str
    document: dict[str, Any] | None = attrs.field(default=None, eq=False)
    page: Page | None = attrs.field(default=None, eq=False)


@frozen
class AuthContext:
    """Who is calling: the workspace the token belongs to, and the token's id (never the
    secret), for the provisioning log; ``read_ahead``: the user the request asked to read
    with the authentication, when the storage could."""

    workspace: Workspace
    token_id: str
    read_ahead: ReadAhead | None = None


@frozen
class GeneratedToken:
    """A new token: its record and the plaintext, which is shown once and never stored."""

    record: TokenRecord
    plaintext: str = attrs.field(repr=False)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _presented(authorization: str | None) -> tuple[re.Match[str] | None, str]:
    """The ``Authorization`` header's token (``scim_<id>_<secret>``, ``None`` when it has
    another shape) and the hash of the secret it presents; :class:`UnauthorizedError` when
    there is no Bearer credential."""
    if not authorization:
        raise UnauthorizedError("authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthorizedError("the Authorization header must use the Bearer scheme")
    match = _TOKEN_RE.match(credentials.strip())
    return match, _hash(match.group(2)) if match else _hash(credentials)


def _verified(grant: Grant | None, presented: str) -> Grant:
    """``grant`` if the presented secret's hash is its token's (compared in constant time)
    and the token's admin is still active (R2.3, R2.4); else :class:`UnauthorizedError`."""
    expected = grant.token.secret_hash if grant else _hash("")
    if not hmac.compare_digest(presented, expected) or grant is None:
        raise UnauthorizedError("invalid bearer token")
    if not grant.admin_active:
        raise UnauthorizedError("this token's admin is no longer active: generate a new token")
    return grant


class Workspaces:
    """Administration of workspaces, admins and tokens over a :class:`Storage`."""

    def __init__(
        self, storage: Storage, runtime: Runtime | None = None, log_retention: int = 10_000
    ) -> None:
        self.storage = storage
        self.runtime = runtime or system_runtime()
        self._retention = log_retention
        self._reads_ahead: UserReadAhead | None = (
            storage if isinstance(storage, UserReadAhead) else None
        )
        self._writes_authenticated: AuthenticatedWrites | None = (
            storage if isinstance(storage, AuthenticatedWrites) else None
        )
        #: Other bearer credentials, by the prefix that tells them from ``scim_`` tokens:
        #: the verifier returns the caller or raises ``UnauthorizedError`` (the OAuth access
        #: tokens of :mod:`scimcore.oauth_clients`, registered by ``ScimService``). Only a
        #: credential that is no ``scim_<id>_<secret>`` token is looked up here.
        self.bearer_schemes: dict[str, Callable[[str], AuthContext]] = {}

    # --- workspaces and admins ----------------------------------------------------------------

    def create(self, slug: str, admin_email: str) -> Workspace:
        """A workspace and its first active admin (``scimcore workspace create``)."""
        if not _SLUG_RE.match(slug):
            raise WorkspaceError(
                f"invalid workspace slug {slug!r}: use lowercase letters, digits and '-'"
            )
        self._check_email(admin_email)
        if self.storage.get_workspace(slug) is not None:
            raise WorkspaceError(f"workspace {slug!r} already exists")
        now = self.runtime.now()
        ws = Workspace(id=self.runtime.new_id(), slug=slug, created_at=now)
        self.storage.create_workspace(ws)
        self.storage.save_admin(Admin(ws.id, admin_email.lower(), True, now))
        return ws

    def get(self, slug: str) -> Workspace:
        ws = self.storage.get_workspace(slug)
        if ws is None:
            raise WorkspaceError(f"no workspace {slug!r}")
        return ws

    def list(self) -> Sequence[Workspace]:
        return self.storage.list_workspaces()

    @staticmethod
    def _check_email(email: str) -> None:
        if not _EMAIL_RE.match(email):
            raise WorkspaceError(f"invalid email address {email!r}")

    def _log(
        self,
        workspace_id: str,
        actor: str,
        operation: str,
        detail: str,
        *,
        status: int = 200,
        token_id: str | None = None,
    ) -> None:
        """An entry in the workspace's provisioning log (R9.2): admin actions and refused
        requests. Never a secret."""
        entry = LogEntry(
            id=self.runtime.new_id(),
            at=self.runtime.now(),
            operation=operation,
            resource_id=None,
            status=status,
            detail=detail,
            token_id=token_id,
            actor=actor,
        )
        with self.storage.users(workspace_id) as store:
            store.add_log(entry, self._retention)

    def list_admins(self, slug: str) -> Sequence[Admin]:
        """The workspace's admins, active or not, by e-mail."""
        return self.storage.list_admins(self.get(slug).id)

    def get_admin(self, slug: str, email: str) -> Admin | None:
        """The admin with this e-mail (case-insensitive), active or not; ``None`` if none."""
        return self.storage.get_admin(self.get(slug).id, email.lower())

    def add_admin(self, slug: str, email: str, *, actor: str = "admin") -> Admin:
        """Add (or reactivate) an admin of the workspace. A reactivated admin's old tokens
        stay dead (R2.5): they generate new ones. ``actor``: who did it, for the log."""
        self._check_email(email)
        ws = self.get(slug)
        existing = self.storage.get_admin(ws.id, email.lower())
        if existing is not None and existing.active:
            return existing
        if existing is not None:
            # Bury any token still stored for the inactive admin (one stored by a
            # generate_token that raced the deactivation) before the admin is active again.
            self.storage.deactivate_admin(ws.id, existing.email, DEAD_ADMIN_DEACTIVATED)
        admin = (
            attrs.evolve(existing, active=True)
            if existing
            else Admin(ws.id, email.lower(), True, self.runtime.now())
        )
        self.storage.save_admin(admin)
        self._log(ws.id, actor, "admin.add", f"{admin.email} is an admin")
        return admin

    def deactivate_admin(self, slug: str, email: str, *, actor: str = "admin") -> Admin:
        """Deactivate an admin: every token they created dies at once and for good (R2.3,
        R2.5), and is listed as dead until deleted."""
        ws = self.get(slug)
        admin = self.storage.deactivate_admin(ws.id, email.lower(), DEAD_ADMIN_DEACTIVATED)
        if admin is None:
            raise WorkspaceError(f"{email} is not an admin of {slug!r}")
        self._log(ws.id, actor, "admin.deactivate", f"{admin.email} deactivated; tokens dead")
        return admin

    def set_password_hash(
        self, slug: str, email: str, password_hash: str | None, *, actor: str = "admin"
    ) -> Admin:
        """Store the admin's console sign-in password hash (made by
        ``scimcore_adapters.passwords.hash_password``; ``None`` removes it)."""
        ws = self.get(slug)
        existing = self.storage.get_admin(ws.id, email.lower())
        if existing is None:
            raise WorkspaceError(f"{email} is not an admin of {slug!r}")
        admin = attrs.evolve(existing, password_hash=password_hash)
        self.storage.save_admin(admin)
        what = "set" if password_hash is not None else "removed"
        self._log(ws.id, actor, "admin.password", f"password of {admin.email} {what}")
        return admin

    # --- tokens -------------------------------------------------------------------------------

    def generate_token(self, slug: str, admin_email: str, label: str = "") -> GeneratedToken:
        """A new bearer token created by an active admin (R2.1, R2.2). Older tokens stay valid."""
        ws = self.get(slug)
        admin = self.storage.get_admin(ws.id, admin_email.lower())
        if admin is None or not admin.active:
            raise WorkspaceError(f"{admin_email} is not an active admin of {slug!r}")
        token_id = self.runtime.new_id()
        if not re.fullmatch(r"[0-9a-f]{32}", token_id):
            raise ValueError("Runtime.new_id must return 32 lowercase hex digits")
        secret = self.runtime.new_secret()
        record = TokenRecord(
            id=token_id,
            workspace_id=ws.id,
            secret_hash=_hash(secret),
            label=label,
            created_by=admin.email,
            created_at=self.runtime.now(),
        )
        self.storage.add_token(record)
        self._log(ws.id, admin.email, "token.generate", f"token {label!r}", token_id=token_id)
        return GeneratedToken(record, f"scim_{token_id}_{secret}")

    def list_tokens(self, slug: str) -> Sequence[TokenRecord]:
        return self.storage.list_tokens(self.get(slug).id)

    def delete_token(self, slug: str, token_id: str, *, actor: str = "admin") -> None:
        """Delete an active or dead token; it fails at once (R2.2), and a request that still
        presents it is refused and logged (R9.2)."""
        ws = self.get(slug)
        if not self.storage.delete_token(ws.id, token_id):
            raise WorkspaceError(f"no token {token_id!r} in workspace {slug!r}")
        self._log(ws.id, actor, "token.delete", f"token {token_id} deleted", token_id=token_id)

    def authenticate(
        self,
        authorization: str | None,
        *,
        read_ahead: tuple[ReadAheadKind, str] | None = None,
    ) -> AuthContext:
        """Resolve an ``Authorization`` header to its workspace (R1.2, R2.3, R2.4).

        Raises :class:`UnauthorizedError` for a missing, malformed, unknown, deleted or orphaned
        token; the detail never echoes the token. ``read_ahead``: ``("id", user_id)`` or
        ``("filter", scim_filter)``, what the request will read, to read it in the same round
        trip if the storage can (:class:`~scimcore.storage.UserReadAhead`); see
        :attr:`AuthContext.read_ahead`.
        """
        match, presented = _presented(authorization)
        other = self._other_bearer(authorization) if match is None else None
        return other or self._authenticated(match, presented, read_ahead)

    def _other_bearer(self, authorization: str | None) -> AuthContext | None:
        """The caller of a credential of :attr:`bearer_schemes` (``None``: not one)."""
        credentials = (authorization or "").strip().partition(" ")[2].strip()
        for prefix, verify in self.bearer_schemes.items():
            if credentials.startswith(prefix):
                return verify(credentials)
        return None

    def _authenticated(
        self,
        match: re.Match[str] | None,
        presented: str,
        read_ahead: tuple[ReadAheadKind, str] | None,
        now: datetime | None = None,
    ) -> AuthContext:
        """:meth:`authenticate` once the header is parsed (see :func:`_presented`)."""
        grant: Grant | None = None
        ahead: ReadAhead | None = None
        reader = self._reads_ahead
        if match and read_ahead is not None and reader is not None:
            kind, key = read_ahead
            if kind == "id":
                grant, document = reader.authenticate_and_get(match.group(1), presented, key)
                ahead = ReadAhead(kind, key, document=document)
            else:
                grant, page = reader.authenticate_and_find(match.group(1), presented, key)
                ahead = ReadAhead(kind, key, page=page) if page is not None else None
        elif match:
            grant = self.storage.authenticate(match.group(1))
        try:
            verified = _verified(grant, presented)
        except UnauthorizedError:
            if match:
                self._refused(match.group(1), presented, grant)
            raise
        self._touch(verified, now)
        return AuthContext(verified.workspace, verified.token.id, ahead)

    @contextmanager
    def writing(
        self, authorization: str | None, user_id: str | None = None, now: datetime | None = None
    ) -> Iterator[tuple[AuthContext, UserStore]]:
        """A SCIM write: :meth:`authenticate`, then the workspace's writing transaction
        (``Storage.users``), in one round trip when the storage can
        (:class:`~scimcore.storage.AuthenticatedWrites`). ``user_id``: the user the write
        reads first (``None`` for a create). Raises :class:`UnauthorizedError` exactly as
        :meth:`authenticate` does, before anything is written; an exception raised in the
        block rolls the transaction back. ``now``: the write's instant, when the token's use
        is recorded (default: the runtime's clock)."""
        match, presented = _presented(authorization)
        writer = self._writes_authenticated
        if writer is None or match is None:
            other = self._other_bearer(authorization) if match is None else None
            auth = other or self._authenticated(match, presented, None, now)
            with self.storage.users(auth.workspace.id) as store:
                yield auth, store
            return
        verified: Grant | None = None
        refused: list[Grant | None] = []
        try:
            with writer.authenticated_users(match.group(1), presented, user_id) as (grant, store):
                try:
                    verified = _verified(grant, presented)
                except UnauthorizedError:
                    refused.append(grant)
                    raise
                assert store is not None
                yield AuthContext(verified.workspace, verified.token.id), store
        finally:
            if verified is not None:  # the token was used, whatever the write's outcome
                self._touch(verified, now)
            elif refused:  # logged once the refused transaction is over
                self._refused(match.group(1), presented, refused[0])

    def _refused(self, token_id: str, presented: str, grant: Grant | None) -> None:
        """A request was refused (401): if it presented a dead or deleted token with its right
        secret, log it in the token's workspace (R9.2), at most once per
        :data:`REFUSAL_LOG_INTERVAL`. Runs only on refusals, never on the authentication path;
        its own failure never changes the 401."""
        try:
            if (
                grant is not None
                and not grant.admin_active
                and hmac.compare_digest(grant.token.secret_hash, presented)
            ):  # an orphan stored before tombstones, or racing a deactivation: bury it (R2.5)
                ws = grant.workspace.id
                self.storage.deactivate_admin(ws, grant.token.created_by, DEAD_ADMIN_DEACTIVATED)
            tomb = self.storage.get_tombstone(token_id)
            if tomb is None or not hmac.compare_digest(tomb.secret_hash, presented):
                return
            now = self.runtime.now()
            if not self.storage.claim_refusal(token_id, now, REFUSAL_LOG_INTERVAL):
                return
            name = f"{tomb.label!r} ({tomb.id})" if tomb.label else tomb.id
            if tomb.state == TOKEN_DEAD:
                why = f"is dead: {tomb.dead_reason or 'its admin was deactivated'}"
                detail = f"refused: token {name} {why} ({tomb.created_by}); generate a new one"
            else:
                detail = f"refused: token {name} was deleted"
            self._log(
                tomb.workspace_id, "idp", "auth.refused", detail, status=401, token_id=tomb.id
            )
        except Exception:  # the request is refused all the same
            _log.exception("could not log a refused request")

    def _touch(self, grant: Grant, now: datetime | None = None) -> None:
        """Record the token's use, at most once per :data:`TOUCH_INTERVAL`."""
        if now is None:
            now = self.runtime.now()
        last = grant.token.last_used_at
        if last is None or now - last >= TOUCH_INTERVAL:
            self.storage.touch_token(grant.token.id, now)
