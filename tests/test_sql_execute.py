"""The SQLAlchemy private API that ``sql/execute.py`` relies on is still there.

``execute.py`` runs prebuilt statements on the DBAPI cursor with the very parameter and result
processors SQLAlchemy would apply, which it reads from a compiled statement's private
attributes. A SQLAlchemy upgrade that renames one of them must fail here, by name, rather than
as an ``AttributeError`` deep in a request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from scimcore_adapters.sql.execute import PRIVATE_API, check_private_api, prepared, run_dbapi
from scimcore_adapters.sql.tables import UtcDateTime

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
}


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_the_private_api_execute_relies_on_is_there(name: str) -> None:
    """Fails with the list of what is gone when a SQLAlchemy upgrade removes it."""
    dialect: Dialect = DIALECTS[name]
    missing = check_private_api(dialect)
    assert missing == [], (
        "scimcore_adapters/sql/execute.py relies on SQLAlchemy internals that this version "
        f"({__import__('sqlalchemy').__version__}) no longer has: {missing}; adapt "
        "execute.Prepared (or pin sqlalchemy below this version)"
    )


def test_the_check_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: a compiler without its result columns is reported."""
    from sqlalchemy.sql.compiler import SQLCompiler

    monkeypatch.delattr(SQLCompiler, "_bind_processors")
    assert check_private_api(sqlite.dialect()) == [PRIVATE_API[1]]


def test_prepared_statements_round_trip_through_the_private_processors(tmp_path: Any) -> None:
    """What the private API yields works end to end: a date-time parameter is bound with the
    processor SQLAlchemy would use and read back aware, a default fills a left-out
    parameter, and rows have attribute access by column name."""
    table = Table("t", MetaData(), Column("k", String), Column("at", UtcDateTime))
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table.metadata.create_all(engine)
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    try:
        with engine.begin() as conn:
            dbapi_conn = conn.connection.dbapi_connection
            insert = table.insert().values(k=bindparam("b_k", "dflt", required=False))
            assert (
                run_dbapi(dbapi_conn, conn.dialect, insert, {"at": when}, columns=True).rowcount
                == 1
            )
            read = select(table.c.k, table.c.at)
            rows = run_dbapi(dbapi_conn, conn.dialect, read, {}).rows
            assert [(r.k, r.at) for r in rows] == [("dflt", when)]
            assert prepared(read, conn.dialect).sql.startswith("SELECT t.k, t.at")
    finally:
        engine.dispose()


def test_indexable_turns_an_index_entry_over_the_limit_into_bad_input() -> None:
    """PostgreSQL's "index row size exceeds maximum" (SQLSTATE 54000) is a 400
    ``invalidValue``; any other database error passes as it is; a clean block passes."""
    from sqlalchemy.exc import DBAPIError

    from scimcore.errors import InvalidValueError
    from scimcore_adapters.sql.execute import indexable

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    def failing(sqlstate: str) -> DBAPIError:
        return DBAPIError("INSERT ...", {}, Orig(sqlstate))

    with indexable():
        pass
    with pytest.raises(InvalidValueError, match="too long to be indexed") as raised, indexable():
        raise failing("54000")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(DBAPIError), indexable():
        raise failing("23505")
    with pytest.raises(KeyError), indexable():
        raise KeyError("x")
