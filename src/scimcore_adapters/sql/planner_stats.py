"""SQLite planner statistics, pinned by migrations rather than measured.

SQLite's planner reads ``sqlite_stat1``: for each index, the table's rows, then the average
rows per distinct value of each prefix of the index's columns. Without a row for an index it
assumes about a million rows of which an equality on the first column keeps about ten: a search
on ``workspace_id`` alone (every row of a workspace) then looks nearly as cheap as one by key.
``ANALYZE`` on a young database would record tiny tables and mislead the planner as the
directory grows, so the migrations write figures of a representative directory instead, the
same on every database: 10 workspaces of 100,000 users each (the users' figures, version 3).
An operator's ``ANALYZE`` replaces them with measured ones (see the plan tests of
``tests/test_sql_planner_stats.py``, which check the plans both ways).

PostgreSQL keeps real statistics (autovacuum): nothing is pinned there.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

__all__ = ["GROUP_STATS", "USER_STATS", "pin_sqlite_statistics", "sqlite_statistics"]

#: ``users``, ``user_emails`` and ``people`` (versions 3, 5, 6 and 13). Without statistics SQLite
#: prefers walking ``(workspace_id, seq)`` to satisfy ``ORDER BY seq`` and probes every user
#: against a selective e-mail filter; with these figures it starts from the e-mail index.
USER_STATS: Mapping[str, Mapping[str, str]] = {
    "users": {
        "ix_users_workspace_id_seq": "1000000 100000 1",
        "ix_users_workspace_id_external_id": "1000000 100000 2",
        "ix_users_workspace_id_display_name_folded_seq": "1000000 100000 3 1",
        "ix_users_workspace_id_created_seq": "1000000 100000 3 1",
        "ix_users_workspace_id_last_modified_seq": "1000000 100000 3 1",
        "sqlite_autoindex_users_1": "1000000 100000 1",
        "sqlite_autoindex_users_2": "1000000 100000 1",
    },
    "user_emails": {
        "ix_user_emails_workspace_id_value_folded": "1200000 120000 2",
        "ix_user_emails_workspace_id_user_id_position": "1200000 120000 2 1",
    },
    # Version 6: without figures, a people search walks the workspace in creation order
    # instead of taking the union of its three prefix ranges (MULTI-INDEX OR).
    "people": {
        "sqlite_autoindex_people_1": "1000000 100000 1",
        "ix_people_workspace_id_created_at_id": "1000000 100000 1 1",
        "ix_people_workspace_id_user_name_folded_id_active_deprovisioned": (
            "1000000 100000 1 1 1 1"
        ),
        "ix_people_workspace_id_email_folded": "1000000 100000 1",
        "ix_people_workspace_id_name_folded": "1000000 100000 3",
    },
}

#: ``groups`` and ``group_members`` (version 12), in the users' directory: 1,000 groups per
#: workspace (10,000 rows), each user in 5 groups (500,000 memberships per workspace, 5,000,000
#: rows), so 500 members per group on average.
#:
#: - ``groups``: ``(workspace_id, id)`` is unique (``1000 1``); display names are unique in
#:   practice (``1``); external ids as the users' (``2``: some groups have none).
#: - ``group_members``: the unique ``(workspace_id, group_id, member_id)`` has 500 rows per
#:   group and one per membership (``500 1``); ``(workspace_id, member_id)`` 5 rows per user.
#:
#: What the figures decide: without them, a correlated ``EXISTS`` over the memberships (a
#: ``groups`` filter written per user) searches ``group_members`` on ``workspace_id`` alone,
#: every membership of the workspace for every user (at 100,000 users it did not finish in 5
#: minutes); with them it searches ``(workspace_id, member_id)``, 5 rows. The shapes the code
#: uses (a group's members, a user's groups, ``groups`` filters, the Team Cards group filter)
#: keep the plans they had: one lookup of the unique index per group, or per group and user.
GROUP_STATS: Mapping[str, Mapping[str, str]] = {
    "groups": {
        "sqlite_autoindex_groups_1": "10000 1000 1",
        "ix_groups_workspace_id_display_name_folded": "10000 1000 1",
        "ix_groups_workspace_id_external_id": "10000 1000 2",
    },
    "group_members": {
        "sqlite_autoindex_group_members_1": "5000000 500000 500 1",
        "ix_group_members_workspace_id_member_id": "5000000 500000 5",
    },
}


def pin_sqlite_statistics(conn: Connection, stats: Mapping[str, Mapping[str, str]]) -> None:
    """SQLite: replace the ``sqlite_stat1`` rows of the tables of ``stats`` with its figures,
    for the indexes that exist, and load them into the planner; nothing on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if missing
    existing = {
        name
        for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")
    }
    for table, indexes in stats.items():
        conn.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = ?", (table,))
        for index, stat in indexes.items():
            if index in existing:
                conn.exec_driver_sql(
                    "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
                    (table, index, stat),
                )
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # load the figures into the planner


def sqlite_statistics(conn: Connection, table: str) -> dict[str, str]:
    """SQLite: the ``sqlite_stat1`` figures of ``table``'s indexes (pinned or measured), by
    index; nothing on PostgreSQL. Dropping an index drops its figures: a migration that
    rebuilds one pins what it read before (:func:`pin_sqlite_statistics`)."""
    if conn.dialect.name != "sqlite":
        return {}
    rows = conn.exec_driver_sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = ?", (table,))
    return {index: stat for index, stat in rows if index is not None}
