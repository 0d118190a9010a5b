"""The authorization-code grant of the SQL storage (issue 20, schema 11): redirect URIs,
approvals (``oauth_grants``), their one-time codes and rotated refresh tokens.

:class:`AuthorizationAccounts` runs each :class:`scimcore.authorization.AuthorizationStorage`
method in a transaction of its own; :func:`revoke_admin_grants` also runs inside
``deactivate_admin``'s (:mod:`.admin_accounts`). Codes and refresh tokens are stored as their
SHA-256 only. A grant is the lock point of its family: every writer of a family first reads
its grant's row ``FOR UPDATE`` (PostgreSQL; SQLite's writes take turns anyway), then its rows,
so two uses of one refresh token take turns, and a refresh racing a replay or an admin's
deactivation either finishes before the revocation, which then removes what it issued, or
finds the grant gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, select

from scimcore.authorization import (
    USED_CODES_KEPT,
    AuthorizationCode,
    AuthorizationGrant,
    CodeUse,
    RedirectUri,
    RefreshToken,
    RefreshUse,
)
from scimcore.oauth_clients import CLIENT_ACTIVE, AccessToken

from .engines import IMMEDIATE, NO_BEGIN
from .oauth_tables import (
    OAUTH_ACCESS_TOKENS,
    OAUTH_CLIENTS,
    OAUTH_CODES,
    OAUTH_GRANTS,
    OAUTH_REDIRECT_URIS,
    OAUTH_REFRESH_TOKENS,
)
from .rows import RecordRows
from .tables import ADMINS
from .transactions import Transactions

__all__ = ["AuthorizationAccounts", "revoke_admin_grants"]

_URI_ROWS = RecordRows(RedirectUri)
_GRANT_ROWS = RecordRows(AuthorizationGrant)
_CODE_ROWS = RecordRows(AuthorizationCode)
_REFRESH_ROWS = RecordRows(RefreshToken)
_ACCESS_ROWS = RecordRows(AccessToken)

_U, _G, _K, _R = OAUTH_REDIRECT_URIS.c, OAUTH_GRANTS.c, OAUTH_CODES.c, OAUTH_REFRESH_TOKENS.c
_C, _A = OAUTH_CLIENTS.c, ADMINS.c


def _when(name: str) -> Any:
    return bindparam(name, type_=_K.expires_at.type)


_ACTIVE_CLIENT = select(_C.id).where(_C.id == bindparam("b_id"), _C.state == CLIENT_ACTIVE)
_LIST_URIS = select(OAUTH_REDIRECT_URIS).where(_U.client_id == bindparam("b_id"))
_DELETE_URI = delete(OAUTH_REDIRECT_URIS).where(
    _U.client_id == bindparam("b_id"), _U.id == bindparam("b_uri")
)
_ADMIN_ACTIVE = select(_A.active).where(
    _A.workspace_id == bindparam("b_ws"), _A.email_key == bindparam("b_key")
)
_CLIENT = select(_C.state, _C.created_by).where(_C.id == bindparam("b_id"))
_GRANT = select(OAUTH_GRANTS).where(_G.id == bindparam("b_id"))
_GRANT_LOCKED = _GRANT.with_for_update()
_CODE = select(OAUTH_CODES).where(_K.code_hash == bindparam("b_hash"))
#: The grant of a code or refresh token, locked first (every writer of a family takes its
#: grant's lock before touching its rows: one order, no deadlock; and the row read after it
#: is the latest committed, so two uses of one token take turns).
_GRANT_OF_CODE = (
    select(OAUTH_GRANTS)
    .where(
        _G.id.in_(select(_K.grant_id).where(_K.code_hash == bindparam("b_hash")).scalar_subquery())
    )
    .with_for_update()
)
_USE_CODE = (
    OAUTH_CODES.update().where(_K.code_hash == bindparam("b_hash")).values(used_at=_when("b_now"))
)
_REFRESH = select(OAUTH_REFRESH_TOKENS).where(_R.token_hash == bindparam("b_hash"))
_GRANT_OF_REFRESH = (
    select(OAUTH_GRANTS)
    .where(
        _G.id.in_(select(_R.grant_id).where(_R.token_hash == bindparam("b_hash")).scalar_subquery())
    )
    .with_for_update()
)
_USE_REFRESH = (
    OAUTH_REFRESH_TOKENS.update()
    .where(_R.token_hash == bindparam("b_hash"))
    .values(used_at=_when("b_now"))
)
_PURGE_CODES = delete(OAUTH_CODES).where(
    _K.client_id == bindparam("b_id"), _K.expires_at <= _when("b_cutoff")
)
_PURGE_GRANTS = delete(OAUTH_GRANTS).where(
    _G.client_id == bindparam("b_id"),
    ~exists().where(_K.grant_id == _G.id),
    ~exists().where(_R.grant_id == _G.id),
)
_PURGE_REFRESH = delete(OAUTH_REFRESH_TOKENS).where(
    _R.grant_id == bindparam("b_id"), _R.expires_at <= _when("b_now")
)
_FAMILY_ACCESS = delete(OAUTH_ACCESS_TOKENS).where(
    OAUTH_ACCESS_TOKENS.c.id.in_(
        select(_R.access_token_id).where(_R.grant_id == bindparam("b_id")).scalar_subquery()
    )
)
_FAMILY_REFRESH = delete(OAUTH_REFRESH_TOKENS).where(_R.grant_id == bindparam("b_id"))
_FAMILY_CODES = delete(OAUTH_CODES).where(_K.grant_id == bindparam("b_id"))
_DELETE_GRANT = delete(OAUTH_GRANTS).where(_G.id == bindparam("b_id"))
_ADMIN_GRANTS = (
    select(_G.id)
    .where(
        _G.workspace_id == bindparam("b_ws"),
        (func.lower(_G.approved_by) == bindparam("b_key"))
        | _G.client_id.in_(
            select(_C.id)
            .where(
                _C.workspace_id == bindparam("b_ws"),
                func.lower(_C.created_by) == bindparam("b_key"),
            )
            .scalar_subquery()
        ),
    )
    .with_for_update()
)


def _revoke(conn: Connection, grant_id: str) -> None:
    """Delete a grant (first: its row is the family's lock) with its codes, refresh tokens
    and the access tokens issued with them."""
    conn.execute(_FAMILY_ACCESS, {"b_id": grant_id})
    conn.execute(_FAMILY_REFRESH, {"b_id": grant_id})
    conn.execute(_FAMILY_CODES, {"b_id": grant_id})
    conn.execute(_DELETE_GRANT, {"b_id": grant_id})


def revoke_admin_grants(conn: Connection, workspace_id: str, email: str) -> int:
    """Revoke the grants the admin approved and those of the clients they created."""
    params = {"b_ws": workspace_id, "b_key": email.lower()}
    ids = conn.execute(_ADMIN_GRANTS, params).scalars().all()
    for grant_id in ids:
        _revoke(conn, grant_id)
    return len(ids)


def _admin_active(conn: Connection, workspace_id: str, email: str) -> bool:
    row = conn.execute(_ADMIN_ACTIVE, {"b_ws": workspace_id, "b_key": email.lower()}).first()
    return row is not None and bool(row.active)


def _grant_stands(conn: Connection, grant: AuthorizationGrant) -> bool:
    """The grant's client is active, and its creator and approver are active admins."""
    client = conn.execute(_CLIENT, {"b_id": grant.client_id}).first()
    return (
        client is not None
        and client.state == CLIENT_ACTIVE
        and _admin_active(conn, grant.workspace_id, client.created_by)
        and _admin_active(conn, grant.workspace_id, grant.approved_by)
    )


class AuthorizationAccounts:
    """The :class:`~scimcore.authorization.AuthorizationStorage` methods, each in its
    transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    def _begin(self, writing: bool) -> AbstractContextManager[Connection]:
        return self._transactions.begin(IMMEDIATE if writing else NO_BEGIN)

    def add_redirect_uri(self, uri: RedirectUri) -> bool:
        with self._begin(writing=True) as conn:
            if conn.execute(_ACTIVE_CLIENT, {"b_id": uri.client_id}).first() is None:
                return False
            conn.execute(OAUTH_REDIRECT_URIS.insert(), _URI_ROWS.to_row(uri))
            return True

    def list_redirect_uris(self, client_id: str) -> Sequence[RedirectUri]:
        with self._begin(writing=False) as conn:
            rows = conn.execute(_LIST_URIS, {"b_id": client_id}).all()
        found = [_URI_ROWS.from_row(r) for r in rows]
        return sorted(found, key=lambda u: (u.created_at, u.id))

    def delete_redirect_uri(self, client_id: str, uri_id: str) -> bool:
        with self._begin(writing=True) as conn:
            return bool(conn.execute(_DELETE_URI, {"b_id": client_id, "b_uri": uri_id}).rowcount)

    def add_code(self, grant: AuthorizationGrant, code: AuthorizationCode) -> bool:
        with self._begin(writing=True) as conn:
            if not _grant_stands(conn, grant):
                return False
            cutoff = code.created_at - USED_CODES_KEPT
            conn.execute(_PURGE_CODES, {"b_id": code.client_id, "b_cutoff": cutoff})
            conn.execute(_PURGE_GRANTS, {"b_id": code.client_id})
            conn.execute(OAUTH_GRANTS.insert(), _GRANT_ROWS.to_row(grant))
            conn.execute(OAUTH_CODES.insert(), _CODE_ROWS.to_row(code))
            return True

    def consume_code(self, code_hash: str, client_id: str, now: datetime) -> CodeUse | None:
        with self._begin(writing=True) as conn:
            found = self._locked(conn, _GRANT_OF_CODE, {"b_hash": code_hash})
            row = conn.execute(_CODE, {"b_hash": code_hash}).first() if found else None
            code = _CODE_ROWS.from_row(row) if row is not None else None
            if code is None or found is None or code.client_id != client_id:
                return None
            if code.used_at is not None:
                _revoke(conn, found.id)
                return CodeUse(code, found, reused=True)
            conn.execute(_USE_CODE, {"b_hash": code_hash, "b_now": now})
            return CodeUse(code, found)

    def consume_refresh_token(
        self, token_hash: str, client_id: str, now: datetime
    ) -> RefreshUse | None:
        with self._begin(writing=True) as conn:
            found = self._locked(conn, _GRANT_OF_REFRESH, {"b_hash": token_hash})
            row = conn.execute(_REFRESH, {"b_hash": token_hash}).first() if found else None
            token = _REFRESH_ROWS.from_row(row) if row is not None else None
            if token is None or found is None or token.client_id != client_id:
                return None
            if token.used_at is not None:
                _revoke(conn, found.id)
                return RefreshUse(token, found, reused=True)
            conn.execute(_USE_REFRESH, {"b_hash": token_hash, "b_now": now})
            return RefreshUse(token, found)

    @staticmethod
    def _locked(
        conn: Connection, statement: Any, params: dict[str, str]
    ) -> AuthorizationGrant | None:
        """The grant ``statement`` finds, its row locked (PostgreSQL)."""
        row = conn.execute(statement, params).first()
        return _GRANT_ROWS.from_row(row) if row is not None else None

    def issue_tokens(self, access: AccessToken, refresh: RefreshToken) -> bool:
        with self._begin(writing=True) as conn:
            grant = self._locked(conn, _GRANT_LOCKED, {"b_id": refresh.grant_id})
            if grant is None or not _grant_stands(conn, grant):
                return False
            conn.execute(_PURGE_REFRESH, {"b_id": grant.id, "b_now": refresh.created_at})
            conn.execute(OAUTH_ACCESS_TOKENS.insert(), _ACCESS_ROWS.to_row(access))
            conn.execute(OAUTH_REFRESH_TOKENS.insert(), _REFRESH_ROWS.to_row(refresh))
            return True

    def revoke_admin_grants(self, workspace_id: str, email: str) -> int:
        with self._begin(writing=True) as conn:
            return revoke_admin_grants(conn, workspace_id, email)
