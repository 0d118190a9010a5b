"""Team Cards pages of the SQL storage: people searched, filtered and paged (issue 17).

:func:`page_people` answers :meth:`~scimcore.storage.UserStore.page_people` on a
:class:`~.users.SqlUserStore`'s connection. The order is
the index ``(workspace_id, user_name_folded, id, active, deprovisioned)``: a page reads the ids
of its rows from that index alone (the state filter too), then the rows themselves by key; a
search is three prefix ranges, on that index and on ``email_folded`` and ``name_folded``; the
e-mail range asks only for e-mails other than the user name, the rows the e-mail index holds (a
person whose e-mail is the user name matches the user-name range all the same). A
group's people (``group``) are those whose id is among its ``group_members`` rows (the unique
index ``(workspace_id, group_id, member_id)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, false, func, or_, select, true

from scimcore.storage import Person

from .rows import PERSON
from .tables import GROUP_MEMBERS, OWN_EMAIL, PEOPLE

__all__ = ["page_people", "page_statements", "prefix_range"]

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


def page_statements(
    workspace_id: str,
    search: str,
    state: str | None,
    offset: int,
    limit: int,
    group: str | None = None,
) -> tuple[Select[Any], Select[Any]]:
    """The count of a people page's matches and the ids of its rows, in order."""
    where = [PEOPLE.c.workspace_id == workspace_id]
    if group is not None:
        members = select(GROUP_MEMBERS.c.member_id).where(
            GROUP_MEMBERS.c.workspace_id == workspace_id, GROUP_MEMBERS.c.group_id == group
        )
        where.append(PEOPLE.c.id.in_(members))
    if state is not None:
        where.append(_STATES[state])
    if search:
        where.append(
            or_(
                prefix_range(PEOPLE.c.user_name_folded, search),
                and_(prefix_range(PEOPLE.c.email_folded, search), OWN_EMAIL),
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


def page_people(
    conn: Connection,
    workspace_id: str,
    search: str,
    state: str | None,
    offset: int,
    limit: int,
    group: str | None = None,
) -> tuple[int, Sequence[Person]]:
    """The count of the people ``search``, ``state`` and ``group`` match, and the page."""
    count_stmt, ids_stmt = page_statements(workspace_id, search, state, offset, limit, group)
    if group is not None:
        # The group's members are read from its index in any case: sort them once, and
        # count and page the sorted ids (one pass, not a count and then an offset).
        everyone = conn.execute(ids_stmt.offset(None).limit(None)).scalars().all()
        count, ids = len(everyone), everyone[max(offset, 0) : max(offset, 0) + max(limit, 0)]
        if not ids:
            return count, []
    else:
        count = int(conn.execute(count_stmt).scalar_one())
        if limit <= 0 or offset >= count:
            return count, []
        ids = conn.execute(ids_stmt).scalars().all()
    rows = conn.execute(
        select(PEOPLE).where(PEOPLE.c.workspace_id == workspace_id, PEOPLE.c.id.in_(ids))
    )
    by_id = {row.id: PERSON.from_row(row) for row in rows}
    return count, [by_id[i] for i in ids if i in by_id]
