"""Admins, their passwords and the token tombstones of the SQL storage (R2.3, R2.5, R9.2).

Each function runs its statements on a connection; :class:`~.accounts.Accounts` runs them in
transactions of their own for the storage's account methods. A dead token (its admin was
deactivated) and a deleted one leave the ``tokens`` table for ``token_tombstones``: the
authentication statements, which read ``tokens`` only, cannot find them any more, so nothing a
later ``admin add`` does revives them (R2.5); the tombstone attributes a refused request to its
workspace so that the refusal is logged there (read only on the refusal path).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, or_, select

from scimcore.storage import TOKEN_DEAD, TOKEN_DELETED, Admin, TokenRecord

from .authorization import revoke_admin_grants
from .oauth import bury_admin_clients
from .rows import ADMIN, TOKEN, TOMBSTONE
from .statements import upsert_statement
from .tables import ADMINS, TOKEN_TOMBSTONES, TOKENS

__all__ = [
    "claim_refusal",
    "deactivate_admin",
    "delete_token",
    "get_admin",
    "get_tombstone",
    "list_admins",
    "list_tokens",
    "save_admin",
]

_ADMIN_KEYS = ("workspace_id", "email_key")
_ADMIN_WHERE = (
    ADMINS.c.workspace_id == bindparam("b_ws"),
    ADMINS.c.email_key == bindparam("b_key"),
)
_GET_ADMIN = select(ADMINS).where(*_ADMIN_WHERE)
_LIST_ADMINS = (
    select(ADMINS).where(ADMINS.c.workspace_id == bindparam("b_ws")).order_by(ADMINS.c.email_key)
)
_DEACTIVATE = ADMINS.update().where(*_ADMIN_WHERE).values(active=False)
_TAKE_ADMIN_TOKENS = (
    delete(TOKENS)
    .where(
        TOKENS.c.workspace_id == bindparam("b_ws"),
        func.lower(TOKENS.c.created_by) == bindparam("b_key"),
    )
    .returning(*TOKENS.c)
)
_TAKE_TOKEN = (
    delete(TOKENS)
    .where(TOKENS.c.workspace_id == bindparam("b_ws"), TOKENS.c.id == bindparam("b_id"))
    .returning(*TOKENS.c)
)
_BURY = TOKEN_TOMBSTONES.insert()
_MARK_DELETED = (
    TOKEN_TOMBSTONES.update()
    .where(
        TOKEN_TOMBSTONES.c.workspace_id == bindparam("b_ws"),
        TOKEN_TOMBSTONES.c.id == bindparam("b_id"),
        TOKEN_TOMBSTONES.c.state == TOKEN_DEAD,
    )
    .values(state=TOKEN_DELETED)
)
_LIST_LIVE = select(TOKENS).where(TOKENS.c.workspace_id == bindparam("b_ws"))
_LIST_DEAD = select(TOKEN_TOMBSTONES).where(
    TOKEN_TOMBSTONES.c.workspace_id == bindparam("b_ws"), TOKEN_TOMBSTONES.c.state == TOKEN_DEAD
)
_GET_TOMBSTONE = select(TOKEN_TOMBSTONES).where(TOKEN_TOMBSTONES.c.id == bindparam("b_id"))
_CLAIM_REFUSAL = (
    TOKEN_TOMBSTONES.update()
    .where(
        TOKEN_TOMBSTONES.c.id == bindparam("b_id"),
        or_(
            TOKEN_TOMBSTONES.c.refused_at.is_(None),
            TOKEN_TOMBSTONES.c.refused_at
            <= bindparam("b_cutoff", type_=TOKEN_TOMBSTONES.c.refused_at.type),
        ),
    )
    .values(refused_at=bindparam("b_when", type_=TOKEN_TOMBSTONES.c.refused_at.type))
)


def _bury(conn: Connection, rows: Sequence[Any], state: str, reason: str | None) -> None:
    """Tombstones for token rows just deleted from ``tokens``."""
    if rows:
        values = [TOKEN.to_row(TOKEN.from_row(r), state=state, dead_reason=reason) for r in rows]
        conn.execute(_BURY, values)


# --- statements over a connection: what a storage's account methods run ------------------------


def save_admin(conn: Connection, admin: Admin) -> None:
    """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
    values = ADMIN.to_row(admin, email_key=admin.email.lower())
    conn.execute(upsert_statement(conn.dialect.name, ADMINS, _ADMIN_KEYS, tuple(values)), values)


def get_admin(conn: Connection, workspace_id: str, email: str) -> Admin | None:
    """The admin with this e-mail (case-insensitive), or ``None``."""
    row = conn.execute(_GET_ADMIN, {"b_ws": workspace_id, "b_key": email.lower()}).first()
    return ADMIN.from_row(row) if row is not None else None


def list_admins(conn: Connection, workspace_id: str) -> Sequence[Admin]:
    """The workspace's admins, active or not, by e-mail."""
    return [ADMIN.from_row(r) for r in conn.execute(_LIST_ADMINS, {"b_ws": workspace_id})]


def deactivate_admin(conn: Connection, workspace_id: str, email: str, reason: str) -> Admin | None:
    """Mark the admin inactive and bury their tokens as dead, and their OAuth clients (one
    writing transaction)."""
    params = {"b_ws": workspace_id, "b_key": email.lower()}
    if not conn.execute(_DEACTIVATE, params).rowcount:
        return None
    _bury(conn, conn.execute(_TAKE_ADMIN_TOKENS, params).all(), TOKEN_DEAD, reason)
    bury_admin_clients(conn, workspace_id, email, reason)  # their OAuth clients die too
    revoke_admin_grants(conn, workspace_id, email)  # and the approvals they gave or got
    return ADMIN.from_row(conn.execute(_GET_ADMIN, params).first())


def list_tokens(conn: Connection, workspace_id: str) -> Sequence[TokenRecord]:
    """Active tokens and dead ones, oldest first."""
    live = [TOKEN.from_row(r) for r in conn.execute(_LIST_LIVE, {"b_ws": workspace_id})]
    dead = [TOMBSTONE.from_row(r) for r in conn.execute(_LIST_DEAD, {"b_ws": workspace_id})]
    return sorted(live + dead, key=lambda t: (t.created_at, t.id))


def delete_token(conn: Connection, workspace_id: str, token_id: str) -> bool:
    """Delete an active or dead token, leaving a tombstone of state ``deleted`` (one writing
    transaction)."""
    params = {"b_ws": workspace_id, "b_id": token_id}
    taken = conn.execute(_TAKE_TOKEN, params).all()
    if taken:
        _bury(conn, taken, TOKEN_DELETED, None)
        return True
    return bool(conn.execute(_MARK_DELETED, params).rowcount)


def get_tombstone(conn: Connection, token_id: str) -> TokenRecord | None:
    """The tombstone of a dead or deleted token, or ``None``."""
    row = conn.execute(_GET_TOMBSTONE, {"b_id": token_id}).first()
    return TOMBSTONE.from_row(row) if row is not None else None


def claim_refusal(conn: Connection, token_id: str, when: datetime, interval: timedelta) -> bool:
    """Note a refusal of the tombstone's token at ``when``; ``True`` if none was noted in the
    ``interval`` before (the caller then logs it)."""
    params = {"b_id": token_id, "b_when": when, "b_cutoff": when - interval}
    return bool(conn.execute(_CLAIM_REFUSAL, params).rowcount)
