"""The one way statements run: prebuilt statements straight on the DBAPI cursor.

Every statement of the backend runs here: :func:`run` and :class:`Runner` (the transaction's
statements), :func:`run_dbapi` (a read outside any transaction), :func:`driver` (``BEGIN``,
``COMMIT``, ``ROLLBACK`` and ``SAVEPOINT`` on a SQLite driver connection). What a database error
means for SCIM (:func:`is_unique_violation`, :func:`indexable`) is decided here too. This module
is also the only one that uses SQLAlchemy's private API (the compiled statement's parameter and
result processors: see :data:`PRIVATE_API`, pinned by ``tests/test_sql_execute.py``).

Each :meth:`Connection.execute` costs tens of microseconds of Python (events, compiled-cache
lookup, parameter processing, ``Result`` setup): more than an indexed SQLite statement itself.
:func:`run` compiles a prebuilt statement once per dialect (and set of parameter names) with
SQLAlchemy, keeping its SQL text, parameter order and the very bind and result processors
SQLAlchemy would apply (date-times, booleans), then executes it on the connection's DBAPI cursor,
inside the transaction SQLAlchemy manages, so commit and rollback are unchanged. DBAPI errors are
wrapped exactly as SQLAlchemy wraps them (``IntegrityError`` ...).

When ``before_cursor_execute`` listeners are attached (statement logging, tests that inspect the
SQL), :func:`run` goes through :meth:`Connection.execute` so that they see every statement.

On SQLite, two shapes keep the ``sqlite3`` module from releasing the GIL more than it must.
CPython's module (3.11) releases it around every call into SQLite: each step, each reset, the
column count, the last row id and, while a row is read, each column's type. Under a threaded
server every release lets another request thread take the GIL, and taking it back costs two
thread switches. So a read whose row has several columns is *packed*: SQLite returns them as
one JSON array (``json_array``), read as one column and parsed by orjson (when installed:
extra ``speed``); the bulky JSON documents (columns marked ``info={"bulky": True}``: a user's
document, a card) stay columns of their own rather than be quoted into the array and unquoted
again. And a write that returns no rows runs through ``executemany`` with its one set of
parameters, which does not ask for the last row id. Per request, in-process: a create releases
the GIL 47 times instead of 68, a deactivation 36 instead of 60, a ``GET`` 9 instead of 19
(docs/performance.md, session 12).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Engine, Executable, Label, Select, func
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

from scimcore.errors import InvalidValueError

from .tables import UtcDateTime, aware_utc, naive_utc

__all__ = [
    "PRIVATE_API",
    "Outcome",
    "Prepared",
    "Runner",
    "check_private_api",
    "driver",
    "indexable",
    "is_unique_violation",
    "listened",
    "prepared",
    "run",
    "run_dbapi",
]

_Processor = Callable[[Any], Any]

_array: Callable[[str], list[Any]] | None
try:  # pragma: no cover - which branch runs depends on the environment
    from orjson import loads as _array
except ImportError:  # pragma: no cover - packing needs the accelerator (extra "speed")
    _array = None

#: A SQLite read is packed (see the module's documentation) when its row has at least this many
#: columns to pack, and at most :data:`_PACK_MAX` (SQLite's functions take up to 127 arguments).
_PACK_MIN = 3
_PACK_MAX = 100
#: The Python types whose SQLite values a JSON array carries exactly (no REAL: JSON text would
#: round a double to 15 digits; no BLOB: JSON cannot hold one).
_PACKABLE = (str, int, bool, datetime)


def _packable(column: Any) -> bool:
    try:
        return issubclass(column.type.python_type, _PACKABLE)
    except NotImplementedError:  # a type that does not say (a NULL literal ...): as it is
        return False


def _bulky(column: Any) -> bool:
    """A column marked ``info={"bulky": True}`` (a JSON document), or a label of one."""
    inner = column.element if isinstance(column, Label) else column
    return isinstance(inner, Column) and bool(inner.info.get("bulky"))


def _packed(
    stmt: Executable, dialect: Dialect, keys: tuple[str, ...], compiled: SQLCompiler
) -> tuple[str, list[tuple[int, int]]] | None:
    """The SQL of ``stmt`` with its packable columns in one ``json_array`` (first) and its
    bulky ones after it, and where the bulky ones go back: (index in the row, index in the
    packed row); ``None`` when ``stmt`` is no plain read of enough packable columns, or when
    packing would change anything but its column list. Why: see the module's documentation
    (a GET releases the GIL 9 times instead of 19)."""
    if not isinstance(stmt, Select):
        return None
    selected = list(stmt.selected_columns)
    if len(selected) != len(compiled._result_columns):
        return None
    small = [c for c in selected if not _bulky(c)]
    if not _PACK_MIN <= len(small) <= _PACK_MAX or not all(_packable(c) for c in small):
        return None
    bulky = [(i, c) for i, c in enumerate(selected) if _bulky(c)]
    packed = stmt.with_only_columns(
        func.json_array(*small), *(c for _, c in bulky), maintain_column_froms=True
    )

    def rendered(froms: Sequence[Any]) -> list[str]:
        return [str(f.compile(dialect=dialect)) for f in froms]

    if rendered(stmt.get_final_froms()) != rendered(packed.get_final_froms()):
        return None
    out = packed.compile(dialect=dialect, column_keys=list(keys))
    assert isinstance(out, SQLCompiler)
    if out.positiontup != compiled.positiontup:  # the same parameters in the same order
        return None
    return out.string, [(i, 1 + k) for k, (i, _) in enumerate(bulky)]


class Prepared:
    """One statement compiled for one dialect: SQL text, parameters and processors."""

    __slots__ = (
        "_binds",
        "_bulky",
        "_make",
        "_names",
        "_optional",
        "_pick",
        "_positional",
        "_processors",
        "_results",
        "many",
        "packed",
        "sql",
    )

    def __init__(self, stmt: Executable, dialect: Dialect, keys: tuple[str, ...]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("statements with post-compile parameters are not supported")
        self.sql: str = compiled.string
        #: SQLite: the row comes as a JSON array (and the bulky columns after it).
        self.packed = False
        self._bulky: list[tuple[int, int]] = []
        #: SQLite: a write that returns no rows, run through ``executemany``.
        self.many = False
        processors: dict[str, Any] = dict(compiled._bind_processors)
        if dialect.name == "sqlite":
            packing = _packed(stmt, dialect, keys, compiled) if _array is not None else None
            if packing is not None:
                self.sql, self._bulky = packing
                self.packed = True
            self.many = isinstance(stmt, UpdateBase) and not compiled._result_columns
            for bind, name in compiled.bind_names.items():  # what SQLAlchemy binds, at once
                if isinstance(bind.type, UtcDateTime):
                    processors[name] = _sqlite_utc_text
                elif isinstance(bind.type, Boolean):
                    processors[name] = _sqlite_boolean
        defaults: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                defaults[name] = bind.effective_value
        names = compiled.positiontup if dialect.positional else list(compiled.bind_names.values())
        assert names is not None
        # (name, processor, default, required) per parameter, in order.
        self._binds: list[tuple[str, _Processor | None, Any, bool]] = []
        for name in names:
            processor = processors.get(name)
            assert processor is None or callable(processor)
            self._binds.append((name, processor, defaults.get(name), name not in defaults))
        self._positional = dialect.positional
        # The common case, every parameter given: one C call picks the values in order.
        self._names = tuple(names)
        self._optional = frozenset(defaults)
        self._pick = _picker(self._names)
        self._processors = [(i, p) for i, (_, p, _, _) in enumerate(self._binds) if p is not None]
        columns = compiled._result_columns
        self._results: list[tuple[int, _Processor]] = []
        for index, column in enumerate(columns):
            if dialect.name == "sqlite" and isinstance(column.type, UtcDateTime):
                self._results.append((index, _sqlite_utc_datetime))
                continue
            result = column.type._cached_result_processor(dialect, None)
            if result is not None:
                self._results.append((index, result))
        # Rows made by ``tuple.__new__``, a C call (``_make`` is Python code that checks the
        # length, which the columns fix): a page of 100 users -8 % bytecodes.
        row_type = namedtuple("Row", [c.keyname for c in columns], rename=True)  # type: ignore[misc]
        self._make: Callable[[Iterable[Any]], Any] = partial(tuple.__new__, row_type)

    def args(self, params: Mapping[str, Any]) -> Any:
        """The DBAPI parameters (a tuple or a dict, per the dialect's paramstyle)."""
        values: Sequence[Any]
        if self._optional and not self._optional <= params.keys():  # one left to its default
            values = []
            for name, processor, default, required in self._binds:
                value = params[name] if required or name in params else default
                values.append(processor(value) if processor is not None else value)
        elif self._processors:
            values = list(self._pick(params))
            for index, convert in self._processors:
                values[index] = convert(values[index])
        else:
            values = self._pick(params)
        if self._positional:  # (a tuple already is not copied)
            return tuple(values)
        return dict(zip(self._names, values, strict=True))

    def rows(self, raw: list[Sequence[Any]]) -> list[Any]:
        """The rows of a result: :meth:`row` each, or when nothing is to be processed (a page
        of documents), the named tuples straight, with no Python call per row."""
        return list(map(self.row if self.packed or self._results else self._make, raw))

    def row(self, raw: Sequence[Any]) -> Any:
        """A row with attribute access by column name, its values processed."""
        if self.packed:  # a list of its own: processed in place
            assert _array is not None
            values = _array(raw[0])
            for index, at in self._bulky:  # in order: each goes where the row had it
                values.insert(index, raw[at])
        elif self._results:
            values = list(raw)
        else:
            return self._make(raw)
        for index, processor in self._results:
            values[index] = processor(values[index])
        return self._make(values)


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``params`` to the tuple of the values of ``names``, in order (``KeyError`` if one is
    missing)."""
    if not names:
        return lambda params: ()
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda params: (get(params),)
    return get  # itemgetter of several names: a tuple


# Date-time conversions are cached: one write stores its instant in several columns (the
# user, the person, the mail, the log entry: see ScimService._instant), and every write reads
# the same token and workspace dates back. ``isoformat`` alone cost about as many instructions
# as binding and running one INSERT.


@lru_cache(maxsize=1024)
def _utc_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """:class:`.tables.UtcDateTime` to SQLite text: naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``
    (what SQLAlchemy's SQLite ``DATETIME`` writes, which fixed width keeps in time order)."""
    if value is not None and value.tzinfo is timezone.utc:  # the usual value: no conversion
        return _utc_text(value)
    naive = naive_utc(value)
    return naive.isoformat(" ", "microseconds") if naive is not None else None


#: SQLite text back to an aware UTC ``datetime``, as :class:`.tables.UtcDateTime` reads it,
#: cached and called straight (one C call): a SQLite value is text, a number or ``None``.
_sqlite_utc_datetime = lru_cache(maxsize=1024)(aware_utc)

#: SQLAlchemy's ``Boolean`` parameter on SQLite (``None``, ``False``, ``True`` to ``None``, 0,
#: 1; anything else refused, here by ``KeyError``) in one C call instead of two Python ones.
_sqlite_boolean: _Processor = {None: None, False: 0, True: 1}.__getitem__


@lru_cache(maxsize=512)
def prepared(stmt: Executable, dialect: Dialect, keys: tuple[str, ...] = ()) -> Prepared:
    """The :class:`Prepared` form of a statement (``keys``: the parameters of an ``INSERT`` or
    the ``SET`` of an ``UPDATE``, as ``Connection.execute`` would take them from its dict)."""
    return Prepared(stmt, dialect, keys)


class Outcome:
    """What a statement returned: its rows (processed) and its row count."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


def run(
    conn: Connection,
    stmt: Executable,
    params: Mapping[str, Any],
    *,
    columns: bool = False,
    fetch: bool = True,
) -> Outcome:
    """Execute ``stmt`` with ``params`` on ``conn``'s cursor (in its current transaction).

    ``columns``: the parameter names fill the columns of an ``INSERT`` or ``UPDATE`` (the
    statement is compiled for this set of names). ``fetch``: read the returned rows.
    """
    if conn.dispatch.before_cursor_execute:  # listened(conn), inlined: every statement asks
        # preserve_rowcount: SQLAlchemy keeps the row count of an INSERT only when asked to,
        # and "INSERT ... ON CONFLICT DO NOTHING" tells by it whether the row went in.
        result = conn.execute(stmt, dict(params), execution_options={"preserve_rowcount": True})
        rows = list(result.all()) if fetch and result.returns_rows else []
        return Outcome(rows, result.rowcount)
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    return run_dbapi(dbapi_conn, conn.dialect, stmt, params, columns=columns, fetch=fetch)


class Runner(partial[Outcome]):
    """:func:`run` bound to one connection for the length of one transaction: a
    :func:`functools.partial` of :func:`run_dbapi` on its DBAPI connection (of :func:`run` when
    listeners are attached), so that calling it adds no Python call to each statement.

    Whether statement listeners are attached is decided once, when the transaction's store is
    made, not at every statement: asking SQLAlchemy's event system cost more instructions
    than everything else :func:`run` adds to a statement (5 % of a create). A listener
    attached in the middle of a transaction sees the statements of the next one."""

    __slots__ = ()

    def __new__(cls, conn: Connection) -> Runner:
        if conn.dispatch.before_cursor_execute:  # listeners: through SQLAlchemy, as run() does
            return super().__new__(cls, run, conn)
        dbapi_conn = conn.connection.dbapi_connection
        return super().__new__(cls, run_dbapi, dbapi_conn, conn.dialect)


def run_dbapi(
    dbapi_conn: Any,
    dialect: Dialect,
    stmt: Executable,
    params: Mapping[str, Any],
    *,
    columns: bool = False,
    fetch: bool = True,
) -> Outcome:
    """:func:`run` on a DBAPI connection (no listeners are called)."""
    prep = prepared(stmt, dialect, tuple(params) if columns else ())
    args = prep.args(params)
    cursor = dbapi_conn.cursor()
    try:
        try:
            if prep.many:  # no last row id asked for (see the module's documentation)
                cursor.executemany(prep.sql, (args,))
                rows = []
            else:
                cursor.execute(prep.sql, args)
                rows = (
                    prep.rows(cursor.fetchall()) if fetch and cursor.description is not None else []
                )
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                prep.sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        return Outcome(rows, cursor.rowcount)
    finally:
        cursor.close()


def listened(target: Connection | Engine) -> bool:
    """Whether ``before_cursor_execute`` listeners are attached to ``target`` (then every
    statement goes through :meth:`Connection.execute`, so that they see it)."""
    return bool(target.dispatch.before_cursor_execute)


def driver(dbapi_conn: Any, sql: str) -> None:
    """``BEGIN``, ``COMMIT``, ``ROLLBACK`` or a savepoint statement on a SQLite driver
    connection, its errors wrapped as SQLAlchemy wraps them. Straight to the driver: through
    SQLAlchemy's statement machinery a ``BEGIN`` costs as much CPU as a query."""
    try:
        dbapi_conn.execute(sql)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


# --- what a database error means ----------------------------------------------------------------


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a unique index's refusal (on either engine)."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    name = getattr(orig, "sqlite_errorname", None)  # sqlite3 (Python 3.11+)
    if name is not None:
        return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    text = str(orig)
    return "UNIQUE constraint failed" in text or "duplicate key" in text


#: PostgreSQL's SQLSTATE for an index entry over its B-tree limit (about 2,700 bytes).
_PROGRAM_LIMIT_EXCEEDED = "54000"


def indexable() -> AbstractContextManager[None]:
    """A user's indexed values that PostgreSQL cannot index (an entry over about 2,700 bytes
    after compression: a ``userName``, ``externalId``, ``displayName`` or e-mail value of
    thousands of characters) are bad input, 400 ``invalidValue``, not a server error. SQLite
    has no such limit. The transaction is rolled back as after any error."""
    return _INDEXABLE


class _Indexable:
    """:func:`indexable`'s context manager (a generator's costs ~70 bytecodes per write)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, DBAPIError) and (
            getattr(exc.orig, "sqlstate", None) == _PROGRAM_LIMIT_EXCEEDED
        ):
            raise InvalidValueError(
                "a userName, externalId, displayName or e-mail value is too long to be indexed "
                "(PostgreSQL allows about 2,700 bytes per index entry)"
            ) from None


_INDEXABLE = _Indexable()


# --- SQLAlchemy's private API ---------------------------------------------------------------------

#: What this module uses of SQLAlchemy beyond its documented API, on a compiled statement
#: (:class:`~sqlalchemy.sql.compiler.SQLCompiler`), its result columns and types, a
#: connection and an error class. SQLAlchemy may change any of it in a minor release;
#: :func:`check_private_api` tells which part is gone.
PRIVATE_API = (
    "SQLCompiler._result_columns (entries with .keyname and .type)",
    "SQLCompiler._bind_processors",
    "SQLCompiler.bind_names, .positiontup",
    "SQLCompiler.literal_execute_params, .post_compile_params",
    "BindParameter.required, .effective_value",
    "TypeEngine._cached_result_processor(dialect, coltype)",
    "Connection.dispatch.before_cursor_execute, Engine.dispatch.before_cursor_execute",
    "DBAPIError.instance(statement, params, orig, dbapi_base_err, dialect=...)",
)


def check_private_api(dialect: Dialect) -> list[str]:
    """What of :data:`PRIVATE_API` the installed SQLAlchemy lacks for ``dialect`` (empty when
    everything is there). Compiles a statement with a parameter, a default and a date-time
    result, as :class:`Prepared` does."""
    from sqlalchemy import bindparam, literal_column, select

    stmt: Select[Any] = select(literal_column("1").label("x")).where(
        literal_column("1") == bindparam("b", 1, required=False)
    )
    compiled: Any = stmt.compile(dialect=dialect)
    missing: list[str] = []
    columns = getattr(compiled, "_result_columns", None)
    if not isinstance(columns, list) or not all(
        hasattr(c, "keyname") and hasattr(c, "type") for c in columns
    ):
        missing.append(PRIVATE_API[0])
    if not isinstance(getattr(compiled, "_bind_processors", None), Mapping):
        missing.append(PRIVATE_API[1])
    if not isinstance(getattr(compiled, "bind_names", None), Mapping) or not hasattr(
        compiled, "positiontup"
    ):
        missing.append(PRIVATE_API[2])
    if not all(hasattr(compiled, a) for a in ("literal_execute_params", "post_compile_params")):
        missing.append(PRIVATE_API[3])
    binds = list(getattr(compiled, "bind_names", {}))
    known = all(hasattr(b, "required") and hasattr(b, "effective_value") for b in binds)
    if not binds or not known:
        missing.append(PRIVATE_API[4])
    processor = getattr(UtcDateTime(), "_cached_result_processor", None)
    if not callable(processor):
        missing.append(PRIVATE_API[5])
    if not all(
        hasattr(getattr(cls, "dispatch", None), "before_cursor_execute")
        for cls in (Connection, Engine)
    ):
        missing.append(PRIVATE_API[6])
    if not callable(getattr(DBAPIError, "instance", None)):
        missing.append(PRIVATE_API[7])
    return missing
