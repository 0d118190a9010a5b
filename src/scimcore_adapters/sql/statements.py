"""How the backend's statements are built: once, with placeholders, per dialect where needed.

Every per-request statement is built once, with ``bindparam`` placeholders (named ``b_*`` so that
they never collide with a column: a parameter named like a column fills that column of an
``INSERT`` or the ``SET`` clause of an ``UPDATE``), and executed with a parameter dict (see
:mod:`.execute`). Building a statement and computing its cache key over embedded literals costs
far more CPU than running it; a prebuilt statement memoizes its cache key, and
:func:`.execute.prepared` compiles it once per dialect. The dialect-specific
``INSERT ... ON CONFLICT`` statements are built here, once per dialect and shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Executable, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite

__all__ = [
    "WS_PARAM",
    "dialect_insert",
    "in_workspace",
    "insert_unless_statement",
    "upsert_statement",
]

#: The parameter every per-workspace statement takes: the workspace's id.
WS_PARAM = "b_ws"


def in_workspace(table: Table) -> Any:
    """``table.workspace_id = :b_ws``."""
    return table.c.workspace_id == bindparam(WS_PARAM)


def dialect_insert(dialect_name: str) -> Callable[[Table], Any]:
    """The ``insert`` constructor with ``ON CONFLICT`` support for a dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    raise ValueError(f"unsupported dialect {dialect_name!r}")


@lru_cache(maxsize=256)
def upsert_statement(
    dialect_name: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Executable:
    """``INSERT (columns) ... ON CONFLICT (keys) DO UPDATE`` of the other columns."""
    stmt = dialect_insert(dialect_name)(table)
    rest = [k for k in columns if k not in keys]
    built: Executable = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={k: stmt.excluded[k] for k in rest}
    )
    return built


@lru_cache(maxsize=256)
def insert_unless_statement(dialect_name: str, table: Table, keys: tuple[str, ...]) -> Executable:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` (every unique constraint when ``keys`` is
    empty): its row count (0 or 1) tells whether the row went in, with no ``RETURNING`` row to
    fetch."""
    stmt = dialect_insert(dialect_name)(table)
    if keys:
        built: Executable = stmt.on_conflict_do_nothing(index_elements=list(keys))
    else:
        built = stmt.on_conflict_do_nothing()
    return built
