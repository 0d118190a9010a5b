"""The Storage protocol: what the core needs from a backend.

The core never does I/O. It asks a :class:`Storage` for a unit of work scoped to one workspace
(:meth:`Storage.users`), does everything one SCIM operation needs inside it, and the backend
commits on a clean exit or rolls back when an exception escapes: one transaction per SCIM
operation (architecture: "one transaction per operation").

Backends: ``scimcore_adapters.memory.MemoryStorage`` (the reference implementation) and the SQL
backend. Every backend must pass ``scimcore.testing.StorageContract``. The records they store and
return are in :mod:`scimcore.records` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import attrs
from attrs import frozen

from .filters import Filter
from .records import (
    PEOPLE_STATES,
    TOKEN_ACTIVE,
    TOKEN_DEAD,
    TOKEN_DELETED,
    ActivationLink,
    Admin,
    Grant,
    Image,
    LogEntry,
    OutboxMail,
    Page,
    Person,
    Settings,
    SortSpec,
    TokenRecord,
    Workspace,
    card_name,
    person_matches,
    search_texts,
)
from .schema import SchemaRegistry, parse_utc_datetime
from .templates import Rule, Template

__all__ = [
    "PEOPLE_STATES",
    "TOKEN_ACTIVE",
    "TOKEN_DEAD",
    "TOKEN_DELETED",
    "ActivationLink",
    "Admin",
    "Authenticated",
    "FastPath",
    "Grant",
    "Image",
    "Intent",
    "LogEntry",
    "MailBatches",
    "OutboxMail",
    "Page",
    "Person",
    "Settings",
    "SortSpec",
    "Storage",
    "TokenRecord",
    "UserStore",
    "Workspace",
    "card_name",
    "iter_pages",
    "person_matches",
    "search_texts",
    "sort_documents",
    "sort_key",
]


class UserStore(Protocol):
    """The users of one workspace, inside one transaction."""

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The document with this ``id``, or ``None``."""

    def insert(self, document: dict[str, Any]) -> None:
        """Add a new document. Raises ``UniquenessError`` if its userName (case-insensitive)
        is taken in this workspace."""

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        """Overwrite the document with the same ``id`` if its stored ``meta.version`` is still
        ``expected_version`` (compare-and-set). Raises ``PreconditionFailedError`` if it changed,
        ``NotFoundError`` if it is gone, ``UniquenessError`` if the new userName is taken."""

    def delete(self, user_id: str) -> bool:
        """Remove the document and its group memberships; ``False`` if there was none."""

    def query(
        self,
        filter: Filter | None,
        sort: SortSpec | None,
        start_index: int,
        count: int,
    ) -> Page:
        """Filter first, then sort, then page (1-based ``start_index``). Without ``sort`` the
        order is stable: creation order, ties broken by ``id``."""

    # --- groups (RFC 7643 §4.2, R5.3), in the same transaction --------------------------------
    # A group's document never holds ``members``: memberships are (group, member) rows, so a
    # change of k members costs O(k) whatever the group's size (see scimcore.groups).

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        """The group's document (no ``members``), or ``None``."""

    def insert_group(self, document: dict[str, Any]) -> None:
        """Add a group (no ``members``); ``UniquenessError`` if its ``id`` is taken."""

    def replace_group(self, document: dict[str, Any], expected_version: str) -> None:
        """Compare-and-set of the group's document, as :meth:`replace` for a user."""

    def delete_group(self, group_id: str) -> bool:
        """Remove the group and its memberships; ``False`` if there was none."""

    def query_groups(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        """As :meth:`query`, over groups; the documents carry no ``members`` (a filter may
        still test them: ``members[value eq "..."]``)."""

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Per group id, its members in the order they were added, each
        ``{"value": id, "type": "User"}`` (groups without members: absent)."""

    def existing_users(self, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` that are users of this workspace (O(len(user_ids)))."""

    def add_members(self, group_id: str, member_ids: Sequence[str]) -> list[str]:
        """Add memberships (the caller checked the users exist); returns the ids that were
        not members yet, in order. O(len(member_ids)), whatever the group's size."""

    def remove_members(self, group_id: str, member_ids: Sequence[str] | None) -> list[str]:
        """Remove these memberships (``None``: every one); returns the ids that were members."""

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Per user id, the groups it belongs to, each ``{"value": group id, "display":
        displayName, "type": "direct"}`` (``User.groups``, RFC 7643 §4.1.2)."""

    # --- the product (R3-R9), in the same transaction ----------------------------------------

    def get_person(self, person_id: str) -> Person | None: ...

    def save_person(self, person: Person) -> None:
        """Insert or update the person with this ``id``."""

    def list_people(self) -> Sequence[Person]:
        """Every person of the workspace, deprovisioned ones included, oldest first."""

    def page_people(
        self, search: str, state: str | None, offset: int, limit: int, group: str | None = None
    ) -> tuple[int, Sequence[Person]]:
        """How many people :func:`person_matches` ``search`` (casefolded) and ``state`` (one of
        :data:`PEOPLE_STATES` or ``None``: everyone), members of the group with the id
        ``group`` when one is given, and the ``limit`` of them from ``offset`` on, ordered by
        casefolded user name, then id. Indexed: a page costs about the same at any size of
        workspace."""

    def count_seats(self) -> int:
        """People who are active and not deprovisioned (R5.1)."""

    def get_settings(self) -> Settings: ...

    def save_settings(self, settings: Settings) -> None: ...

    def list_templates(self) -> Sequence[Template]:
        """Templates by name."""

    def save_template(self, template: Template) -> None:
        """Insert or update the template with this name."""

    def delete_template(self, name: str) -> bool: ...

    def list_rules(self) -> Sequence[Rule]:
        """Card Settings rules in ``position`` order."""

    def save_rule(self, rule: Rule) -> None: ...

    def delete_rule(self, rule_id: str) -> bool: ...

    def save_image(self, image: Image) -> None:
        """Store a new image (ids are never reused)."""

    def get_image(self, image_id: str) -> Image | None:
        """The workspace's image with this id, or ``None`` (another workspace's too)."""

    def save_activation_link(self, link: ActivationLink) -> None:
        """Store a new activation link of this workspace."""

    def use_activation_link(self, token_hash: str, when: datetime) -> bool:
        """Mark the workspace's unused link ``token_hash`` used at ``when``, atomically:
        ``False`` if it is unknown or was used already (two concurrent uses: one wins)."""

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        """Queue a mail; ``False`` (and nothing queued) if its ``dedupe_key`` was used before
        in this workspace."""

    def list_outbox(self) -> Sequence[OutboxMail]:
        """The workspace's mail, oldest first."""

    def add_log(self, entry: LogEntry, keep: int) -> None:
        """Append a log entry, keeping only the newest ``keep`` entries of the workspace."""

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        """Newest first."""


class Storage(Protocol):
    """A backend: workspaces, admins and tokens, and a unit of work per SCIM operation.

    A storage is made with the schemas it stores (a host's extensions included): the
    service over it serves those (:attr:`registry`, :attr:`group_registry`), so a custom
    registry is given once, to the storage."""

    @property
    def registry(self) -> SchemaRegistry:
        """The User schemas: filters on users are checked and evaluated against them."""

    @property
    def group_registry(self) -> SchemaRegistry:
        """The Group schemas (RFC 7643 §4.2), as :attr:`registry` for groups."""

    def users(
        self, workspace_id: str, *, readonly: bool = False, one_read: bool = False
    ) -> AbstractContextManager[UserStore]:
        """A transaction over one workspace's users: commit on success, roll back on error.

        ``readonly=True`` promises that the caller only reads: a backend may then take no
        write lock (SQLite: a deferred transaction reading one WAL snapshot).

        ``one_read=True`` (implies ``readonly``) promises more: the block makes exactly one
        call on the store, a :meth:`UserStore.get`, a :meth:`UserStore.query` or a
        :meth:`UserStore.groups_of`. A backend may
        then open no transaction at all, as long as that one call reads one consistent state
        (SQLite: a single statement does; a query that needs two opens its snapshot first).
        The service uses it for ``GET /Users/{id}`` and searches, the IdPs' most frequent
        requests."""

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if the slug exists."""

    def get_workspace(self, slug: str) -> Workspace | None: ...

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None: ...

    def list_workspaces(self) -> Sequence[Workspace]: ...

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin (keyed by workspace and email, case-insensitive)."""

    def get_admin(self, workspace_id: str, email: str) -> Admin | None: ...

    def list_admins(self, workspace_id: str) -> Sequence[Admin]:
        """The workspace's admins, active or not, by e-mail."""

    def deactivate_admin(self, workspace_id: str, email: str, reason: str) -> Admin | None:
        """In one transaction: mark the admin inactive and turn every token they created into a
        tombstone of state :data:`TOKEN_DEAD` with ``dead_reason`` ``reason`` (R2.3, R2.5: a
        dead token stays dead whatever happens to its admin later). Idempotent; ``None`` if
        there is no such admin."""

    def add_token(self, token: TokenRecord) -> None: ...

    def get_token(self, token_id: str) -> TokenRecord | None: ...

    def authenticate(self, token_id: str) -> Grant | None:
        """The token with this id, its workspace and its creator's state, in one read (the
        hot path of every SCIM request); ``None`` for an unknown token."""

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        """Active and dead tokens (not deleted ones), oldest first."""

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        """Delete an active or dead token of the workspace, leaving a tombstone of state
        :data:`TOKEN_DELETED`; ``False`` if the workspace has no such (listed) token."""

    def get_tombstone(self, token_id: str) -> TokenRecord | None:
        """The tombstone of a dead or deleted token (with its secret's hash), or ``None``.
        Read only when a request was refused, never on the authentication path."""

    def claim_refusal(self, token_id: str, when: datetime, interval: timedelta) -> bool:
        """Atomically note that a request with this tombstone's token was refused at ``when``:
        ``True`` if no refusal was noted in the ``interval`` before (the caller then logs
        it), else ``False``: refused requests are logged at most once per token and
        interval, whatever the number of processes."""

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""

    def get_activation_link(self, token_hash: str) -> ActivationLink | None:
        """The activation link with this token hash, in whichever workspace (the activation
        page knows only the token), or ``None``."""

    def claim_mail(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[OutboxMail]:
        """Atomically mark up to ``limit`` due mails (``pending`` with ``next_attempt_at <=
        now``, or ``sending`` whose lease expired) as ``sending`` until ``lease_until``, across
        workspaces, and return them. Two concurrent callers never get the same mail."""

    def finish_mail(self, mail: OutboxMail) -> None:
        """Store the outcome of a delivery attempt (``status``, ``attempts``, ``sent_at``,
        ``last_error``, ``next_attempt_at``) of a claimed mail; a mail already recorded
        ``sent`` is left as it is (the late outcome of a claim whose lease ran out while
        another process sent the mail must not queue it a third time, R3.6)."""


@frozen
class Intent:
    """What a SCIM request does once its token is authenticated, told to a storage with the
    :class:`FastPath` capability so that it can read it in the authentication's round trip.

    ``writes``: the request writes (its unit of work is a writing transaction); ``user_id``:
    the user it reads first (``GET /Users/{id}``; a ``PUT``, ``PATCH`` or ``DELETE``);
    ``filter``: the SCIM filter of a ``GET /Users?filter=...`` it queries; ``listing``: a
    ``GET /Users`` without a filter (a page of the workspace's users). A read intent with any
    of the last three answers users, whose ``User.groups`` the storage may tell are all empty
    (:attr:`Authenticated.has_groups`)."""

    writes: bool = False
    user_id: str | None = None
    filter: str | None = None
    listing: bool = False


@frozen
class Authenticated:
    """What a storage with the :class:`FastPath` capability read together with the
    authentication of a token: the one value the fast path hands the core.

    ``grant``: what :meth:`Storage.authenticate` returns (``None``: no such token). The rest
    is read only from the token's workspace and only if the token's stored secret hash is
    the presented one (a wrong secret reads no user data); the core still verifies the grant
    (constant-time compare, active admin) before it uses any of it.
    ``user`` (a read whose :class:`Intent` names ``user_id``): that user's canonical
    document, ``None`` if the workspace has none. ``has_groups`` (optional, a read intent that
    answers users): whether the token's workspace has any group; ``False`` tells the core that
    every user's ``User.groups`` is empty, so it reads no membership (``None``: not read, the
    core reads them as :meth:`UserStore.groups_of` gives them). ``found`` (a read whose
    intent names a ``filter``): every user the filter matches (``Page.total`` of them, all in
    ``Page.documents``, in the order of an unsorted query), or ``None`` when the storage
    could not read them so (the core then queries as usual). ``store`` (a writing intent):
    the writing transaction the authentication began, over the token's workspace (``None``
    for an unknown token)."""

    grant: Grant | None
    user: dict[str, Any] | None = attrs.field(default=None, eq=False)
    has_groups: bool | None = attrs.field(default=None, eq=False)
    found: Page | None = attrs.field(default=None, eq=False)
    store: UserStore | None = attrs.field(default=None, eq=False, repr=False)


@runtime_checkable
class FastPath(Protocol):
    """Optional for a :class:`Storage`: the SCIM request's first read in its authentication's
    round trip, and read requests that take turns. :mod:`scimcore.authentication` is the one
    place that uses it; a storage without it is read as :class:`Storage` alone allows, with
    the same answers (``tests/test_fast_path.py`` compares them)."""

    def read_turn(self) -> AbstractContextManager[object]:
        """A context held around the whole of one read request (authentication, reads,
        rendering). A storage whose reads are CPU-bound (a local SQLite file) makes them
        take turns, one request at a time per process, which costs less CPU under a
        threaded server than reads that contend for the GIL (docs/decisions.md); one that
        waits on a server returns a context that does nothing."""

    def authenticated(
        self, token_id: str, secret_hash: str, intent: Intent
    ) -> AbstractContextManager[Authenticated]:
        """The authentication of ``token_id`` and, in the same round trip, what ``intent``
        reads first (see :class:`Authenticated`). For a writing intent the block is the
        write's transaction, as ``users(workspace_id)`` opens it: committed on a clean exit,
        rolled back when an exception escapes (the core raises before it writes anything if
        the grant does not verify). For a read the block is the rest of the request."""


@runtime_checkable
class MailBatches(Protocol):
    """Optional for a :class:`Storage`: the outcomes of many delivery attempts stored at once.
    :func:`scimcore.outbox.deliver_pending` records its outcomes with it (by default each
    right after its send; with ``finish_every`` above 0, those of that many seconds in one
    transaction); a storage without it gets :meth:`Storage.finish_mail` once per mail, with
    the same result."""

    def finish_mails(self, mails: Sequence[OutboxMail]) -> None:
        """:meth:`Storage.finish_mail` for each of ``mails`` (claimed mails of any workspaces),
        all in one transaction: all of them stored, or none (the call raises)."""


def iter_pages(store: UserStore, page_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every document of a workspace, in the stable default order (a helper for tools)."""
    start = 1
    while True:
        page = store.query(None, None, start, page_size)
        yield from page.documents
        if start + len(page.documents) > page.total or not page.documents:
            return
        start += len(page.documents)


def sort_key(
    doc: dict[str, Any], path: tuple[str, ...], case_exact: bool, chronological: bool = False
) -> Any:
    """The value ``doc`` sorts by for ``sortBy`` (RFC 7644 §3.4.2.3, "according to the
    attribute type"): a multi-valued attribute sorts by its primary value, else its first; a
    ``dateTime`` (``chronological``) by the instant it names, so that
    ``2026-01-01T10:00:00+02:00`` sorts before ``2026-01-01T09:00:00Z``."""
    value: Any = doc
    for key in path:
        if isinstance(value, list):
            primary = [v for v in value if isinstance(v, dict) and v.get("primary")]
            value = (primary or value)[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if chronological:
        return parse_utc_datetime(value)
    if isinstance(value, str) and not case_exact:
        return value.casefold()
    return value


def sort_documents(docs: Sequence[dict[str, Any]], sort: SortSpec) -> list[dict[str, Any]]:
    """``docs`` (in insertion order) sorted for ``sort``: a stable sort by :func:`sort_key`,
    so ties keep insertion order in both directions; unassigned values sort last ascending
    and first descending (RFC 7644 §3.4.2.3)."""
    keyed = [(sort_key(d, sort.path, sort.case_exact, sort.chronological), d) for d in docs]
    present = [(k, d) for k, d in keyed if k is not None]
    absent = [d for k, d in keyed if k is None]
    present.sort(key=lambda kd: kd[0], reverse=sort.descending)
    ordered = [d for _, d in present]
    return absent + ordered if sort.descending else ordered + absent
