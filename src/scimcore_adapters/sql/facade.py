"""The :class:`SqlStorage` facade: one object per database that wires the SQL backend's parts
(``docs/architecture.md`` has the table): :mod:`.engines` (engines and per-dialect settings),
:mod:`.transactions` (how a block becomes a transaction: group commit, savepoints, fork
safety), :mod:`.execute` (how a statement runs), :mod:`.rows` (records and rows),
:mod:`.users` (the user store), :mod:`.queries` (the query planner), :mod:`.product` (people,
settings, templates, rules, outbox, log) and :mod:`.accounts` (workspaces, admins, tokens,
authentication). Import it from :mod:`scimcore_adapters.sql`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from scimcore.authorization import (
    AuthorizationCode,
    AuthorizationGrant,
    CodeUse,
    RedirectUri,
    RefreshToken,
    RefreshUse,
)
from scimcore.federation import FederatedIdentity
from scimcore.groups import default_group_registry
from scimcore.oauth_clients import (
    AccessGrant,
    AccessToken,
    ClientGrant,
    ClientSecret,
    OAuthClient,
)
from scimcore.ratelimit import RateLimit
from scimcore.schema import SchemaRegistry, default_registry
from scimcore.storage import (
    ActivationLink,
    Admin,
    Authenticated,
    Grant,
    Intent,
    OutboxMail,
    TokenRecord,
    Workspace,
)

from . import product, users
from .accounts import Accounts, grant_of, prime
from .authorization import AuthorizationAccounts
from .buckets import SqlBuckets
from .checkpoint import BACKSTOP_PAGES, Checkpointer
from .engines import DEFERRED, IMMEDIATE, NO_BEGIN, create_engine_for
from .execute import Runner
from .federation import FederationAccounts
from .migrations import migrate
from .oauth import OAuthAccounts
from .transactions import PostgresTransactions, SqliteTransactions, Transactions
from .users import SqlUserStore

__all__ = ["SqlStorage", "create_storage"]


class SqlStorage:
    """A :class:`~scimcore.storage.Storage` on SQLite or PostgreSQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/scim.db`` (a file; WAL mode, foreign keys
    on, ``busy_timeout``) or ``postgresql+psycopg://user@host/db``. The schema is migrated to
    the current version on construction (idempotent). Call :meth:`close` when done.

    Every :meth:`users` block is one unit of work: committed on a clean exit, rolled back when
    an exception escapes (see :mod:`.transactions` for how, on each engine).

    ``checkpoint_interval`` (SQLite): seconds between background WAL checkpoints after writes
    (:mod:`.checkpoint`); ``None`` leaves checkpoints to SQLite, inside commits.
    ``read_turns`` (SQLite): SCIM read requests of this process take turns (:meth:`read_turn`);
    ``False``: they run side by side.
    ``group_commit`` (SQLite): writes of this process queued behind one another share one
    ``COMMIT``, each in a savepoint of its own (:class:`.SqliteTransactions`); ``False``: one
    ``COMMIT`` per write.
    ``synchronous`` (SQLite): ``PRAGMA synchronous``, ``"FULL"`` or ``"NORMAL"``
    (``docs/deployment.md``: what each keeps through a crash or a power loss).
    """

    def __init__(
        self,
        url: str,
        registry: SchemaRegistry | None = None,
        *,
        group_registry: SchemaRegistry | None = None,
        checkpoint_interval: float | None = 1.0,
        read_turns: bool = True,
        group_commit: bool = True,
        synchronous: str = "NORMAL",
    ) -> None:
        if checkpoint_interval is not None and checkpoint_interval <= 0:
            raise ValueError("the checkpoint interval must be positive (or None)")
        #: The User schemas (a host's extensions included) the user filters are checked
        #: against; a service over this storage serves them.
        self.registry = registry or default_registry()
        #: The Group schemas the group filters are checked against (R5.3).
        self.group_registry = group_registry or default_group_registry()
        backstop = BACKSTOP_PAGES if checkpoint_interval is not None else None
        self.engine = create_engine_for(url, backstop, synchronous)
        self._sqlite = self.engine.dialect.name == "sqlite"
        #: SQLite: WAL checkpoints in a background thread (``checkpoint_interval`` seconds
        #: apart, after writes), not in requests' COMMITs; ``None``: SQLite's own. See
        #: :mod:`.checkpoint`.
        self.checkpointer = (
            Checkpointer(self.engine, checkpoint_interval)
            if checkpoint_interval is not None and self._sqlite
            else None
        )
        if self.checkpointer is not None:  # a storage dropped without close() stops it too
            weakref.finalize(self, self.checkpointer.stop)
        #: The transaction engine (:mod:`.transactions`): how a block becomes a transaction.
        self.transactions: Transactions = (
            SqliteTransactions(
                self.engine,
                group_commit=group_commit,
                read_turns=read_turns,
                checkpointer=self.checkpointer,
            )
            if self._sqlite
            else PostgresTransactions(self.engine)
        )
        #: Workspaces, admins, tokens and authentication (:mod:`.accounts`).
        self.accounts = Accounts(self.engine, self.transactions, self.registry)
        #: The rate limit's token buckets (:mod:`.buckets`).
        self.buckets = SqlBuckets(
            None
            if self._sqlite
            else create_engine_for(url).execution_options(isolation_level="AUTOCOMMIT")
        )
        #: OAuth clients, secrets and access tokens (:mod:`.oauth`).
        self.oauth = OAuthAccounts(self.transactions)
        #: Federated identities of OAuth clients and used assertion ids (:mod:`.federation`).
        self.federation = FederationAccounts(self.transactions)
        #: Redirect URIs, grants, codes and refresh tokens (:mod:`.authorization`).
        self.authorization = AuthorizationAccounts(self.transactions)
        try:
            self.schema_version = migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def read_turn(self) -> AbstractContextManager[object]:
        """:class:`~scimcore.storage.FastPath`: on SQLite (``read_turns``), one read request
        of this process at a time (see :meth:`.SqliteTransactions.read_turn` for why); on
        PostgreSQL, no turns."""
        return self.transactions.read_turn()

    def close(self) -> None:
        """Close every connection, pooled or held by a thread (after committing an open
        group of writes, which are waiting for it)."""
        self.transactions.close()
        self.engine.dispose()
        self.buckets.close()

    # --- users: the unit of work ---------------------------------------------------------------

    @contextmanager
    def users(
        self, workspace_id: str, *, readonly: bool = False, one_read: bool = False
    ) -> Iterator[SqlUserStore]:
        """One transaction over one workspace's users: commit on success, roll back on error.

        ``readonly``: SQLite begins a deferred transaction (a consistent WAL snapshot that
        waits for no writer) instead of ``BEGIN IMMEDIATE``. ``one_read`` (see
        :meth:`scimcore.storage.Storage.users`): nothing is begun (PostgreSQL: an autocommit
        connection); the store's one call runs one statement, or begins its snapshot before
        the first of several (PostgreSQL: ``REPEATABLE READ``, ended here)."""
        mode = NO_BEGIN if one_read else DEFERRED if readonly else IMMEDIATE
        with self.transactions.begin(mode) as conn:
            writing = mode == IMMEDIATE
            store = SqlUserStore(
                conn,
                workspace_id,
                self.registry,
                exclusive=writing and self._sqlite,  # BEGIN IMMEDIATE: no other writer
                lazy=mode == NO_BEGIN,
                for_update=writing and not self._sqlite,  # PostgreSQL: lock what is read
                group_registry=self.group_registry,
            )
            try:
                yield store
            finally:
                if store.server_snapshot:  # read only: COMMIT ends it, after an error too
                    conn.exec_driver_sql("COMMIT")

    def authenticated(
        self, token_id: str, secret_hash: str, intent: Intent
    ) -> AbstractContextManager[Authenticated]:
        """The fast path (:class:`~scimcore.storage.FastPath`): the authentication and what the
        request reads first, in one statement, read only where the stored secret hash equals
        ``secret_hash`` (see :mod:`.accounts`).

        A read (:meth:`.Accounts.authenticate_read`): the user of a ``GET /Users/{id}`` or of
        Entra's ``userName eq`` lookup. A write: its transaction begins with the
        authentication; on SQLite the same statement reads the user with its person and the
        settings (an update or a delete) or the settings and rules (a create), which the
        store then does not read again (:func:`.accounts.prime`); PostgreSQL authenticates
        with the transaction's first statement and reads the rest as in :meth:`users`,
        locking it."""
        if not intent.writes:  # no unit to open: the value itself (a cheap context)
            return nullcontext(self.accounts.authenticate_read(token_id, secret_hash, intent))
        return self._authenticated_write(token_id, secret_hash, intent.user_id)

    @contextmanager
    def _authenticated_write(
        self, token_id: str, secret_hash: str, user_id: str | None
    ) -> Iterator[Authenticated]:
        """The writing transaction of :meth:`authenticated`."""
        with self.transactions.begin(IMMEDIATE) as conn:
            runner = Runner(conn)
            rows = self.accounts.authenticate_write(runner, token_id, secret_hash, user_id)
            if not rows:
                yield Authenticated(None)
                return
            grant = grant_of(rows[0])
            store = SqlUserStore(
                conn,
                grant.workspace.id,
                self.registry,
                exclusive=self._sqlite,
                for_update=not self._sqlite,
                runner=runner,
                group_registry=self.group_registry,
            )
            if self._sqlite and grant.token.secret_hash == secret_hash:
                prime(store.product, rows, user_id)
                if user_id is not None:  # an update: its response's User.groups
                    store.no_groups = not rows[0].has_groups
            yield Authenticated(grant, store=store)

    def import_users(self, workspace_id: str, documents: Sequence[dict[str, Any]]) -> None:
        """Insert many canonical documents in one transaction with multi-row statements.

        For migrations from another system and for benchmarks: much faster than one SCIM
        create per user, and all-or-nothing (a taken ``userName`` raises
        :class:`~scimcore.errors.UniquenessError` and imports nothing). No card, mail or log
        entry is written: people are adopted on their first SCIM update.
        """
        transaction = self.transactions.begin(IMMEDIATE, joins=False)
        users.import_users(transaction, workspace_id, documents)

    # --- workspaces, admins, tokens (see .accounts) --------------------------------------------

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if its slug (or id) exists."""
        self.accounts.create_workspace(workspace)

    def get_workspace(self, slug: str) -> Workspace | None:
        return self.accounts.get_workspace(slug)

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None:
        return self.accounts.get_workspace_by_id(workspace_id)

    def list_workspaces(self) -> Sequence[Workspace]:
        return self.accounts.list_workspaces()

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
        self.accounts.save_admin(admin)

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        return self.accounts.get_admin(workspace_id, email)

    def list_admins(self, workspace_id: str) -> Sequence[Admin]:
        return self.accounts.list_admins(workspace_id)

    def deactivate_admin(self, workspace_id: str, email: str, reason: str) -> Admin | None:
        return self.accounts.deactivate_admin(workspace_id, email, reason)

    def add_token(self, token: TokenRecord) -> None:
        """Store a token record (only the hash of the secret); an existing id is overwritten."""
        self.accounts.add_token(token)

    def get_token(self, token_id: str) -> TokenRecord | None:
        return self.accounts.get_token(token_id)

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        return self.accounts.list_tokens(workspace_id)

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        return self.accounts.delete_token(workspace_id, token_id)

    def get_tombstone(self, token_id: str) -> TokenRecord | None:
        return self.accounts.get_tombstone(token_id)

    def claim_refusal(self, token_id: str, when: datetime, interval: timedelta) -> bool:
        return self.accounts.claim_refusal(token_id, when, interval)

    def get_activation_link(self, token_hash: str) -> ActivationLink | None:
        return self.accounts.get_activation_link(token_hash)

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""
        self.accounts.touch_token(token_id, when)

    def authenticate(self, token_id: str) -> Grant | None:
        """Token, workspace and the creator's state in one indexed join."""
        return self.accounts.authenticate(token_id)

    # --- the rate limit (scimcore.ratelimit.RateBuckets, see .buckets) -------------------------

    def take_token(self, workspace_id: str, limit: RateLimit, now: float) -> bool:
        """One request from ``workspace_id``'s token bucket, in a transaction of its own;
        ``False`` when it is empty. PostgreSQL: a row shared by every process; SQLite: in this
        process, shared by its threads."""
        return self.buckets.take_token(workspace_id, limit, now)

    # --- OAuth clients (scimcore.oauth_clients.OAuthStorage; see .oauth) -----------------------

    def add_client(self, client: OAuthClient, secret: ClientSecret | None) -> None:
        self.oauth.add_client(client, secret)

    def get_client(self, workspace_id: str, client_id: str) -> OAuthClient | None:
        return self.oauth.get_client(workspace_id, client_id)

    def list_clients(self, workspace_id: str) -> Sequence[OAuthClient]:
        return self.oauth.list_clients(workspace_id)

    def list_secrets(self, client_id: str) -> Sequence[ClientSecret]:
        return self.oauth.list_secrets(client_id)

    def add_secret(self, secret: ClientSecret) -> bool:
        return self.oauth.add_secret(secret)

    def delete_secret(self, client_id: str, secret_id: str) -> bool:
        return self.oauth.delete_secret(client_id, secret_id)

    def delete_client(self, workspace_id: str, client_id: str) -> bool:
        return self.oauth.delete_client(workspace_id, client_id)

    def bury_admin_clients(self, workspace_id: str, email: str, reason: str) -> int:
        return self.oauth.bury_admin_clients(workspace_id, email, reason)

    def claim_client_refusal(self, client_id: str, when: datetime, interval: timedelta) -> bool:
        return self.oauth.claim_client_refusal(client_id, when, interval)

    def client_grant(self, client_id: str) -> ClientGrant | None:
        return self.oauth.client_grant(client_id)

    def touch_secret(self, secret_id: str, when: datetime) -> None:
        self.oauth.touch_secret(secret_id, when)

    def add_access_token(self, token: AccessToken) -> None:
        self.oauth.add_access_token(token)

    def access_grant(self, token_id: str) -> AccessGrant | None:
        return self.oauth.access_grant(token_id)

    # --- federated identities (scimcore.federation.FederationStorage; see .federation) -------

    def add_federation(self, federation: FederatedIdentity) -> bool:
        return self.federation.add_federation(federation)

    def list_federations(self, client_id: str) -> Sequence[FederatedIdentity]:
        return self.federation.list_federations(client_id)

    def delete_federation(self, client_id: str, federation_id: str) -> bool:
        return self.federation.delete_federation(client_id, federation_id)

    def federations_of(self, issuer: str, subject: str) -> Sequence[FederatedIdentity]:
        return self.federation.federations_of(issuer, subject)

    def touch_federation(self, federation_id: str, when: datetime) -> None:
        self.federation.touch_federation(federation_id, when)

    def claim_assertion(self, id_hash: str, expires_at: datetime, now: datetime) -> bool:
        return self.federation.claim_assertion(id_hash, expires_at, now)

    # --- the authorization-code grant (scimcore.authorization; see .authorization) -----------

    def add_redirect_uri(self, uri: RedirectUri) -> bool:
        return self.authorization.add_redirect_uri(uri)

    def list_redirect_uris(self, client_id: str) -> Sequence[RedirectUri]:
        return self.authorization.list_redirect_uris(client_id)

    def delete_redirect_uri(self, client_id: str, uri_id: str) -> bool:
        return self.authorization.delete_redirect_uri(client_id, uri_id)

    def add_code(self, grant: AuthorizationGrant, code: AuthorizationCode) -> bool:
        return self.authorization.add_code(grant, code)

    def consume_code(self, code_hash: str, client_id: str, now: datetime) -> CodeUse | None:
        return self.authorization.consume_code(code_hash, client_id, now)

    def consume_refresh_token(
        self, token_hash: str, client_id: str, now: datetime
    ) -> RefreshUse | None:
        return self.authorization.consume_refresh_token(token_hash, client_id, now)

    def issue_tokens(self, access: AccessToken, refresh: RefreshToken) -> bool:
        return self.authorization.issue_tokens(access, refresh)

    def revoke_admin_grants(self, workspace_id: str, email: str) -> int:
        return self.authorization.revoke_admin_grants(workspace_id, email)

    # --- mail delivery (across workspaces, see .product) ---------------------------------------

    def claim_mail(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[OutboxMail]:
        """Atomically mark up to ``limit`` due mails ``sending`` until ``lease_until``, across
        workspaces, and return them (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: under
        ``BEGIN IMMEDIATE``). Two concurrent callers never get the same mail."""
        with self.transactions.begin(IMMEDIATE) as conn:
            return product.claim_mail(conn, now, lease_until, limit)

    def finish_mail(self, mail: OutboxMail) -> None:
        """Store the outcome of a delivery attempt of a claimed mail."""
        self.finish_mails((mail,))

    def finish_mails(self, mails: Sequence[OutboxMail]) -> None:
        """Store the outcomes of delivery attempts of claimed mails, in one transaction (one
        ``UPDATE`` executed for each; ``MailBatches``)."""
        if mails:
            with self.transactions.begin(IMMEDIATE) as conn:
                product.finish_mails(conn, mails)


def create_storage(url: str, registry: SchemaRegistry | None = None) -> SqlStorage:
    """Open (and migrate) the database at ``url``: ``sqlite:///file.db`` or PostgreSQL."""
    return SqlStorage(url, registry)
