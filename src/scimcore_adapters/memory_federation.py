"""Federated identities of OAuth clients in the in-memory reference storage
(:mod:`scimcore_adapters.memory`).

:class:`FederationStoreMixin` gives :class:`~scimcore_adapters.memory.MemoryStorage` the
methods of :class:`scimcore.federation.FederationStorage` (issue 20 item 3), under the
storage's lock. A deleted client's identities are never answered again (as the SQL storage's
``ON DELETE CASCADE`` does) and are dropped when the next identity is added.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from scimcore.federation import FederatedIdentity
from scimcore.oauth_clients import CLIENT_ACTIVE, OAuthClient

__all__ = ["FederationStoreMixin"]


class FederationStoreMixin:
    """Federated identities by id and used assertion ids; the storage's lock and clients."""

    _lock: threading.RLock
    _clients: dict[str, OAuthClient]

    def _federation_state(self) -> None:
        """Set up the empty state (called by the storage's ``__init__``)."""
        self._federations: dict[str, FederatedIdentity] = {}
        self._assertion_ids: dict[str, datetime] = {}

    def _sorted(self, found: list[FederatedIdentity]) -> list[FederatedIdentity]:
        kept = [f for f in found if f.client_id in self._clients]
        return sorted(kept, key=lambda f: (f.created_at, f.id))

    def add_federation(self, federation: FederatedIdentity) -> bool:
        with self._lock:
            client = self._clients.get(federation.client_id)
            if client is None or client.state != CLIENT_ACTIVE:
                return False
            for key in [
                k for k, f in self._federations.items() if f.client_id not in self._clients
            ]:
                del self._federations[key]
            self._federations[federation.id] = federation
            return True

    def list_federations(self, client_id: str) -> Sequence[FederatedIdentity]:
        with self._lock:
            return self._sorted([f for f in self._federations.values() if f.client_id == client_id])

    def delete_federation(self, client_id: str, federation_id: str) -> bool:
        with self._lock:
            found = self._federations.get(federation_id)
            if found is None or found.client_id != client_id:
                return False
            del self._federations[federation_id]
            return True

    def federations_of(self, issuer: str, subject: str) -> Sequence[FederatedIdentity]:
        with self._lock:
            found = self._federations.values()
            return self._sorted([f for f in found if (f.issuer, f.subject) == (issuer, subject)])

    def touch_federation(self, federation_id: str, when: datetime) -> None:
        with self._lock:
            found = self._federations.get(federation_id)
            if found is not None:
                self._federations[federation_id] = attrs.evolve(found, last_used_at=when)

    def claim_assertion(self, id_hash: str, expires_at: datetime, now: datetime) -> bool:
        with self._lock:
            for key in [k for k, until in self._assertion_ids.items() if until <= now]:
                del self._assertion_ids[key]
            if id_hash in self._assertion_ids:
                return False
            self._assertion_ids[id_hash] = expires_at
            return True
