"""Records to rows and rows to records: how each stored thing maps onto its table's columns.

Most records are stored field by field in columns of the same names: :data:`MAPPINGS` says
only what differs (a renamed column, a JSON-encoded field), and :class:`RecordRows` turns a
record into the parameters of an ``INSERT`` or ``UPDATE`` and a row back into the record. A
SCIM user is no record but a JSON document: :func:`user_row` derives its indexed columns, and
:func:`email_rows` its ``user_emails`` rows (what filters on ``emails`` are answered from).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Generic, TypeVar

import attrs

from scimcore._json import dumps_text, loads
from scimcore.schema import MAPPING
from scimcore.storage import Admin, LogEntry, OutboxMail, Person, Settings, TokenRecord, Workspace
from scimcore.templates import Rule

from .compiler import parse_datetime

__all__ = [
    "ADMIN",
    "LOG_ENTRY",
    "MAIL",
    "MAPPINGS",
    "PERSON",
    "RULE",
    "TOKEN",
    "TOMBSTONE",
    "WORKSPACE",
    "WORKSPACE_OF_GRANT",
    "RecordRows",
    "email_rows",
    "stored_settings",
    "user_columns",
    "user_row",
]

_R = TypeVar("_R")
_Convert = Callable[[Any], Any]


class RecordRows(Generic[_R]):
    """How records of one attrs class are stored: each field in the column of its name, but
    for ``renamed`` ({field: column}), ``json`` (fields stored as JSON text) and ``omit``
    (trailing fields with defaults that this table does not hold: a record read from it gets
    their defaults)."""

    __slots__ = ("_decode", "_encode", "_fields", "_read", "columns", "record")

    def __init__(
        self,
        record: type[_R],
        *,
        renamed: Mapping[str, str] | None = None,
        json: tuple[str, ...] = (),
        omit: tuple[str, ...] = (),
    ) -> None:
        renamed = renamed or {}
        self.record = record
        every = tuple(f.name for f in attrs.fields(record))  # type: ignore[arg-type]
        fields = every[: len(every) - len(omit)]
        if every[len(fields) :] != omit:
            raise ValueError("omitted fields must be the record's last ones")
        if len(fields) < 2:  # attrgetter of one name returns the value, not a tuple
            raise ValueError("a record of at least two fields")
        #: The column of each field, in the order of the record's fields.
        self.columns = tuple(renamed.get(f, f) for f in fields)
        self._fields: Callable[[_R], tuple[Any, ...]] = attrgetter(*fields)
        self._read: Callable[[Any], tuple[Any, ...]] = attrgetter(*self.columns)
        self._encode: list[tuple[str, _Convert]] = [(renamed.get(f, f), dumps_text) for f in json]
        self._decode: list[tuple[int, _Convert]] = [(fields.index(f), loads) for f in json]

    def to_row(self, record: _R, **extra: Any) -> dict[str, Any]:
        """The columns of ``record`` as parameters, with ``extra`` columns added (or replacing
        a field's: a workspace's id taken from the transaction, not from the record). On the
        path of every write: two C calls and a dict, close to a dict written out by hand."""
        row = dict(zip(self.columns, self._fields(record), strict=True))
        for column, encode in self._encode:
            row[column] = encode(row[column])
        if extra:
            row.update(extra)
        return row

    def from_row(self, row: Any) -> _R:
        """The record of a row (any object with the columns as attributes)."""
        values = self._read(row)
        if self._decode:
            values = list(values)  # type: ignore[assignment]
            for index, decode in self._decode:
                values[index] = decode(values[index])  # type: ignore[index]
        return self.record(*values)


#: Every record the backend stores, and how (the tables are in :mod:`.tables`).
PERSON = RecordRows(Person, json=("card",))
MAIL = RecordRows(OutboxMail, renamed={"to": "to_address"})
LOG_ENTRY = RecordRows(LogEntry)
#: A token of the ``tokens`` table: the working ones, whose state is always "active".
TOKEN = RecordRows(TokenRecord, omit=("state", "dead_reason"))
#: A token of ``token_tombstones``: a dead or deleted one, with its state and why (R2.5).
TOMBSTONE = RecordRows(TokenRecord)
ADMIN = RecordRows(Admin)
RULE = RecordRows(Rule)
WORKSPACE = RecordRows(Workspace)
#: A workspace read with its token's authentication (columns ``ws_*``).
WORKSPACE_OF_GRANT = RecordRows(
    Workspace, renamed={"id": "ws_id", "slug": "ws_slug", "created_at": "ws_created_at"}
)
MAPPINGS = (PERSON, MAIL, LOG_ENTRY, TOKEN, TOMBSTONE, ADMIN, RULE, WORKSPACE, WORKSPACE_OF_GRANT)


def stored_settings(found: Any, activation_email: Any, mapping: Any) -> Settings:
    """The settings of a workspace from their columns (``found``: false when the workspace
    has no settings row, read with an outer join: the defaults)."""
    if not found:
        return Settings()
    return Settings(
        activation_email=bool(activation_email),
        mapping=loads(mapping) if mapping is not None else None,
    )


# --- users: a canonical JSON document and the columns derived from it ---------------------------


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _folded(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def user_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``users`` derived from a canonical document."""
    row = user_columns(doc)
    row["document"] = dumps_text(doc)
    return row


def user_columns(doc: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`user_row` without the document: what an update compares."""
    meta = doc.get("meta")
    meta = meta if isinstance(meta, MAPPING) else {}
    user_name = doc["userName"]
    version = meta.get("version")
    if not isinstance(user_name, str) or not isinstance(version, str):
        raise TypeError("a stored document needs a string userName and meta.version")
    active = doc.get("active")
    created, modified = meta.get("created"), meta.get("lastModified")
    return {
        "user_name": user_name,
        "user_name_folded": user_name.casefold(),
        "external_id": _str_or_none(doc.get("externalId")),
        "display_name": _str_or_none(doc.get("displayName")),
        "display_name_folded": _folded(doc.get("displayName")),
        "active": active if isinstance(active, bool) else None,
        "created": parse_datetime(created) if isinstance(created, str) else None,
        "last_modified": parse_datetime(modified) if isinstance(modified, str) else None,
        "version": version,
    }


def email_rows(workspace_id: str, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``user_emails`` row per complex value of ``emails`` (as the evaluator sees them)."""
    raw = doc.get("emails")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    rows = []
    for position, item in enumerate(items):
        if not isinstance(item, MAPPING):
            continue
        primary = item.get("primary")
        rows.append(
            {
                "workspace_id": workspace_id,
                "user_id": doc["id"],
                "position": position,
                "value_folded": _folded(item.get("value")),
                "type": _folded(item.get("type")),
                "is_primary": primary if isinstance(primary, bool) else None,
            }
        )
    return rows
