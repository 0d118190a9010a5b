"""Workspaces, admins and bearer tokens (R1, R2): the Python API behind the CLI and host apps.

A token reads ``scim_<token id>_<secret>``. Only ``sha256(secret)`` is stored; the plaintext
is returned once, by :meth:`Workspaces.generate_token`, and never logged. How a presented
token is checked is :mod:`scimcore.authentication` (re-exported here: :class:`AuthContext`
and the intervals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

import attrs
from attrs import frozen

from .authentication import (
    DEAD_ADMIN_DEACTIVATED,
    REFUSAL_LOG_INTERVAL,
    TOUCH_INTERVAL,
    AuthContext,
    Authenticator,
    secret_hash,
)
from .runtime import Runtime, system_runtime
from .storage import Admin, Intent, LogEntry, Storage, TokenRecord, UserStore, Workspace

__all__ = [
    "DEAD_ADMIN_DEACTIVATED",
    "REFUSAL_LOG_INTERVAL",
    "TOUCH_INTERVAL",
    "AuthContext",
    "GeneratedToken",
    "WorkspaceError",
    "Workspaces",
]

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


class WorkspaceError(ValueError):
    """An administrative request that cannot be carried out (unknown workspace, bad slug...)."""


@frozen
class GeneratedToken:
    """A new token: its record and the plaintext, which is shown once and never stored."""

    record: TokenRecord
    plaintext: str = attrs.field(repr=False)


class Workspaces:
    """Administration of workspaces, admins and tokens over a :class:`Storage`."""

    def __init__(
        self, storage: Storage, runtime: Runtime | None = None, log_retention: int = 10_000
    ) -> None:
        self.storage = storage
        self.runtime = runtime or system_runtime()
        self._retention = log_retention
        #: How a token is checked (:mod:`scimcore.authentication`).
        self.authenticator = Authenticator(storage, self.runtime, log_retention)

    @property
    def bearer_schemes(self) -> dict[str, Callable[[str], AuthContext]]:
        """Other bearer credentials than ``scim_`` tokens, by prefix
        (:attr:`.Authenticator.bearer_schemes`)."""
        return self.authenticator.bearer_schemes

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
            secret_hash=secret_hash(secret),
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

    def authenticate(self, authorization: str | None) -> AuthContext:
        """Resolve an ``Authorization`` header to its workspace (R1.2, R2.3, R2.4); raises
        :class:`~scimcore.errors.UnauthorizedError` for a missing, malformed, unknown,
        deleted or orphaned token (:meth:`.Authenticator.authenticate`)."""
        return self.authenticator.authenticate(authorization)

    def writing(
        self, authorization: str | None, user_id: str | None = None, now: datetime | None = None
    ) -> AbstractContextManager[tuple[AuthContext, UserStore]]:
        """A SCIM write that first reads the user ``user_id`` (``None``: a create), in the
        workspace's writing transaction (:meth:`.Authenticator.writing`)."""
        return self.authenticator.writing(authorization, Intent(True, user_id), now)
