"""Table definitions of the SQL backend (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Every row belongs to one workspace (R1.1). String columns that are compared or sorted use the
``"C"`` collation on PostgreSQL so that ordering is by code point, exactly like Python's string
ordering (SQLite's default ``BINARY`` collation already is). Date-times are stored as naive UTC
and read back as aware UTC (:class:`UtcDateTime`).

The ``users`` table keeps the whole canonical document as JSON text (the source of truth) plus
columns derived from it for what identity providers match and sort on; ``user_emails`` holds one
row per element of ``emails`` for ``emails[...]`` lookups. Derived columns are written by the
storage on every insert and replace, never by hand.

The product tables (schema version 2) hold the records of :mod:`scimcore.storage`: ``people``
(person and card), ``settings``, ``templates``, ``rules``, ``outbox`` and ``log``. JSON values
(cards, mappings, template fields) are stored as text.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "ACTIVATION_LINKS",
    "ADMINS",
    "BULKY",
    "GROUPS",
    "GROUP_MEMBERS",
    "IMAGES",
    "LOG",
    "METADATA",
    "OUTBOX",
    "OWN_EMAIL",
    "PEOPLE",
    "RATE_BUCKETS",
    "RULES",
    "SCHEMA_VERSION",
    "SETTINGS",
    "TEMPLATES",
    "TOKENS",
    "TOKEN_TOMBSTONES",
    "USERS",
    "USER_COUNTS",
    "USER_EMAILS",
    "WORKSPACES",
    "UtcDateTime",
    "aware_utc",
    "naive_utc",
    "text_type",
    "workspace_fk",
]


def naive_utc(value: datetime | None) -> datetime | None:
    """How :class:`UtcDateTime` stores a value: naive UTC (a naive value is taken as UTC)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def aware_utc(value: Any) -> datetime | None:
    """How :class:`UtcDateTime` reads a stored value (a ``datetime`` or ISO text) back."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware ``datetime`` stored as naive UTC; read back with ``tzinfo=timezone.utc``.

    Naive values are taken as UTC. The same representation on both engines keeps ordering and
    equality identical (SQLite stores fixed-width ISO text, PostgreSQL a ``timestamp``).
    """

    impl = DateTime
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return naive_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return aware_utc(value)


def text_type(length: int | None = None) -> TypeEngine[str]:
    """A string type that compares and sorts by code point on both engines."""
    base: TypeEngine[str] = String(length) if length is not None else Text()
    collated: TypeEngine[str] = (
        String(length, collation="C") if length is not None else Text(collation="C")
    )
    return base.with_variant(collated, "postgresql")


#: Marks a column holding a JSON document (``info=dict(BULKY)``: a copy per column): reads return
#: it as a column of its own on SQLite (not quoted into a packed row: see :mod:`.execute`).
BULKY = {"bulky": True}

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
_SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")

METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SCHEMA_VERSION = Table(
    "schema_version",
    METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

WORKSPACES = Table(
    "workspaces",
    METADATA,
    Column("id", text_type(64), primary_key=True),
    Column("slug", text_type(255), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

ADMINS = Table(
    "admins",
    METADATA,
    Column(
        "workspace_id",
        text_type(64),
        ForeignKey("workspaces.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The key: the e-mail lowercased, as the reference backend keys admins.
    Column("email_key", text_type(320), primary_key=True),
    Column("email", text_type(320), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The console sign-in password's argon2id hash (schema version 6); NULL: none.
    Column("password_hash", Text, nullable=True),
)


def _token_columns() -> list[Column[Any]]:
    """The columns of a token, which its tombstone keeps (new objects for each table)."""
    return [
        Column("id", text_type(64), primary_key=True),
        Column(
            "workspace_id",
            text_type(64),
            ForeignKey("workspaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("secret_hash", text_type(128), nullable=False),
        Column("label", Text, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("last_used_at", UtcDateTime, nullable=True),
    ]


TOKENS = Table(
    "tokens",
    METADATA,
    *_token_columns(),
    Index(None, "workspace_id", "created_at", "id"),
)

TOKEN_TOMBSTONES = Table(
    "token_tombstones",
    METADATA,
    # Dead tokens (their admin was deactivated: R2.5, listed until deleted) and deleted ones:
    # what a refused request's token id is attributed to (R9.2). Read only on refusals, never
    # on the authentication path, which finds these ids nowhere in ``tokens`` (schema 6).
    *_token_columns(),
    Column("state", text_type(16), nullable=False),
    Column("dead_reason", Text, nullable=True),
    # When a refused request with this token was last logged (coalescing).
    Column("refused_at", UtcDateTime, nullable=True),
    Index(None, "workspace_id", "state", "created_at", "id"),
)

USERS = Table(
    "users",
    METADATA,
    # Insertion order (the default list order) and the physical key.
    Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
    Column(
        "workspace_id",
        text_type(64),
        ForeignKey("workspaces.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("id", text_type(64), nullable=False),
    Column("user_name", text_type(), nullable=False),
    Column("user_name_folded", text_type(), nullable=False),
    Column("external_id", text_type(), nullable=True),
    Column("display_name", text_type(), nullable=True),
    Column("display_name_folded", text_type(), nullable=True),
    Column("active", Boolean, nullable=True),
    # meta.created / meta.lastModified parsed to UTC: what filters compare and sorting orders
    # by (chronologically, as the reference backend sorts a dateTime; schema version 5).
    Column("created", UtcDateTime, nullable=True),
    Column("last_modified", UtcDateTime, nullable=True),
    Column("version", text_type(), nullable=False),
    Column("document", Text, nullable=False, info=dict(BULKY)),
    UniqueConstraint("workspace_id", "id"),
    UniqueConstraint("workspace_id", "user_name_folded"),
    Index(None, "workspace_id", "seq"),
    Index(None, "workspace_id", "external_id"),
    Index(None, "workspace_id", "display_name_folded", "seq"),
    Index(None, "workspace_id", "created", "seq"),
    Index(None, "workspace_id", "last_modified", "seq"),
)

USER_EMAILS = Table(
    "user_emails",
    METADATA,
    Column("workspace_id", text_type(64), nullable=False),
    Column("user_id", text_type(64), nullable=False),
    Column("position", Integer, nullable=False),
    # emails[].value casefolded (caseExact false); NULL when not a string.
    Column("value_folded", text_type(), nullable=True),
    # emails[].type casefolded; NULL when absent or not a string.
    Column("type", text_type(), nullable=True),
    Column("is_primary", Boolean, nullable=True),
    ForeignKeyConstraint(
        ["workspace_id", "user_id"],
        ["users.workspace_id", "users.id"],
        ondelete="CASCADE",
    ),
    Index(None, "workspace_id", "user_id", "position", unique=True),
    Index(None, "workspace_id", "value_folded"),
)


# --- the product (schema version 2) --------------------------------------------------------------


def workspace_fk(primary_key: bool = False) -> Column[str]:
    """A new ``workspace_id`` column: the row belongs to that workspace and goes with it (R1.1)."""
    return Column(
        "workspace_id",
        text_type(64),
        ForeignKey("workspaces.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


PEOPLE = Table(
    "people",
    METADATA,
    workspace_fk(primary_key=True),
    Column("id", text_type(64), primary_key=True),
    Column("user_name", text_type(), nullable=False),
    Column("user_name_folded", text_type(), nullable=False),
    Column("email", text_type(), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("deprovisioned", Boolean, nullable=False),
    # scimcore.cards.Card.to_dict() as JSON text.
    Column("card", Text, nullable=False, info=dict(BULKY)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Schema version 6 (the console): what a people search matches (casefolded e-mail and
    # card name; see scimcore.storage.person_matches) and when the person activated (R3.7).
    Column("email_folded", text_type(), nullable=True),
    Column("name_folded", text_type(), nullable=True),
    Column("activated_at", UtcDateTime, nullable=True),
    Index(None, "workspace_id", "created_at", "id"),
    # Team Cards pages (version 6): in user-name order, filtered by state from the index
    # alone; a search's prefix ranges on user name, e-mail and name. Seats (R5.1) are counted
    # from the state columns of the first (version 13: a seats index of its own made every
    # create and (de)activation write one index page more, and a count walks the workspace's
    # entries of either index). The e-mail index (after the table) holds only e-mails that
    # differ from the user name (version 13): most people's user name is their e-mail, and
    # the user-name range finds those (see .people), so a create writes no e-mail entry for
    # them.
    Index(None, "workspace_id", "user_name_folded", "id", "active", "deprovisioned"),
    Index(None, "workspace_id", "name_folded"),
)
#: The people whose e-mail the e-mail index holds: those whose e-mail is not their user name.
#: One expression for the index and for the search that must imply it to use it (.people).
OWN_EMAIL = PEOPLE.c.email_folded != PEOPLE.c.user_name_folded
Index(
    None,
    PEOPLE.c.workspace_id,
    PEOPLE.c.email_folded,
    sqlite_where=OWN_EMAIL,
    postgresql_where=OWN_EMAIL,
)

SETTINGS = Table(
    "settings",
    METADATA,
    workspace_fk(primary_key=True),
    Column("activation_email", Boolean, nullable=False),
    # The field mapping as a JSON list; NULL: the default mapping.
    Column("mapping", Text, nullable=True, info=dict(BULKY)),
)

TEMPLATES = Table(
    "templates",
    METADATA,
    workspace_fk(primary_key=True),
    Column("name", text_type(), primary_key=True),
    # The field values as a JSON object.
    Column("fields", Text, nullable=False, info=dict(BULKY)),
)

RULES = Table(
    "rules",
    METADATA,
    workspace_fk(primary_key=True),
    Column("id", text_type(64), primary_key=True),
    Column("filter", Text, nullable=False),
    Column("template", text_type(), nullable=False),
    Column("position", Integer, nullable=False),
    Index(None, "workspace_id", "position", "id"),
)

OUTBOX = Table(
    "outbox",
    METADATA,
    # A physical key for claiming rows across workspaces.
    Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
    workspace_fk(),
    Column("id", text_type(64), nullable=False),
    Column("person_id", text_type(), nullable=False),
    Column("to_address", Text, nullable=False),
    Column("kind", text_type(), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False, info=dict(BULKY)),
    Column("status", text_type(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Unique per workspace; NULLs never collide (both engines treat NULLs as distinct).
    Column("dedupe_key", text_type(), nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("workspace_id", "id"),
    UniqueConstraint("workspace_id", "dedupe_key"),
    Index(None, "workspace_id", "created_at", "id"),
    # Claiming due mail across workspaces.
    Index(None, "status", "next_attempt_at"),
)

LOG = Table(
    "log",
    METADATA,
    # Insertion order across workspaces.
    Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
    workspace_fk(),
    # 1, 2, 3, ... per workspace (max + 1 at insert): what retention prunes by.
    Column("ordinal", BigInteger, nullable=False),
    Column("id", text_type(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("operation", text_type(), nullable=False),
    Column("resource_id", text_type(), nullable=True),
    Column("status", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Column("token_id", text_type(), nullable=True),
    Column("actor", text_type(), nullable=False),
    # Newest first (ORDER BY ordinal DESC, seq DESC), max(ordinal), and pruning: one index.
    Index(None, "workspace_id", "ordinal", "seq"),
)

IMAGES = Table(
    "images",
    METADATA,
    # Profile photos and logos (schema version 6): at most 2 MiB each (scimcore.images).
    workspace_fk(primary_key=True),
    Column("id", text_type(64), primary_key=True),
    Column("content_type", text_type(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=True),
)

ACTIVATION_LINKS = Table(
    "activation_links",
    METADATA,
    # Activation links (R3.7, schema version 6): the SHA-256 of the token, never the token.
    Column("token_hash", text_type(64), primary_key=True),
    workspace_fk(),
    Column("person_id", text_type(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index(None, "workspace_id", "person_id"),
)

USER_COUNTS = Table(
    "user_counts",
    METADATA,
    # How many SCIM users a workspace has, kept in step with every insert and delete in the
    # same transaction, so an unfiltered list's totalResults costs one row, not a count(*).
    workspace_fk(primary_key=True),
    Column("n", BigInteger, nullable=False),
)


# --- groups (RFC 7643 §4.2; schema version 7) --------------------------------

GROUPS = Table(
    "groups",
    METADATA,
    # Creation order (the default list order).
    Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
    workspace_fk(),
    Column("id", text_type(64), nullable=False),
    Column("display_name_folded", text_type(), nullable=True),
    Column("external_id", text_type(), nullable=True),
    Column("version", text_type(), nullable=False),
    # The group's document, never with its members (they are GROUP_MEMBERS rows).
    Column("document", Text, nullable=False, info=dict(BULKY)),
    UniqueConstraint("workspace_id", "id"),
    Index(None, "workspace_id", "display_name_folded"),
    Index(None, "workspace_id", "external_id"),
)

GROUP_MEMBERS = Table(
    "group_members",
    METADATA,
    # The order members were added in (a group's members are listed in it).
    Column("seq", _SEQ_TYPE, primary_key=True, autoincrement=True),
    Column("workspace_id", text_type(64), nullable=False),
    Column("group_id", text_type(64), nullable=False),
    Column("member_id", text_type(64), nullable=False),
    ForeignKeyConstraint(
        ["workspace_id", "group_id"], ["groups.workspace_id", "groups.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["workspace_id", "member_id"], ["users.workspace_id", "users.id"], ondelete="CASCADE"
    ),
    # One row per (group, member): adding a member twice is a no-op (ON CONFLICT DO NOTHING).
    UniqueConstraint("workspace_id", "group_id", "member_id"),
    # A user's groups (User.groups, groups.value filters) and a deleted user's memberships.
    Index(None, "workspace_id", "member_id"),
)

# --- rate limit (issue #22) ----------------------------------------------------------------------

RATE_BUCKETS = Table(
    "rate_buckets",
    METADATA,
    # One token bucket per workspace (scimcore.ratelimit), shared by every process of a
    # PostgreSQL deployment: the tokens left at ``stamp`` (seconds since the epoch).
    workspace_fk(primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("stamp", Float, nullable=False),
)
