"""OAuth 2.0 clients of the SQL storage (issue 20): clients, their secrets and access tokens.

The statements are functions over a connection (:func:`bury_admin_clients` also runs inside
``deactivate_admin``'s transaction, :mod:`.admin_accounts`); :class:`OAuthAccounts` runs each
storage method in a transaction of its own. A client whose admin is deactivated is marked
``dead`` and loses its secrets and access tokens in that same transaction (R2.3, R2.5): nothing
it issued authenticates again, and re-adding the admin revives nothing. The reads for
authentication join the client's workspace and its admin's row, as the tokens' do.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select

from scimcore.oauth_clients import (
    CLIENT_ACTIVE,
    CLIENT_DEAD,
    AccessGrant,
    AccessToken,
    ClientGrant,
    ClientSecret,
    OAuthClient,
)

from .engines import DEFERRED, IMMEDIATE, NO_BEGIN
from .oauth_tables import OAUTH_ACCESS_TOKENS, OAUTH_CLIENT_SECRETS, OAUTH_CLIENTS
from .rows import WORKSPACE_OF_GRANT, RecordRows
from .tables import ADMINS, WORKSPACES
from .transactions import Transactions

__all__ = ["OAuthAccounts", "bury_admin_clients"]

_CLIENT_ROWS = RecordRows(OAuthClient)  # refused_at: the storage's own column
_SECRET_ROWS = RecordRows(ClientSecret)
_ACCESS_ROWS = RecordRows(AccessToken)
#: A client read with an access token (columns ``c_*``).
_CLIENT_OF_GRANT_ROWS = RecordRows(
    OAuthClient, renamed={f.name: f"c_{f.name}" for f in attrs.fields(OAuthClient)}
)

_C, _S, _A = OAUTH_CLIENTS.c, OAUTH_CLIENT_SECRETS.c, OAUTH_ACCESS_TOKENS.c

_GET_CLIENT = select(OAUTH_CLIENTS).where(
    _C.workspace_id == bindparam("b_ws"), _C.id == bindparam("b_id")
)
_LIST_CLIENTS = (
    select(OAUTH_CLIENTS).where(_C.workspace_id == bindparam("b_ws")).order_by(_C.created_at, _C.id)
)
_LIST_SECRETS = (
    select(OAUTH_CLIENT_SECRETS)
    .where(_S.client_id == bindparam("b_id"))
    .order_by(_S.created_at, _S.id)
)
_ACTIVE_CLIENT = select(_C.id).where(_C.id == bindparam("b_id"), _C.state == CLIENT_ACTIVE)
_DELETE_SECRET = delete(OAUTH_CLIENT_SECRETS).where(
    _S.client_id == bindparam("b_id"), _S.id == bindparam("b_secret")
)
_DELETE_SECRETS = delete(OAUTH_CLIENT_SECRETS).where(_S.client_id == bindparam("b_id"))
_DELETE_TOKENS = delete(OAUTH_ACCESS_TOKENS).where(_A.client_id == bindparam("b_id"))
_DELETE_CLIENT = delete(OAUTH_CLIENTS).where(
    _C.workspace_id == bindparam("b_ws"), _C.id == bindparam("b_id")
)
_ADMIN_CLIENTS = select(_C.id).where(
    _C.workspace_id == bindparam("b_ws"),
    func.lower(_C.created_by) == bindparam("b_key"),
    _C.state == CLIENT_ACTIVE,
)
_KILL_CLIENT = (
    OAUTH_CLIENTS.update()
    .where(_C.id == bindparam("b_id"))
    .values(state=CLIENT_DEAD, dead_reason=bindparam("b_reason"))
)
_TOUCH_SECRET = (
    OAUTH_CLIENT_SECRETS.update()
    .where(_S.id == bindparam("b_id"))
    .values(last_used_at=bindparam("b_when", type_=_S.last_used_at.type))
)
_PURGE_EXPIRED = delete(OAUTH_ACCESS_TOKENS).where(
    _A.client_id == bindparam("b_id"),
    _A.expires_at <= bindparam("b_now", type_=_A.expires_at.type),
)
_CLAIM_REFUSAL = (
    OAUTH_CLIENTS.update()
    .where(
        _C.id == bindparam("b_id"),
        or_(
            _C.refused_at.is_(None),
            _C.refused_at <= bindparam("b_cutoff", type_=_C.refused_at.type),
        ),
    )
    .values(refused_at=bindparam("b_when", type_=_C.refused_at.type))
)
_ADMIN_OF_CLIENT = and_(
    ADMINS.c.workspace_id == _C.workspace_id, ADMINS.c.email_key == func.lower(_C.created_by)
)
_WS_COLUMNS = (
    WORKSPACES.c.id.label("ws_id"),
    WORKSPACES.c.slug.label("ws_slug"),
    WORKSPACES.c.created_at.label("ws_created_at"),
    ADMINS.c.active.label("admin_active"),
)
_CLIENT_GRANT = (
    select(OAUTH_CLIENTS, *_WS_COLUMNS)
    .join(WORKSPACES, WORKSPACES.c.id == _C.workspace_id)
    .outerjoin(ADMINS, _ADMIN_OF_CLIENT)
    .where(_C.id == bindparam("b_id"))
)
_ACCESS_GRANT = (
    select(
        OAUTH_ACCESS_TOKENS,
        *(c.label(f"c_{c.name}") for c in OAUTH_CLIENTS.c if c.name != "refused_at"),
        *_WS_COLUMNS,
    )
    .join(OAUTH_CLIENTS, _C.id == _A.client_id)
    .join(WORKSPACES, WORKSPACES.c.id == _A.workspace_id)
    .outerjoin(ADMINS, _ADMIN_OF_CLIENT)
    .where(_A.id == bindparam("b_id"))
)


def bury_admin_clients(conn: Connection, workspace_id: str, email: str, reason: str) -> int:
    """Mark the admin's active clients dead and delete their access tokens."""
    params = {"b_ws": workspace_id, "b_key": email.lower()}
    ids = conn.execute(_ADMIN_CLIENTS, params).scalars().all()
    for client_id in ids:
        conn.execute(_KILL_CLIENT, {"b_id": client_id, "b_reason": reason})
        conn.execute(_DELETE_TOKENS, {"b_id": client_id})
    return len(ids)


class OAuthAccounts:
    """The :class:`~scimcore.oauth_clients.OAuthStorage` methods, each in its transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    def _begin(self, writing: bool) -> AbstractContextManager[Connection]:
        return self._transactions.begin(IMMEDIATE if writing else NO_BEGIN)

    def add_client(self, client: OAuthClient, secret: ClientSecret | None) -> None:
        with self._begin(writing=True) as conn:
            conn.execute(OAUTH_CLIENTS.insert(), _CLIENT_ROWS.to_row(client))
            if secret is not None:
                conn.execute(OAUTH_CLIENT_SECRETS.insert(), _SECRET_ROWS.to_row(secret))

    def get_client(self, workspace_id: str, client_id: str) -> OAuthClient | None:
        with self._begin(writing=False) as conn:
            row = conn.execute(_GET_CLIENT, {"b_ws": workspace_id, "b_id": client_id}).first()
        return _CLIENT_ROWS.from_row(row) if row is not None else None

    def list_clients(self, workspace_id: str) -> Sequence[OAuthClient]:
        with self._begin(writing=False) as conn:
            return [
                _CLIENT_ROWS.from_row(r)
                for r in conn.execute(_LIST_CLIENTS, {"b_ws": workspace_id})
            ]

    def list_secrets(self, client_id: str) -> Sequence[ClientSecret]:
        with self._begin(writing=False) as conn:
            return [
                _SECRET_ROWS.from_row(r) for r in conn.execute(_LIST_SECRETS, {"b_id": client_id})
            ]

    def add_secret(self, secret: ClientSecret) -> bool:
        with self._begin(writing=True) as conn:
            if conn.execute(_ACTIVE_CLIENT, {"b_id": secret.client_id}).first() is None:
                return False
            conn.execute(OAUTH_CLIENT_SECRETS.insert(), _SECRET_ROWS.to_row(secret))
            return True

    def delete_secret(self, client_id: str, secret_id: str) -> bool:
        with self._begin(writing=True) as conn:
            params = {"b_id": client_id, "b_secret": secret_id}
            return bool(conn.execute(_DELETE_SECRET, params).rowcount)

    def delete_client(self, workspace_id: str, client_id: str) -> bool:
        with self._begin(writing=True) as conn:
            conn.execute(_DELETE_SECRETS, {"b_id": client_id})
            conn.execute(_DELETE_TOKENS, {"b_id": client_id})
            params = {"b_ws": workspace_id, "b_id": client_id}
            return bool(conn.execute(_DELETE_CLIENT, params).rowcount)

    def bury_admin_clients(self, workspace_id: str, email: str, reason: str) -> int:
        with self._begin(writing=True) as conn:
            return bury_admin_clients(conn, workspace_id, email, reason)

    def claim_client_refusal(self, client_id: str, when: datetime, interval: timedelta) -> bool:
        params = {"b_id": client_id, "b_when": when, "b_cutoff": when - interval}
        with self._begin(writing=True) as conn:
            return bool(conn.execute(_CLAIM_REFUSAL, params).rowcount)

    def client_grant(self, client_id: str) -> ClientGrant | None:
        with self._transactions.begin(DEFERRED) as conn:  # client and secrets: one snapshot
            row = conn.execute(_CLIENT_GRANT, {"b_id": client_id}).first()
            if row is None:
                return None
            secrets = conn.execute(_LIST_SECRETS, {"b_id": client_id}).all()
        return ClientGrant(
            _CLIENT_ROWS.from_row(row),
            WORKSPACE_OF_GRANT.from_row(row),
            bool(row.admin_active),
            tuple(_SECRET_ROWS.from_row(s) for s in secrets),
        )

    def touch_secret(self, secret_id: str, when: datetime) -> None:
        with self._begin(writing=True) as conn:
            conn.execute(_TOUCH_SECRET, {"b_id": secret_id, "b_when": when})

    def add_access_token(self, token: AccessToken) -> None:
        with self._begin(writing=True) as conn:
            if conn.execute(_ACTIVE_CLIENT, {"b_id": token.client_id}).first() is None:
                return  # deleted or dead meanwhile: the token could never be used
            conn.execute(_PURGE_EXPIRED, {"b_id": token.client_id, "b_now": token.created_at})
            conn.execute(OAUTH_ACCESS_TOKENS.insert(), _ACCESS_ROWS.to_row(token))

    def access_grant(self, token_id: str) -> AccessGrant | None:
        with self._begin(writing=False) as conn:
            row: Any = conn.execute(_ACCESS_GRANT, {"b_id": token_id}).first()
        if row is None:
            return None
        return AccessGrant(
            _ACCESS_ROWS.from_row(row),
            _CLIENT_OF_GRANT_ROWS.from_row(row),
            WORKSPACE_OF_GRANT.from_row(row),
            bool(row.admin_active),
        )
