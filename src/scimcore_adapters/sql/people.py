"""Team Cards pages of the SQL storage: people searched, filtered and paged (issue 17).

:class:`PeopleMixin` gives :class:`~.product.ProductStore` (so every
:class:`~.storage.SqlUserStore`) :meth:`~scimcore.storage.UserStore.page_people`. The order is
the index ``(workspace_id, user_name_folded, id, active, deprovisioned)``: a page reads the ids
of its rows from that index alone (the state filter too), then the rows themselves by key; a
search is three prefix ranges, on that index and on ``email_folded`` and ``name_folded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, false, func, or_, select, true

from scimcore._json import loads
from scimcore.storage import Person

from .tables import PEOPLE

__all__ = ["PeopleMixin", "page_statements", "person_from_row", "prefix_range"]

#: The highest code point: every string that starts with ``p`` sorts below ``p + _TOP``
#: (by code point: SQLite's BINARY, PostgreSQL's "C" collation, Python).
_TOP = "\U0010ffff"

_STATES: dict[str, ColumnElement[bool]] = {
    "active": and_(PEOPLE.c.active == true(), PEOPLE.c.deprovisioned == false()),
    "inactive": and_(PEOPLE.c.active == false(), PEOPLE.c.deprovisioned == false()),
    "deprovisioned": PEOPLE.c.deprovisioned == true(),
}


def prefix_range(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as an index range (not ``LIKE``, which the index of
    a ``"C"``-collated column serves on neither engine with a bound parameter)."""
    return and_(column >= prefix, column < prefix + _TOP)


def person_from_row(row: Any) -> Person:
    return Person(
        id=row.id,
        user_name=row.user_name,
        email=row.email,
        active=row.active,
        deprovisioned=row.deprovisioned,
        card=loads(row.card),
        created_at=row.created_at,
        updated_at=row.updated_at,
        activated_at=row.activated_at,
    )


def page_statements(
    workspace_id: str, search: str, state: str | None, offset: int, limit: int
) -> tuple[Select[Any], Select[Any]]:
    """The count of a people page's matches and the ids of its rows, in order."""
    where = [PEOPLE.c.workspace_id == workspace_id]
    if state is not None:
        where.append(_STATES[state])
    if search:
        where.append(
            or_(
                prefix_range(PEOPLE.c.user_name_folded, search),
                prefix_range(PEOPLE.c.email_folded, search),
                prefix_range(PEOPLE.c.name_folded, search),
            )
        )
    count = select(func.count()).select_from(PEOPLE).where(*where)
    ids = (
        select(PEOPLE.c.id)
        .where(*where)
        .order_by(PEOPLE.c.user_name_folded, PEOPLE.c.id)
        .offset(max(offset, 0))
        .limit(max(limit, 0))
    )
    return count, ids


class PeopleMixin:
    """``page_people`` over the store's connection and workspace."""

    _conn: Connection
    _ws: str

    def page_people(
        self, search: str, state: str | None, offset: int, limit: int
    ) -> tuple[int, Sequence[Person]]:
        count_stmt, ids_stmt = page_statements(self._ws, search, state, offset, limit)
        count = int(self._conn.execute(count_stmt).scalar_one())
        if limit <= 0 or offset >= count:
            return count, []
        ids = self._conn.execute(ids_stmt).scalars().all()
        rows = self._conn.execute(
            select(PEOPLE).where(PEOPLE.c.workspace_id == self._ws, PEOPLE.c.id.in_(ids))
        )
        by_id = {row.id: person_from_row(row) for row in rows}
        return count, [by_id[i] for i in ids if i in by_id]
