"""Federated identities of OAuth clients in the SQL storage (issue 20 item 3, schema 10).

:class:`FederationAccounts` implements :class:`scimcore.federation.FederationStorage`, each
method in a transaction of its own. A deleted client's identities go with it (``ON DELETE
CASCADE``); a dead client's stay, unusable, as its secrets do. Used assertion ids are claimed
by ``INSERT ... ON CONFLICT DO NOTHING`` (its row count tells a replay, on both engines, also
between two processes at once), after the ids expired by then are purged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select

from scimcore.federation import FederatedIdentity
from scimcore.oauth_clients import CLIENT_ACTIVE

from .engines import IMMEDIATE, NO_BEGIN
from .oauth_tables import OAUTH_ASSERTION_IDS, OAUTH_CLIENT_FEDERATIONS, OAUTH_CLIENTS
from .rows import RecordRows
from .statements import insert_unless_statement
from .transactions import Transactions

__all__ = ["FederationAccounts"]

_ROWS = RecordRows(FederatedIdentity)
_F, _J = OAUTH_CLIENT_FEDERATIONS.c, OAUTH_ASSERTION_IDS.c

_LIST = (
    select(OAUTH_CLIENT_FEDERATIONS)
    .where(_F.client_id == bindparam("b_id"))
    .order_by(_F.created_at, _F.id)
)
_OF_IDENTITY = (
    select(OAUTH_CLIENT_FEDERATIONS)
    .where(_F.issuer == bindparam("b_iss"), _F.subject == bindparam("b_sub"))
    .order_by(_F.created_at, _F.id)
)
_ACTIVE_CLIENT = select(OAUTH_CLIENTS.c.id).where(
    OAUTH_CLIENTS.c.id == bindparam("b_id"), OAUTH_CLIENTS.c.state == CLIENT_ACTIVE
)
_DELETE = delete(OAUTH_CLIENT_FEDERATIONS).where(
    _F.client_id == bindparam("b_id"), _F.id == bindparam("b_fed")
)
_TOUCH = (
    OAUTH_CLIENT_FEDERATIONS.update()
    .where(_F.id == bindparam("b_id"))
    .values(last_used_at=bindparam("b_when", type_=_F.last_used_at.type))
)
_PURGE_IDS = delete(OAUTH_ASSERTION_IDS).where(
    _J.expires_at <= bindparam("b_now", type_=_J.expires_at.type)
)


class FederationAccounts:
    """The :class:`~scimcore.federation.FederationStorage` methods, each in its transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    def add_federation(self, federation: FederatedIdentity) -> bool:
        with self._transactions.begin(IMMEDIATE) as conn:
            if conn.execute(_ACTIVE_CLIENT, {"b_id": federation.client_id}).first() is None:
                return False
            conn.execute(OAUTH_CLIENT_FEDERATIONS.insert(), _ROWS.to_row(federation))
            return True

    def list_federations(self, client_id: str) -> Sequence[FederatedIdentity]:
        with self._transactions.begin(NO_BEGIN) as conn:
            return [_ROWS.from_row(r) for r in conn.execute(_LIST, {"b_id": client_id})]

    def delete_federation(self, client_id: str, federation_id: str) -> bool:
        with self._transactions.begin(IMMEDIATE) as conn:
            params = {"b_id": client_id, "b_fed": federation_id}
            return bool(conn.execute(_DELETE, params).rowcount)

    def federations_of(self, issuer: str, subject: str) -> Sequence[FederatedIdentity]:
        with self._transactions.begin(NO_BEGIN) as conn:
            rows = conn.execute(_OF_IDENTITY, {"b_iss": issuer, "b_sub": subject})
            return [_ROWS.from_row(r) for r in rows]

    def touch_federation(self, federation_id: str, when: datetime) -> None:
        with self._transactions.begin(IMMEDIATE) as conn:
            conn.execute(_TOUCH, {"b_id": federation_id, "b_when": when})

    def claim_assertion(self, id_hash: str, expires_at: datetime, now: datetime) -> bool:
        with self._transactions.begin(IMMEDIATE) as conn:
            conn.execute(_PURGE_IDS, {"b_now": now})
            stmt = insert_unless_statement(conn.dialect.name, OAUTH_ASSERTION_IDS, ("id_hash",))
            row = {"id_hash": id_hash, "expires_at": expires_at}
            result = conn.execute(stmt, row, execution_options={"preserve_rowcount": True})
            return bool(result.rowcount)
