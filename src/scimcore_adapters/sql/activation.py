"""Activation links of the SQL storage (R3.7): rows keyed by the SHA-256 of the token.

:func:`save_activation_link` and :func:`use_activation_link` run inside the workspace's
transaction (a :class:`~.users.SqlUserStore`'s connection); :func:`get_activation_link` finds
a link by its hash across workspaces, which is all the activation page knows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from scimcore.storage import ActivationLink

from .tables import ACTIVATION_LINKS

__all__ = ["get_activation_link", "save_activation_link", "use_activation_link"]

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


def save_activation_link(conn: Connection, workspace_id: str, link: ActivationLink) -> None:
    """Store a new activation link of the workspace."""
    values = {
        "token_hash": link.token_hash,
        "workspace_id": workspace_id,
        "person_id": link.person_id,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "used_at": link.used_at,
    }
    conn.execute(_INSERT, values)


def use_activation_link(
    conn: Connection, workspace_id: str, token_hash: str, when: datetime
) -> bool:
    """Mark the workspace's unused link used at ``when``; ``False`` if unknown or used."""
    params = {"b_ws": workspace_id, "b_hash": token_hash, "b_when": when}
    return bool(conn.execute(_USE, params).rowcount)


def get_activation_link(conn: Connection, token_hash: str) -> ActivationLink | None:
    """The link with this token hash, in whichever workspace."""
    row = conn.execute(_GET, {"b_hash": token_hash}).first()
    return _link(row) if row is not None else None
