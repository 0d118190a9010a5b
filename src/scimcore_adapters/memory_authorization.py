"""The authorization-code grant of the in-memory reference storage (:mod:`.memory`).

:class:`AuthorizationStoreMixin` gives :class:`~scimcore_adapters.memory.MemoryStorage` the
methods of :class:`scimcore.authorization.AuthorizationStorage`: redirect URIs, approvals
(grants), their codes and refresh tokens, held under the storage's lock beside the OAuth
clients of :mod:`.memory_oauth`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from scimcore.authorization import (
    USED_CODES_KEPT,
    AuthorizationCode,
    AuthorizationGrant,
    CodeUse,
    RedirectUri,
    RefreshToken,
    RefreshUse,
)
from scimcore.oauth_clients import CLIENT_ACTIVE, AccessToken, OAuthClient

__all__ = ["AuthorizationStoreMixin"]


class AuthorizationStoreMixin:
    """Redirect URIs, grants, codes and refresh tokens; the storage's lock, clients, access
    tokens and admin check."""

    _lock: threading.RLock
    _clients: dict[str, OAuthClient]
    _access: dict[str, AccessToken]

    def _admin_active(self, workspace_id: str, email: str) -> bool:
        raise NotImplementedError  # the storage's (memory_oauth.OAuthStoreMixin)

    def _authorization_state(self) -> None:
        """Set up the empty state (called by the storage's ``__init__``)."""
        self._redirect_uris: dict[str, RedirectUri] = {}
        self._grants: dict[str, AuthorizationGrant] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshToken] = {}

    def add_redirect_uri(self, uri: RedirectUri) -> bool:
        with self._lock:
            client = self._clients.get(uri.client_id)
            if client is None or client.state != CLIENT_ACTIVE:
                return False
            self._redirect_uris[uri.id] = uri
            return True

    def list_redirect_uris(self, client_id: str) -> Sequence[RedirectUri]:
        with self._lock:
            found = [u for u in self._redirect_uris.values() if u.client_id == client_id]
        return sorted(found, key=lambda u: (u.created_at, u.id))

    def delete_redirect_uri(self, client_id: str, uri_id: str) -> bool:
        with self._lock:
            uri = self._redirect_uris.get(uri_id)
            if uri is None or uri.client_id != client_id:
                return False
            del self._redirect_uris[uri_id]
            return True

    def _grant_stands(self, grant: AuthorizationGrant) -> bool:
        """The grant's client is active, and its creator and approver are active admins."""
        client = self._clients.get(grant.client_id)
        return (
            client is not None
            and client.state == CLIENT_ACTIVE
            and self._admin_active(client.workspace_id, client.created_by)
            and self._admin_active(grant.workspace_id, grant.approved_by)
        )

    def add_code(self, grant: AuthorizationGrant, code: AuthorizationCode) -> bool:
        with self._lock:
            if not self._grant_stands(grant):
                return False
            cutoff = code.created_at - USED_CODES_KEPT
            for key, old in list(self._codes.items()):
                if old.client_id == code.client_id and old.expires_at <= cutoff:
                    del self._codes[key]
            self._drop_empty_grants(code.client_id)
            self._grants[grant.id] = grant
            self._codes[code.code_hash] = code
            return True

    def _drop_empty_grants(self, client_id: str) -> None:
        """Forget the client's grants with neither a code nor a refresh token left."""
        alive = {c.grant_id for c in self._codes.values()}
        alive |= {r.grant_id for r in self._refresh.values()}
        for key, grant in list(self._grants.items()):
            if grant.client_id == client_id and key not in alive:
                del self._grants[key]

    def _revoke(self, grant_id: str) -> None:
        """Remove a grant with its codes, refresh tokens and their access tokens (locked)."""
        self._grants.pop(grant_id, None)
        for key, code in list(self._codes.items()):
            if code.grant_id == grant_id:
                del self._codes[key]
        for key, token in list(self._refresh.items()):
            if token.grant_id == grant_id:
                self._access.pop(token.access_token_id, None)
                del self._refresh[key]

    def consume_code(self, code_hash: str, client_id: str, now: datetime) -> CodeUse | None:
        with self._lock:
            code = self._codes.get(code_hash)
            grant = self._grants.get(code.grant_id) if code else None
            if code is None or grant is None or code.client_id != client_id:
                return None
            if code.used_at is not None:
                self._revoke(grant.id)
                return CodeUse(code, grant, reused=True)
            self._codes[code_hash] = attrs.evolve(code, used_at=now)
            return CodeUse(code, grant)

    def consume_refresh_token(
        self, token_hash: str, client_id: str, now: datetime
    ) -> RefreshUse | None:
        with self._lock:
            token = self._refresh.get(token_hash)
            grant = self._grants.get(token.grant_id) if token else None
            if token is None or grant is None or token.client_id != client_id:
                return None
            if token.used_at is not None:
                self._revoke(grant.id)
                return RefreshUse(token, grant, reused=True)
            self._refresh[token_hash] = attrs.evolve(token, used_at=now)
            return RefreshUse(token, grant)

    def issue_tokens(self, access: AccessToken, refresh: RefreshToken) -> bool:
        with self._lock:
            grant = self._grants.get(refresh.grant_id)
            if grant is None or not self._grant_stands(grant):
                return False
            for key, old in list(self._refresh.items()):
                if old.grant_id == grant.id and old.expires_at <= refresh.created_at:
                    del self._refresh[key]
            self._access[access.id] = access
            self._refresh[refresh.token_hash] = refresh
            return True

    def revoke_admin_grants(self, workspace_id: str, email: str) -> int:
        with self._lock:
            key = email.lower()
            clients = {
                c.id
                for c in self._clients.values()
                if c.workspace_id == workspace_id and c.created_by.lower() == key
            }
            revoked = [
                g.id
                for g in self._grants.values()
                if g.workspace_id == workspace_id
                and (g.approved_by.lower() == key or g.client_id in clients)
            ]
            for grant_id in revoked:
                self._revoke(grant_id)
            return len(revoked)

    def _drop_client_authorization(self, client_id: str) -> None:
        """Forget a deleted client's redirect URIs and grants (locked)."""
        for key in [k for k, u in self._redirect_uris.items() if u.client_id == client_id]:
            del self._redirect_uris[key]
        for grant_id in [k for k, g in self._grants.items() if g.client_id == client_id]:
            self._revoke(grant_id)
