"""The OAuth 2.0 clients of the in-memory reference storage (:mod:`scimcore_adapters.memory`).

:class:`OAuthStoreMixin` gives :class:`~scimcore_adapters.memory.MemoryStorage` the methods of
:class:`scimcore.oauth_clients.OAuthStorage` (issue 20): clients, their secrets and access tokens,
held by id under the storage's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from scimcore.oauth_clients import (
    CLIENT_ACTIVE,
    CLIENT_DEAD,
    AccessGrant,
    AccessToken,
    ClientGrant,
    ClientSecret,
    OAuthClient,
)
from scimcore.storage import Admin, Workspace

__all__ = ["OAuthStoreMixin"]


class OAuthStoreMixin:
    """Clients, secrets and access tokens by id; the storage's lock, workspaces and admins."""

    _lock: threading.RLock
    _workspaces: dict[str, Workspace]
    _admins: dict[tuple[str, str], Admin]

    def _oauth_state(self) -> None:
        """Set up the empty OAuth state (called by the storage's ``__init__``)."""
        self._clients: dict[str, OAuthClient] = {}
        self._secrets: dict[str, ClientSecret] = {}
        self._access: dict[str, AccessToken] = {}
        self._client_refused_at: dict[str, datetime] = {}

    def add_client(self, client: OAuthClient, secret: ClientSecret | None) -> None:
        with self._lock:
            self._clients[client.id] = client
            if secret is not None:
                self._secrets[secret.id] = secret

    def get_client(self, workspace_id: str, client_id: str) -> OAuthClient | None:
        client = self._clients.get(client_id)
        return client if client is not None and client.workspace_id == workspace_id else None

    def list_clients(self, workspace_id: str) -> Sequence[OAuthClient]:
        found = (c for c in self._clients.values() if c.workspace_id == workspace_id)
        return sorted(found, key=lambda c: (c.created_at, c.id))

    def list_secrets(self, client_id: str) -> Sequence[ClientSecret]:
        found = (s for s in self._secrets.values() if s.client_id == client_id)
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def add_secret(self, secret: ClientSecret) -> bool:
        with self._lock:
            client = self._clients.get(secret.client_id)
            if client is None or client.state != CLIENT_ACTIVE:
                return False
            self._secrets[secret.id] = secret
            return True

    def delete_secret(self, client_id: str, secret_id: str) -> bool:
        with self._lock:
            secret = self._secrets.get(secret_id)
            if secret is None or secret.client_id != client_id:
                return False
            del self._secrets[secret_id]
            return True

    def _drop_access(self, client_id: str) -> None:
        """Remove a client's access tokens (under the lock)."""
        for key in [k for k, t in self._access.items() if t.client_id == client_id]:
            del self._access[key]

    def delete_client(self, workspace_id: str, client_id: str) -> bool:
        with self._lock:
            if self.get_client(workspace_id, client_id) is None:
                return False
            del self._clients[client_id]
            for key in [k for k, s in self._secrets.items() if s.client_id == client_id]:
                del self._secrets[key]
            self._drop_access(client_id)
            return True

    def bury_admin_clients(self, workspace_id: str, email: str, reason: str) -> int:
        with self._lock:
            buried = [
                c
                for c in self._clients.values()
                if c.workspace_id == workspace_id
                and c.created_by.lower() == email.lower()
                and c.state == CLIENT_ACTIVE
            ]
            for client in buried:
                self._clients[client.id] = attrs.evolve(
                    client, state=CLIENT_DEAD, dead_reason=reason
                )
                self._drop_access(client.id)
            return len(buried)

    def claim_client_refusal(self, client_id: str, when: datetime, interval: timedelta) -> bool:
        with self._lock:
            last = self._client_refused_at.get(client_id)
            if last is not None and when - last < interval:
                return False
            self._client_refused_at[client_id] = when
            return True

    def _admin_active(self, workspace_id: str, email: str) -> bool:
        admin = self._admins.get((workspace_id, email.lower()))
        return admin is not None and admin.active

    def client_grant(self, client_id: str) -> ClientGrant | None:
        with self._lock:
            client = self._clients.get(client_id)
            workspace = self._workspaces.get(client.workspace_id) if client else None
            if client is None or workspace is None:
                return None
            active = self._admin_active(client.workspace_id, client.created_by)
            return ClientGrant(client, workspace, active, tuple(self.list_secrets(client_id)))

    def touch_secret(self, secret_id: str, when: datetime) -> None:
        with self._lock:
            secret = self._secrets.get(secret_id)
            if secret is not None:
                self._secrets[secret_id] = attrs.evolve(secret, last_used_at=when)

    def add_access_token(self, token: AccessToken) -> None:
        with self._lock:
            client = self._clients.get(token.client_id)
            if client is None or client.state != CLIENT_ACTIVE:
                return  # deleted or dead meanwhile: the token could never be used
            for key, old in list(self._access.items()):
                if old.client_id == token.client_id and old.expires_at <= token.created_at:
                    del self._access[key]
            self._access[token.id] = token

    def access_grant(self, token_id: str) -> AccessGrant | None:
        with self._lock:
            token = self._access.get(token_id)
            client = self._clients.get(token.client_id) if token else None
            workspace = self._workspaces.get(token.workspace_id) if token else None
            if token is None or client is None or workspace is None:
                return None
            active = self._admin_active(client.workspace_id, client.created_by)
            return AccessGrant(token, client, workspace, active)
