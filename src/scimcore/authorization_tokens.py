"""The token endpoint's side of the authorization-code grant (RFC 6749 §4.1.3, §6; PKCE
RFC 7636 §4.6): ``grant_type=authorization_code`` and ``grant_type=refresh_token``.

:func:`code_grant_token` is called from one place, :meth:`scimcore.oauth.OAuthEndpoints.token`,
once the client has authenticated (``client_secret_basic`` or ``client_secret_post``). It
answers an access token (as the client credentials grant's: same lifetime, accepted on SCIM
requests of the client's workspace) and a refresh token; or raises the
:class:`~scimcore.oauth.OAuthError` of RFC 6749 §5.2.

Refresh tokens rotate: each use gives a new one, and the one used is spent. A refresh token
or a code presented a second time is refused, and everything its grant issued is revoked
(RFC 9700 §4.14.2, RFC 6749 §4.1.2): one of the two presenters is not the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from . import _json
from .authorization import (
    SCOPE,
    AuthorizationCodes,
    AuthorizationGrant,
    AuthorizationStorage,
)
from .messages import ScimResponse
from .oauth import (
    InvalidGrantError,
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
)
from .oauth_clients import ACCESS_TOKEN_PREFIX, AccessToken, hash_secret
from .storage import Workspace

__all__ = ["InvalidScopeError", "code_grant_token", "pkce_challenge"]

_NO_STORE = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


class InvalidScopeError(OAuthError):
    """400 ``invalid_scope``: a refresh asked for more than the grant gave (RFC 6749 §6)."""

    error = "invalid_scope"


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 ``S256``: ``BASE64URL(SHA256(ASCII(code_verifier)))``, unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def code_grant_token(
    codes: AuthorizationCodes,
    grant_type: str,
    client_id: str,
    workspace: Workspace,
    form: Mapping[str, str],
) -> ScimResponse:
    """Answer an authenticated client's ``authorization_code`` or ``refresh_token`` request."""
    storage = codes.clients.workspaces.storage
    if not isinstance(storage, AuthorizationStorage):
        raise UnauthorizedClientError("this server offers the client_credentials grant only")
    if grant_type == "authorization_code":
        return _exchange(codes, storage, client_id, form)
    return _refresh(codes, storage, client_id, form)


def _refused(codes: AuthorizationCodes, grant: AuthorizationGrant, what: str) -> InvalidGrantError:
    """Log a replay (R9.2; never the code or token) and the error to raise."""
    detail = (
        f"refused: {what} of OAuth client {grant.client_id} presented twice; "
        f"every token of the approval by {grant.approved_by} is revoked"
    )
    codes.clients.workspaces._log(grant.workspace_id, "idp", "auth.refused", detail, status=400)
    return InvalidGrantError(f"the {what} was already used: its tokens are revoked")


def _exchange(
    codes: AuthorizationCodes,
    storage: AuthorizationStorage,
    client_id: str,
    form: Mapping[str, str],
) -> ScimResponse:
    """RFC 6749 §4.1.3: a code (with its redirect URI and PKCE verifier) for tokens."""
    if not storage.list_redirect_uris(client_id):
        raise UnauthorizedClientError(
            "this client has no redirect URI: it may use the client_credentials grant only"
        )
    code = form.get("code")
    if code is None:
        raise InvalidRequestError("the parameter code is missing")
    now = codes.clients.runtime.now()
    used = storage.consume_code(hash_secret(code), client_id, now)
    if used is None:
        raise InvalidGrantError("the code is invalid, or was issued to another client")
    if used.reused:
        raise _refused(codes, used.grant, "authorization code")
    if used.code.expires_at <= now:
        raise InvalidGrantError("the code expired: authorize again")
    sent = form.get("redirect_uri")
    if (used.code.redirect_uri_sent or sent is not None) and sent != used.code.redirect_uri:
        raise InvalidGrantError("redirect_uri differs from the authorization request's")
    verifier = form.get("code_verifier")
    challenge = used.code.code_challenge
    if challenge is None and verifier is not None:
        raise InvalidGrantError("code_verifier sent for a code issued without code_challenge")
    if challenge is not None:
        if verifier is None or not _VERIFIER_RE.match(verifier):
            raise InvalidGrantError("the code needs its code_verifier (43 to 128 characters)")
        if not hmac.compare_digest(pkce_challenge(verifier), challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge")
    return _issue(codes, storage, used.grant)


def _refresh(
    codes: AuthorizationCodes,
    storage: AuthorizationStorage,
    client_id: str,
    form: Mapping[str, str],
) -> ScimResponse:
    """RFC 6749 §6: a refresh token for new tokens (the one presented is spent)."""
    token = form.get("refresh_token")
    if token is None:
        raise InvalidRequestError("the parameter refresh_token is missing")
    scope = form.get("scope")
    if scope is not None and set(scope.split()) - {SCOPE}:
        raise InvalidScopeError(f"this grant has the scope {SCOPE!r} only")
    now = codes.clients.runtime.now()
    used = storage.consume_refresh_token(hash_secret(token), client_id, now)
    if used is None:
        raise InvalidGrantError("the refresh token is invalid, revoked, or another client's")
    if used.reused:
        raise _refused(codes, used.grant, "refresh token")
    if used.token.expires_at <= now:
        raise InvalidGrantError("the refresh token expired: authorize again")
    return _issue(codes, storage, used.grant)


def _issue(
    codes: AuthorizationCodes, storage: AuthorizationStorage, grant: AuthorizationGrant
) -> ScimResponse:
    """A new access token and refresh token of ``grant``, if it still stands."""
    runtime = codes.clients.runtime
    lifetime = codes.config.access_token_lifetime
    now = runtime.now()
    secret = runtime.new_secret()
    access = AccessToken(
        id=runtime.new_id(),
        client_id=grant.client_id,
        workspace_id=grant.workspace_id,
        token_hash=hash_secret(secret),
        created_at=now,
        expires_at=now + lifetime,
    )
    refresh, refresh_plaintext = codes.new_refresh_token(grant, access)
    if not storage.issue_tokens(access, refresh):
        raise InvalidGrantError("the approval was revoked: its client or admin is gone")
    body: dict[str, Any] = {
        "access_token": f"{ACCESS_TOKEN_PREFIX}{access.id}_{secret}",
        "token_type": "Bearer",
        "expires_in": int(lifetime.total_seconds()),
        "refresh_token": refresh_plaintext,
        "scope": SCOPE,
    }
    return ScimResponse(200, dict(_NO_STORE), _json.dumps(body))
