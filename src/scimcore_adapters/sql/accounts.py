"""Admins, their passwords and the token tombstones of the SQL storage (R2.3, R2.5, R9.2).

:class:`AccountsMixin` gives :class:`~.storage.SqlStorage` the account methods of the
:class:`~scimcore.storage.Storage` protocol that the console needs. A dead token (its admin was
deactivated) and a deleted one leave the ``tokens`` table for ``token_tombstones``: the
authentication statements, which read ``tokens`` only, cannot find them any more, so nothing a
later ``admin add`` does revives them (R2.5); the tombstone attributes a refused request to its
workspace so that the refusal is logged there (read only on the refusal path).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, or_, select

from scimcore.storage import TOKEN_ACTIVE, TOKEN_DEAD, TOKEN_DELETED, Admin, TokenRecord

from .product import upsert_statement
from .tables import ADMINS, TOKEN_TOMBSTONES, TOKENS

__all__ = ["AccountsMixin"]

_TOKEN_COLUMNS = ("id", "workspace_id", "secret_hash", "label", "created_by")
_TOKEN_TIMES = ("created_at", "last_used_at")
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


def _admin(row: Any) -> Admin:
    return Admin(row.workspace_id, row.email, row.active, row.created_at, row.password_hash)


def _record(row: Any, state: str = TOKEN_ACTIVE, reason: str | None = None) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        workspace_id=row.workspace_id,
        secret_hash=row.secret_hash,
        label=row.label,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        state=state,
        dead_reason=reason,
    )


def _tombstone(row: Any) -> TokenRecord:
    return _record(row, row.state, row.dead_reason)


def _bury(conn: Connection, rows: Sequence[Any], state: str, reason: str | None) -> None:
    """Tombstones for token rows just deleted from ``tokens``."""
    if rows:
        values = [
            {
                **{k: getattr(r, k) for k in (*_TOKEN_COLUMNS, *_TOKEN_TIMES)},
                "state": state,
                "dead_reason": reason,
            }
            for r in rows
        ]
        conn.execute(_BURY, values)


class AccountsMixin:
    """Admins, tokens' listing and deletion, and tombstones (see the module documentation)."""

    def _tx(self, immediate: bool) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlStorage's

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
        values = {
            "workspace_id": admin.workspace_id,
            "email_key": admin.email.lower(),
            "email": admin.email,
            "active": admin.active,
            "created_at": admin.created_at,
            "password_hash": admin.password_hash,
        }
        with self._tx(True) as conn:
            stmt = upsert_statement(conn.dialect.name, ADMINS, _ADMIN_KEYS, tuple(values))
            conn.execute(stmt, values)

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        with self._tx(False) as conn:
            row = conn.execute(_GET_ADMIN, {"b_ws": workspace_id, "b_key": email.lower()}).first()
        return _admin(row) if row is not None else None

    def list_admins(self, workspace_id: str) -> Sequence[Admin]:
        with self._tx(False) as conn:
            rows = conn.execute(_LIST_ADMINS, {"b_ws": workspace_id}).all()
        return [_admin(r) for r in rows]

    def deactivate_admin(self, workspace_id: str, email: str, reason: str) -> Admin | None:
        """Mark the admin inactive and bury their tokens as dead, in one transaction."""
        params = {"b_ws": workspace_id, "b_key": email.lower()}
        with self._tx(True) as conn:
            if not conn.execute(_DEACTIVATE, params).rowcount:
                return None
            _bury(conn, conn.execute(_TAKE_ADMIN_TOKENS, params).all(), TOKEN_DEAD, reason)
            row = conn.execute(_GET_ADMIN, params).first()
        return _admin(row)

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        """Active tokens and dead ones, oldest first."""
        with self._tx(False) as conn:
            live = [_record(r) for r in conn.execute(_LIST_LIVE, {"b_ws": workspace_id})]
            dead = [_tombstone(r) for r in conn.execute(_LIST_DEAD, {"b_ws": workspace_id})]
        return sorted(live + dead, key=lambda t: (t.created_at, t.id))

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        """Delete an active or dead token, leaving a tombstone of state ``deleted``."""
        params = {"b_ws": workspace_id, "b_id": token_id}
        with self._tx(True) as conn:
            taken = conn.execute(_TAKE_TOKEN, params).all()
            if taken:
                _bury(conn, taken, TOKEN_DELETED, None)
                return True
            return bool(conn.execute(_MARK_DELETED, params).rowcount)

    def get_tombstone(self, token_id: str) -> TokenRecord | None:
        with self._tx(False) as conn:
            row = conn.execute(_GET_TOMBSTONE, {"b_id": token_id}).first()
        return _tombstone(row) if row is not None else None

    def claim_refusal(self, token_id: str, when: datetime, interval: timedelta) -> bool:
        params = {"b_id": token_id, "b_when": when, "b_cutoff": when - interval}
        with self._tx(True) as conn:
            return bool(conn.execute(_CLAIM_REFUSAL, params).rowcount)
