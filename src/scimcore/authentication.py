"""How a token is checked: a SCIM request's ``Authorization`` header to its caller (R1.2, R2.3,
R2.4), and the request's unit of work that begins with it.

A token reads ``scim_<token id>_<secret>``. Only ``sha256(secret)`` is stored; the id part is
public and finds the record (:meth:`~scimcore.storage.Storage.authenticate`: the token, its
workspace and its admin's state in one read), after which the hashes are compared with
:func:`hmac.compare_digest` (constant time) and the admin must still be active. Other bearer
credentials (OAuth access tokens) are checked by the verifier registered for their prefix.

:class:`Authenticator` (its :meth:`~Authenticator.read` and
:meth:`~Authenticator.writing`) is the one place that uses a storage's optional
:class:`~scimcore.storage.FastPath` capability: when the storage has it, the authentication
and the request's first read (its :class:`~scimcore.storage.Intent`) are one round trip and
come back as one :class:`~scimcore.storage.Authenticated` value; without it, the same reads
are made one after the other, with the same answers. Either way the grant is verified here,
before anything read with it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
from attrs import frozen

from .errors import UnauthorizedError
from .runtime import Runtime
from .storage import (
    TOKEN_DEAD,
    FastPath,
    Grant,
    Intent,
    LogEntry,
    Page,
    Storage,
    UserStore,
    Workspace,
)

__all__ = [
    "DEAD_ADMIN_DEACTIVATED",
    "REFUSAL_LOG_INTERVAL",
    "TOUCH_INTERVAL",
    "AuthContext",
    "Authenticator",
    "secret_hash",
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

_T = TypeVar("_T")

_TOKEN_RE = re.compile(r"^scim_([0-9a-f]{32})_([A-Za-z0-9_-]{20,200})$")


@frozen
class AuthContext:
    """Who is calling: the workspace the token belongs to, and the token's id (never the
    secret), for the provisioning log. A read request whose :class:`~scimcore.storage.Intent`
    named users also carries what was read with the authentication: ``user``, the user it
    names (``None``: the workspace has none), ``has_groups``, whether the workspace has any
    group (``False``: every ``User.groups`` is empty; ``None``: not read), and ``found``, the
    users its filter matches when the storage could read them so (``None``: query as usual)."""

    workspace: Workspace
    token_id: str
    user: dict[str, Any] | None = attrs.field(default=None, eq=False)
    has_groups: bool | None = attrs.field(default=None, eq=False)
    found: Page | None = attrs.field(default=None, eq=False)


def secret_hash(secret: str) -> str:
    """What is stored of a token's secret: its SHA-256, in hex."""
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
    return match, secret_hash(match.group(2)) if match else secret_hash(credentials)


def _verified(grant: Grant | None, presented: str) -> Grant:
    """``grant`` if the presented secret's hash is its token's (compared in constant time)
    and the token's admin is still active (R2.3, R2.4); else :class:`UnauthorizedError`."""
    expected = grant.token.secret_hash if grant else secret_hash("")
    if not hmac.compare_digest(presented, expected) or grant is None:
        raise UnauthorizedError("invalid bearer token")
    if not grant.admin_active:
        raise UnauthorizedError("this token's admin is no longer active: generate a new token")
    return grant


class Authenticator:
    """Checks bearer tokens over a :class:`~scimcore.storage.Storage` and opens the unit of
    work of an authenticated SCIM request (``ScimService.workspaces.authenticator``)."""

    def __init__(self, storage: Storage, runtime: Runtime, log_retention: int = 10_000) -> None:
        self.storage = storage
        self.runtime = runtime
        self._retention = log_retention
        #: The storage's optional fast path (:class:`~scimcore.storage.FastPath`), or ``None``.
        self._fast: FastPath | None = storage if isinstance(storage, FastPath) else None
        #: Other bearer credentials, by the prefix that tells them from ``scim_`` tokens:
        #: the verifier returns the caller or raises ``UnauthorizedError`` (the OAuth access
        #: tokens of :mod:`scimcore.oauth_clients`, registered by ``ScimService``). Only a
        #: credential that is no ``scim_<id>_<secret>`` token is looked up here.
        self.bearer_schemes: dict[str, Callable[[str], AuthContext]] = {}

    def authenticate(self, authorization: str | None) -> AuthContext:
        """Resolve an ``Authorization`` header to its workspace (R1.2, R2.3, R2.4). Raises
        :class:`UnauthorizedError` for a missing, malformed, unknown, deleted or orphaned
        token; the detail never echoes the token."""
        match, presented = _presented(authorization)
        return self._plainly(authorization, match, presented, _NOTHING, None)

    def read(
        self, authorization: str | None, intent: Intent, answer: Callable[[AuthContext], _T]
    ) -> _T:
        """A read request: ``answer`` called with the :class:`AuthContext` (with what
        ``intent`` read: :attr:`AuthContext.user`, :attr:`AuthContext.found`), all of it held
        in the storage's read turn (if it has one) from the authentication on. A call rather
        than a context manager: contextlib's machinery cost every read request ~65 bytecodes
        (2 % of a ``GET /Users/{id}``)."""
        fast = self._fast
        match, presented = _presented(authorization)
        if fast is None:
            return answer(self._plainly(authorization, match, presented, intent, None))
        if match is None:
            with fast.read_turn():
                return answer(self._plainly(authorization, match, presented, intent, None))
        token_id = match.group(1)
        verified: Grant | None = None
        grant: Grant | None = None
        with fast.read_turn():
            try:
                with fast.authenticated(token_id, presented, intent) as read:
                    grant = read.grant
                    verified = _verified(grant, presented)
                    self._touch(verified)
                    ws, tid = verified.workspace, verified.token.id
                    return answer(AuthContext(ws, tid, read.user, read.has_groups, read.found))
            except UnauthorizedError:
                if verified is None:  # refused: logged once the unit is over
                    self._refused(token_id, presented, grant)
                raise

    @contextmanager
    def writing(
        self, authorization: str | None, intent: Intent, now: datetime | None = None
    ) -> Iterator[tuple[AuthContext, UserStore]]:
        """A SCIM write: :meth:`authenticate`, then the workspace's writing transaction
        (``Storage.users``), which the block receives with the caller. Raises
        :class:`UnauthorizedError` exactly as :meth:`authenticate` does, before anything is
        written; an exception raised in the block rolls the transaction back. ``now``: the
        write's instant, when the token's use is recorded (default: the runtime's clock)."""
        fast = self._fast
        match, presented = _presented(authorization)
        if fast is None or match is None:
            auth = self._plainly(authorization, match, presented, intent, now)
            with self.storage.users(auth.workspace.id) as store:
                yield auth, store
            return
        token_id = match.group(1)
        verified: Grant | None = None
        grant: Grant | None = None
        try:
            with fast.authenticated(token_id, presented, intent) as written:
                grant = written.grant
                verified = _verified(grant, presented)
                assert written.store is not None  # a verified grant has its transaction
                yield AuthContext(verified.workspace, verified.token.id), written.store
        except UnauthorizedError:
            if verified is None:  # refused: logged once its transaction rolled back
                self._refused(token_id, presented, grant)
            raise
        finally:
            if verified is not None:  # whatever the write's outcome, once it is over
                self._touch(verified, now)

    def _plainly(
        self,
        authorization: str | None,
        match: re.Match[str] | None,
        presented: str,
        intent: Intent,
        now: datetime | None,
    ) -> AuthContext:
        """The caller, authenticated without the fast path (another bearer scheme, or a
        storage without it), with the user a read ``intent`` names, read on its own (a filter
        is left to the request's query)."""
        if match is None:  # another bearer scheme: checked by its verifier
            auth = self._other_bearer(authorization)
        else:
            auth = self._checked(
                match.group(1), presented, self.storage.authenticate(match.group(1)), now
            )
        if intent.writes or intent.user_id is None:
            return auth
        with self.storage.users(auth.workspace.id, one_read=True) as store:
            return attrs.evolve(auth, user=store.get(intent.user_id))

    def _checked(
        self, token_id: str, presented: str, grant: Grant | None, now: datetime | None
    ) -> AuthContext:
        """The caller of a verified ``grant`` (its use recorded); a refusal is logged."""
        try:
            verified = _verified(grant, presented)
        except UnauthorizedError:
            self._refused(token_id, presented, grant)
            raise
        self._touch(verified, now)
        return AuthContext(verified.workspace, verified.token.id)

    def _other_bearer(self, authorization: str | None) -> AuthContext:
        """The caller of a credential of :attr:`bearer_schemes`."""
        credentials = (authorization or "").strip().partition(" ")[2].strip()
        for prefix, verify in self.bearer_schemes.items():
            if credentials.startswith(prefix):
                return verify(credentials)
        raise UnauthorizedError("invalid bearer token")

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
            entry = LogEntry(
                id=self.runtime.new_id(),
                at=self.runtime.now(),
                operation="auth.refused",
                resource_id=None,
                status=401,
                detail=detail,
                token_id=tomb.id,
                actor="idp",
            )
            with self.storage.users(tomb.workspace_id) as store:
                store.add_log(entry, self._retention)
        except Exception:  # the request is refused all the same
            _log.exception("could not log a refused request")

    def _touch(self, grant: Grant, now: datetime | None = None) -> None:
        """Record the token's use, at most once per :data:`TOUCH_INTERVAL`."""
        if now is None:
            now = self.runtime.now()
        last = grant.token.last_used_at
        if last is None or now - last >= TOUCH_INTERVAL:
            self.storage.touch_token(grant.token.id, now)


#: A request that reads nothing first.
_NOTHING = Intent()
