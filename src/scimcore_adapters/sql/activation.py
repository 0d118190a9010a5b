"""Activation links of the SQL storage (R3.7): rows keyed by the SHA-256 of the token.

:class:`ActivationStoreMixin` (a :class:`~.product.ProductStore` base) stores and uses a link
inside the workspace's transaction; :class:`ActivationLookupMixin` (a
:class:`~.storage.SqlStorage` base) finds a link by its hash across workspaces, which is all
the activation page knows.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from scimcore.storage import ActivationLink

from .tables import ACTIVATION_LINKS

__all__ = ["ActivationLookupMixin", "ActivationStoreMixin"]

_T = ACTIVATION_LINKS
_INSERT = _T.insert()
_USE = (
    _T.update()
    .where(
        _T.c.workspace_id == bindparam("b_ws"),
        _T.c.token_hash == bindparam("b_hash"),
        _T.c.used_at.is_(None),
    )
    .values(used_at=bindparam("b_when", type_=_T.c.used_at.type))
)
_GET = select(_T).where(_T.c.token_hash == bindparam("b_hash"))


def _link(row: Any) -> ActivationLink:
    return ActivationLink(
        row.token_hash, row.workspace_id, row.person_id, row.created_at, row.expires_at, row.used_at
    )


class ActivationStoreMixin:
    """``save_activation_link`` and ``use_activation_link`` of a workspace's store."""

    _conn: Connection
    _ws: str

    def save_activation_link(self, link: ActivationLink) -> None:
        values = {
            "token_hash": link.token_hash,
            "workspace_id": self._ws,
            "person_id": link.person_id,
            "created_at": link.created_at,
            "expires_at": link.expires_at,
            "used_at": link.used_at,
        }
        self._conn.execute(_INSERT, values)

    def use_activation_link(self, token_hash: str, when: datetime) -> bool:
        params = {"b_ws": self._ws, "b_hash": token_hash, "b_when": when}
        return bool(self._conn.execute(_USE, params).rowcount)


class ActivationLookupMixin:
    """``get_activation_link`` of the storage (across workspaces)."""

    def _tx(self, immediate: bool) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlStorage's

    def get_activation_link(self, token_hash: str) -> ActivationLink | None:
        with self._tx(False) as conn:
            row = conn.execute(_GET, {"b_hash": token_hash}).first()
        return _link(row) if row is not None else None
