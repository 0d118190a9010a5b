"""The SQLite transaction engine (``sql/transactions.py``) on a real file, without SCIM.

A table ``t`` of its own and plain SQL: a write commits or rolls back as a whole; writes queued
behind an open one share its ``COMMIT`` (group commit), each all-or-nothing in a savepoint of
its own; a failed shared ``COMMIT`` fails every write of the group; reads run on the thread's
held connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from scimcore_adapters.sql.engines import DEFERRED, IMMEDIATE, NO_BEGIN, create_engine_for
from scimcore_adapters.sql.transactions import GroupCommitError, SqliteTransactions
from tests.conftest import wait_until


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'tx.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        # A row of u needs its row of t, checked at COMMIT: a way to make a COMMIT fail.
        conn.exec_driver_sql(
            "CREATE TABLE u (x INTEGER REFERENCES t (x) DEFERRABLE INITIALLY DEFERRED)"
        )
    yield engine
    engine.dispose()


@pytest.fixture
def tx(engine: Engine) -> Iterator[SqliteTransactions]:
    transactions = SqliteTransactions(engine)
    yield transactions
    transactions.close()


def stored(engine: Engine, table: str = "t") -> list[int]:
    with engine.connect() as conn:
        return [x for (x,) in conn.exec_driver_sql(f"SELECT x FROM {table} ORDER BY x")]


def insert(tx: SqliteTransactions, x: int, *, fail: bool = False, table: str = "t") -> None:
    with tx.begin(IMMEDIATE) as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} (x) VALUES ({x})")
        if fail:
            raise RuntimeError(f"write {x} fails after its INSERT")


def writer_trace(tx: SqliteTransactions) -> list[str]:
    """Every statement the writer connection runs from now on (it is opened by a write)."""
    with tx.begin(IMMEDIATE):
        pass
    assert tx._writer is not None and tx._writer.conn is not None
    dbapi = tx._writer.conn.connection.dbapi_connection
    assert dbapi is not None
    seen: list[str] = []
    dbapi.set_trace_callback(seen.append)
    return seen


def queue(tx: SqliteTransactions, *writes: Callable[[], None]) -> list[threading.Thread]:
    """Start each write in a thread and return once all are queued for the write lock (call
    with a write of this thread open, so that none can run yet)."""
    before = tx._waiting
    threads = [threading.Thread(target=w, daemon=True) for w in writes]
    for thread in threads:
        thread.start()
    wait_until(lambda: tx._waiting >= before + len(writes), "the writes to queue")
    return threads


def run_in_thread(action: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def target() -> None:
        try:
            action()
        except BaseException as exc:  # the test looks at each write's outcome
            errors.append(exc)

    return target


def test_a_write_commits_on_a_clean_exit_and_rolls_back_on_an_error(
    engine: Engine, tx: SqliteTransactions
) -> None:
    insert(tx, 1)
    with pytest.raises(RuntimeError, match="write 2 fails"):
        insert(tx, 2, fail=True)
    insert(tx, 3)
    assert stored(engine) == [1, 3]


def test_queued_writes_share_one_commit(engine: Engine, tx: SqliteTransactions) -> None:
    """Writes queued behind an open write run in its transaction and are committed with it,
    once: one COMMIT for four writes, and every write is stored when its block returns."""
    trace = writer_trace(tx)
    errors: list[BaseException] = []
    with tx.begin(IMMEDIATE) as conn:
        conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
        writes = [run_in_thread(partial(insert, tx, x), errors) for x in (2, 3, 4)]
        threads = queue(tx, *writes)
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert stored(engine) == [1, 2, 3, 4]
    assert trace.count("COMMIT") == 1
    assert trace.count("SAVEPOINT scimcore_write") == 3
    assert tx._group is None


def test_without_group_commit_each_write_commits_alone(engine: Engine) -> None:
    tx = SqliteTransactions(engine, group_commit=False)
    try:
        trace = writer_trace(tx)
        errors: list[BaseException] = []
        with tx.begin(IMMEDIATE) as conn:
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
            threads = queue(tx, run_in_thread(lambda: insert(tx, 2), errors))
        for thread in threads:
            thread.join(timeout=10)
        assert errors == [] and stored(engine) == [1, 2]
        assert trace.count("COMMIT") == 2 and "SAVEPOINT scimcore_write" not in trace
    finally:
        tx.close()


def test_a_failed_write_in_a_group_rolls_back_only_itself(
    engine: Engine, tx: SqliteTransactions
) -> None:
    errors: list[BaseException] = []
    with tx.begin(IMMEDIATE) as conn:
        conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
        threads = queue(
            tx,
            run_in_thread(lambda: insert(tx, 2), errors),
            run_in_thread(lambda: insert(tx, 3, fail=True), errors),
            run_in_thread(lambda: insert(tx, 4), errors),
        )
    for thread in threads:
        thread.join(timeout=10)
    assert [str(e) for e in errors] == ["write 3 fails after its INSERT"]
    assert stored(engine) == [1, 2, 4]


def test_a_failed_group_commit_fails_every_write_of_the_group(
    engine: Engine, tx: SqliteTransactions
) -> None:
    """A queued write leaves a row that breaks a deferred foreign key: the shared COMMIT
    fails; the write that ran it raises the database's error, the one that waited for it
    GroupCommitError (caused by that error); nothing of the group is stored, and the next
    write runs on a new connection."""
    errors: list[BaseException] = []
    first: list[BaseException] = []

    def opener() -> None:
        with tx.begin(IMMEDIATE) as conn:
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
            threads.extend(queue(tx, run_in_thread(lambda: insert(tx, 99, table="u"), errors)))

    threads: list[threading.Thread] = []
    run_in_thread(opener, first)()
    for thread in threads:
        thread.join(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], IntegrityError)
    assert len(first) == 1 and isinstance(first[0], GroupCommitError)
    assert isinstance(first[0].__cause__, IntegrityError)
    assert stored(engine) == [] and stored(engine, "u") == []
    insert(tx, 2)
    assert stored(engine) == [2]


def test_reads_run_on_the_threads_held_connection(tx: SqliteTransactions) -> None:
    """A thread keeps one connection between transactions; a block nested in another of the
    same thread takes a pooled one; a snapshot read sees the writes committed before it."""
    held = tx.thread_connection()
    assert held is not None and tx.thread_connection() is held
    insert(tx, 1)
    with tx.begin(DEFERRED) as snapshot:
        assert snapshot is held
        assert tx.thread_connection() is None  # in a transaction: not to be shared
        with tx.begin(NO_BEGIN) as nested:
            assert nested is not held
            assert nested.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        assert snapshot.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    assert tx.thread_connection() is held


def test_read_turns_are_one_lock_unless_turned_off(engine: Engine) -> None:
    """With read turns, a read of another thread cannot take its turn while one is held (and
    can once it is released); without, a turn holds nothing."""
    on, off = SqliteTransactions(engine), SqliteTransactions(engine, read_turns=False)

    def other_thread_gets_a_turn(tx: SqliteTransactions) -> bool:
        got: list[bool] = []

        def other() -> None:
            turn = tx.read_turn()
            acquire = getattr(turn, "acquire", None)
            got.append(acquire(blocking=False) if acquire is not None else True)
            if got[0] and acquire is not None:
                turn.release()  # type: ignore[attr-defined]

        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        thread.join(timeout=10)
        return got == [True]

    try:
        with on.read_turn():
            assert not other_thread_gets_a_turn(on)
        assert other_thread_gets_a_turn(on)
        with off.read_turn():
            assert other_thread_gets_a_turn(off)
    finally:
        on.close()
        off.close()


def test_a_failed_commit_releases_the_write_lock(engine: Engine, tx: SqliteTransactions) -> None:
    """The connection whose COMMIT failed still has its transaction open (SQLite keeps it);
    it is closed for good, not handed back to the pool with the write lock held: another
    connection can write at once, and sees nothing of the failed write."""
    import sqlite3

    with pytest.raises(IntegrityError), tx.begin(IMMEDIATE) as conn:
        conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
        conn.exec_driver_sql("INSERT INTO u (x) VALUES (99)")
    path = engine.url.database
    assert path is not None
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # "database is locked" if the lock were still held
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert stored(engine) == [] and stored(engine, "u") == []
    insert(tx, 2)
    assert stored(engine) == [2]
