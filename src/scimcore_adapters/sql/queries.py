"""The query planner: how a SCIM list request (filter, sort, page) becomes statements.

:func:`query` tries the strategies of :data:`STRATEGIES` in order and answers with the first that
applies. The first two are fast paths with prebuilt statements: every user in insertion order,
and a ``userName eq "..."`` lookup (Entra's, before each create: one indexed statement, no
transaction). Otherwise the filter is translated to SQL (:func:`.compiler.compile_where`): an
*exact* translation is paged in SQL (or, for a sort SQL cannot express, sorted in Python); a
*superset* one has each candidate re-checked in Python with the filter evaluator, so that the
result is always exactly the reference backend's (a candidate of a filter that tests
``groups``, derived from the memberships, is re-checked with its groups attached).

A page that shows where the result ends (a short page, or an empty first page) needs no
``count(*)`` (:func:`_ends_the_result`); the total of an unfiltered query is the kept count of
``user_counts``, not a ``count(*)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Executable, Select, and_, bindparam, func, select

from scimcore._json import loads
from scimcore.filters import Filter, matches, validate
from scimcore.groups import filter_mentions
from scimcore.schema import SchemaRegistry
from scimcore.storage import Page, SortSpec, sort_documents

from .compiler import Translation, compile_where, order_by, user_name_key
from .execute import Runner
from .tables import USER_COUNTS, USERS

__all__ = ["NAMED", "STRATEGIES", "Source", "Strategy", "query", "translate"]

_BATCH = 500

# --- prebuilt statements (see .statements) --------------------------------------------------------

_IN_WORKSPACE = USERS.c.workspace_id == bindparam("b_ws")
_COUNT_ALL = select(USER_COUNTS.c.n).where(USER_COUNTS.c.workspace_id == bindparam("b_ws"))
"""The workspace's number of users, kept by every insert and delete (O(1), not count(*))."""


@lru_cache(maxsize=64)
def _paging(sort: SortSpec | None) -> Select[str] | None:
    """A page of documents in the order of ``sort`` (``None``: not expressible in SQL), to be
    completed with a ``WHERE`` clause; offset and limit are the parameters ``b_offset`` and
    ``b_limit``."""
    order = order_by(sort)
    if order is None:
        return None
    return (
        select(USERS.c.document)
        .order_by(*order)
        .offset(bindparam("b_offset"))
        .limit(bindparam("b_limit"))
    )


_DEFAULT_PAGING = _paging(None)
assert _DEFAULT_PAGING is not None
_PAGE_ALL = _DEFAULT_PAGING.where(_IN_WORKSPACE)
#: ``userName eq "..."`` (see :func:`.compiler.user_name_key`), as :func:`.compiler.compile_where`
#: translates it, prebuilt.
NAMED = and_(USERS.c.user_name_folded.is_not(None), USERS.c.user_name_folded == bindparam("b_name"))
_PAGE_NAMED = _DEFAULT_PAGING.where(_IN_WORKSPACE, NAMED)
_COUNT_NAMED = select(func.count()).select_from(USERS).where(_IN_WORKSPACE, NAMED)


@lru_cache(maxsize=1024)
def _in_workspace(workspace_id: str) -> ColumnElement[bool]:
    """``users.workspace_id = ...`` (immutable, so built once per workspace)."""
    return USERS.c.workspace_id == workspace_id


def translate(filter: Filter | None, registry: SchemaRegistry, workspace_id: str) -> Translation:
    """The ``WHERE`` clause of a query (workspace included) and whether it is exact; the filter
    is validated first."""
    if filter is None:
        return Translation(_in_workspace(workspace_id), True)
    validate(filter, registry)
    return _translate(filter, registry, workspace_id)


def _translate(filter: Filter, registry: SchemaRegistry, workspace_id: str) -> Translation:
    t = compile_where(filter, registry, workspace_id)
    return Translation(and_(_in_workspace(workspace_id), t.clause), t.exact)


# --- a query and what the planner derives from it -----------------------------------------------


class Source(NamedTuple):
    """What the planner reads through: the transaction's connection and statements, the
    workspace, the registry, ``snapshot``, which begins the read snapshot of a store that
    has none yet (before the first of several statements), and ``groups_of``, the groups of
    users by id (``User.groups``, for re-checking a filter that tests them)."""

    conn: Connection
    run: Runner
    workspace_id: str
    registry: SchemaRegistry
    snapshot: Callable[[], None]
    groups_of: Callable[[Sequence[str]], Mapping[str, list[dict[str, Any]]]] | None = None


class _Query:
    """One query: what it asks (validated), and what its strategies need, derived once."""

    def __init__(
        self, src: Source, filter: Filter | None, sort: SortSpec | None, start: int, count: int
    ) -> None:
        self.src, self.filter, self.sort, self.start, self.count = src, filter, sort, start, count
        self.params: dict[str, Any] = {"b_ws": src.workspace_id}
        #: The name of a ``userName eq "..."`` lookup with no sort, else ``None``.
        self.name: str | None = None
        if filter is not None:
            validate(filter, src.registry)
            if sort is None:
                self.name = user_name_key(filter, src.registry)

    @cached_property
    def where(self) -> Translation:
        if self.filter is None:
            return Translation(_in_workspace(self.src.workspace_id), True)
        return _translate(self.filter, self.src.registry, self.src.workspace_id)

    @cached_property
    def paging(self) -> Select[str] | None:
        return _paging(self.sort)

    @cached_property
    def order(self) -> list[Any] | None:
        return order_by(self.sort)

    def kept_count(self) -> int:
        """The workspace's number of users, kept by every insert and delete."""
        return int(self.src.run(_COUNT_ALL, self.params).scalar() or 0)

    def count_where(self) -> int:
        stmt = select(func.count()).select_from(USERS).where(self.where.clause)
        total: int = self.src.conn.execute(stmt).scalar_one()
        return total

    def stream(self, order: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Every document the ``WHERE`` clause selects, in ``order``, read in batches."""
        stmt = (
            select(USERS.c.document)
            .where(self.where.clause)
            .order_by(*order)
            .execution_options(yield_per=_BATCH)
        )
        for text in self.src.conn.execute(stmt).scalars():
            yield loads(text)

    def matching(self, order: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """The documents of :meth:`stream` that the filter matches (a superset re-checked in
        Python), with their groups attached for the check when the filter tests ``groups``."""
        assert self.filter is not None
        filter, registry, groups_of = self.filter, self.src.registry, self.src.groups_of
        if groups_of is None or not filter_mentions(filter, "groups"):
            yield from (d for d in self.stream(order) if matches(filter, d, registry))
            return
        batch: list[dict[str, Any]] = []
        for doc in self.stream(order):
            batch.append(doc)
            if len(batch) == _BATCH:
                yield from _with_groups_matching(filter, registry, groups_of, batch)
                batch = []
        yield from _with_groups_matching(filter, registry, groups_of, batch)

    def paged(self, page: Executable, count_all: Executable, params: dict[str, Any]) -> Page:
        """A page in insertion order with prebuilt statements: ``page`` (``b_offset``,
        ``b_limit`` and ``params``) and ``count_all`` (``params``) when the page does not show
        the total."""
        run, start, count = self.src.run, self.start, self.count
        if count == 0:
            return Page(run(count_all, params).scalar() or 0, [])
        texts = run(page, {**params, "b_offset": start, "b_limit": count}).rows
        docs = [loads(t) for (t,) in texts]
        if _ends_the_result(start, count, docs):
            return Page(start + len(docs), docs)
        return Page(run(count_all, params).scalar() or 0, docs)


def _with_groups_matching(
    filter: Filter,
    registry: SchemaRegistry,
    groups_of: Callable[[Sequence[str]], Mapping[str, list[dict[str, Any]]]],
    docs: list[dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    """Those of ``docs`` that ``filter`` matches once their groups are attached (as the
    reference backend checks them); yielded without the groups."""
    groups = groups_of([d["id"] for d in docs]) if docs else {}
    for doc in docs:
        if matches(filter, {**doc, "groups": groups.get(doc["id"])}, registry):
            yield doc


def _ends_the_result(start: int, count: int, page: Sequence[Any]) -> bool:
    """Whether a page of at most ``count`` rows from ``start`` shows where the result ends (a
    short page, or an empty first page): then ``start + len(page)`` is the total and no
    ``count(*)`` is needed."""
    return len(page) < count and (bool(page) or start == 0)


# --- the strategies -------------------------------------------------------------------------------


def _everyone(q: _Query) -> Page:
    """No filter, no sort: prebuilt statements in insertion order."""
    q.src.snapshot()
    return q.paged(_PAGE_ALL, _COUNT_ALL, q.params)


def _by_name(q: _Query) -> Page:
    """``userName eq "..."``: ``userName`` is unique, so a first page is the whole result, in
    one indexed statement and no snapshot (Entra's lookup before each create)."""
    params = {**q.params, "b_name": q.name}
    if q.start == 0 and q.count > 0:
        one = {**params, "b_offset": 0, "b_limit": 1}
        docs = [loads(t) for (t,) in q.src.run(_PAGE_NAMED, one).rows]
        return Page(len(docs), docs)
    q.src.snapshot()
    return q.paged(_PAGE_NAMED, _COUNT_NAMED, params)


def _exact_paged_in_sql(q: _Query) -> Page:
    """An exact translation and a sort SQL can express: the page from SQL, and a count only
    when the page does not show the total."""
    q.src.snapshot()
    assert q.paging is not None
    everyone = q.filter is None
    total = q.kept_count() if everyone else 0
    if q.count == 0:
        return Page(total if everyone else q.count_where(), [])
    params = {"b_offset": q.start, "b_limit": q.count}
    docs = [loads(t) for t in q.src.conn.execute(q.paging.where(q.where.clause), params).scalars()]
    if everyone:
        return Page(total, docs)
    if _ends_the_result(q.start, q.count, docs):
        return Page(q.start + len(docs), docs)
    return Page(q.count_where(), docs)


def _exact_sorted_in_python(q: _Query) -> Page:
    """An exact translation and a sort SQL cannot express: every match, sorted in Python."""
    q.src.snapshot()
    total = q.kept_count() if q.filter is None else q.count_where()
    assert q.sort is not None
    docs = sort_documents(list(q.stream([USERS.c.seq.asc()])), q.sort)
    return Page(total, docs[q.start : q.start + q.count])


def _superset_in_sql_order(q: _Query) -> Page:
    """A superset translation, sorted in SQL: each candidate re-checked in Python, in the final
    order already, keeping only the page."""
    q.src.snapshot()
    assert q.order is not None
    total, page = 0, []
    for doc in q.matching(q.order):
        if q.start <= total < q.start + q.count:
            page.append(doc)
        total += 1
    return Page(total, page)


def _superset_sorted_in_python(q: _Query) -> Page:
    """A superset translation and a sort SQL cannot express: re-checked and sorted in Python."""
    q.src.snapshot()
    assert q.sort is not None
    docs = sort_documents(list(q.matching([USERS.c.seq.asc()])), q.sort)
    return Page(len(docs), docs[q.start : q.start + q.count])


class Strategy(NamedTuple):
    """One way to answer a query: ``applies`` to a query, ``answer`` it."""

    name: str
    applies: Callable[[_Query], bool]
    answer: Callable[[_Query], Page]


#: The planner's strategies, in the order they are tried: the first that applies answers.
STRATEGIES = (
    Strategy("everyone", lambda q: q.filter is None and q.sort is None, _everyone),
    Strategy("by name", lambda q: q.name is not None, _by_name),
    Strategy(
        "exact, paged in SQL", lambda q: q.where.exact and q.paging is not None, _exact_paged_in_sql
    ),
    Strategy("exact, sorted in Python", lambda q: q.where.exact, _exact_sorted_in_python),
    Strategy("superset, in SQL order", lambda q: q.order is not None, _superset_in_sql_order),
    Strategy("superset, sorted in Python", lambda q: True, _superset_sorted_in_python),
)


def query(
    src: Source, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
) -> Page:
    """The page of users that ``filter`` selects, in the order of ``sort``, from the 1-based
    ``start_index``, at most ``count`` (see the module's documentation)."""
    q = _Query(src, filter, sort, max(start_index, 1) - 1, max(count, 0))
    for strategy in STRATEGIES:
        if strategy.applies(q):
            return strategy.answer(q)
    raise AssertionError("the last strategy applies to every query")  # pragma: no cover
