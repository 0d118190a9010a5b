"""The OAuth 2.0 authorization-code grant (RFC 6749 §4.1, PKCE RFC 7636), sans-IO: redirect URIs
registered per client, the validation of an authorize request, and the one-time codes an
admin's approval issues (issue 20, Okta's catalogue).

The authorize *page* (sign-in, approve or deny) is an adapter's
(:mod:`scimcore_adapters.console`); it hands the request's query string to
:meth:`AuthorizationCodes.request`, which answers an :class:`AuthorizationRequest` or raises

- :class:`AuthorizePageError` when the client is unknown or dead, or the redirect URI is
  missing or not one the admin registered: shown as an error page, never a redirect
  (RFC 6749 §4.1.2.1);
- :class:`AuthorizeRedirectError` for every other error: the browser goes back to the
  registered redirect URI with ``error``, ``error_description`` and ``state``.

A redirect URI matches only when it is exactly, character for character, one the admin
registered (RFC 9700 §2.1; no prefix, pattern or normalisation). PKCE: ``S256`` only
(``plain`` is refused: it protects nothing a TLS-intercepted request would not reveal), and
optional, since every client here is confidential and authenticates at the token endpoint;
once a request carries a ``code_challenge``, the code needs its ``code_verifier``, and a
``code_verifier`` for a code issued without a challenge is refused (PKCE downgrade, RFC 9700
§2.1.1). See ``docs/decisions.md``.

A code is 256 random bits, lives :data:`CODE_LIFETIME`, is stored as its SHA-256 only, bound to
the client, the redirect URI, the workspace, the approving admin and the code challenge
(:class:`AuthorizationGrant`, :class:`AuthorizationCode`), and works once: a second use
revokes every token it gave (RFC 6749 §4.1.2). The token endpoint's side of the grant is
:mod:`scimcore.authorization_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from attrs import frozen

from .config import ServiceConfig
from .oauth_clients import (
    CLIENT_ACTIVE,
    AccessToken,
    OAuthClient,
    OAuthClients,
    OAuthStorage,
    hash_secret,
)
from .storage import Workspace
from .workspaces import WorkspaceError

__all__ = [
    "AUTHORIZE_PATH",
    "CODE_LIFETIME",
    "MAX_REDIRECT_URIS",
    "REFRESH_TOKEN_LIFETIME",
    "REFRESH_TOKEN_PREFIX",
    "SCOPE",
    "USED_CODES_KEPT",
    "AuthorizationCode",
    "AuthorizationCodes",
    "AuthorizationGrant",
    "AuthorizationRequest",
    "AuthorizationStorage",
    "AuthorizePageError",
    "AuthorizeRedirectError",
    "CodeUse",
    "RedirectUri",
    "RefreshToken",
    "RefreshUse",
    "add_authorization_metadata",
    "check_redirect_uri",
    "with_query",
]

#: The authorize endpoint, from the server root: beside the token endpoint (``/oauth/token``).
AUTHORIZE_PATH = "/oauth/authorize"
#: How long a code may wait for its exchange (RFC 6749 §4.1.2 recommends 10 minutes at most).
CODE_LIFETIME = timedelta(minutes=5)
#: How long a refresh token lives; each refresh gives a new one with this lifetime again.
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
#: Every refresh token starts so (never an access or SCIM bearer token's prefix).
REFRESH_TOKEN_PREFIX = "scimrt_"
#: How long a code is kept after it expired, so that a late replay still revokes its tokens.
USED_CODES_KEPT = timedelta(days=1)
#: Redirect URIs one client may have.
MAX_REDIRECT_URIS = 20
#: The one scope: the SCIM API of the client's workspace.
SCOPE = "scim"

_MAX_URI = 2000
_MAX_STATE = 1000
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_PARAMETERS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
     "code_challenge_method"}
)  # fmt: skip
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256, no padding
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@frozen
class RedirectUri:
    """A redirect URI an admin registered for a client."""

    id: str
    client_id: str
    uri: str
    created_at: datetime


@frozen
class AuthorizationGrant:
    """An admin's approval of a client for their workspace: the family of the code and of every
    refresh and access token issued from it (revoked together)."""

    id: str
    client_id: str
    workspace_id: str
    approved_by: str
    redirect_uri: str
    created_at: datetime


@frozen
class AuthorizationCode:
    """A one-time code: only its SHA-256 is stored. ``redirect_uri_sent``: the authorize
    request named the redirect URI (the token request must then name it too)."""

    code_hash: str
    grant_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_sent: bool
    code_challenge: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@frozen
class RefreshToken:
    """A refresh token: only its SHA-256 is stored; ``access_token_id`` is the access token
    issued with it (revoked with its family)."""

    token_hash: str
    grant_id: str
    client_id: str
    access_token_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@frozen
class CodeUse:
    """A code presented at the token endpoint: the code as it was before this use, its grant,
    and ``reused`` (it had been used: its family is now revoked)."""

    code: AuthorizationCode
    grant: AuthorizationGrant
    reused: bool = False


@frozen
class RefreshUse:
    """A refresh token presented: as it was before this use, its grant, and ``reused``."""

    token: RefreshToken
    grant: AuthorizationGrant
    reused: bool = False


@runtime_checkable
class AuthorizationStorage(Protocol):
    """What the authorization-code grant needs from a storage (memory and SQL implement it;
    contract tests in ``scimcore.testing``). Every method is one transaction."""

    def add_redirect_uri(self, uri: RedirectUri) -> bool:
        """Store a redirect URI of an active client; ``False`` if the client is not active."""

    def list_redirect_uris(self, client_id: str) -> Sequence[RedirectUri]:
        """A client's redirect URIs, oldest first."""

    def delete_redirect_uri(self, client_id: str, uri_id: str) -> bool: ...

    def add_code(self, grant: AuthorizationGrant, code: AuthorizationCode) -> bool:
        """Store an approval and its code if the client is active and both its creator and
        the approving admin are active admins of its workspace (else ``False``); drop the
        client's codes expired a day before and grants left with nothing."""

    def consume_code(self, code_hash: str, client_id: str, now: datetime) -> CodeUse | None:
        """The client's code with this hash, marked used at ``now``; if it was used already,
        revoke its grant (codes, refresh and access tokens) and say so. ``None``: no such code
        of this client (another client's code is left as it is)."""

    def consume_refresh_token(
        self, token_hash: str, client_id: str, now: datetime
    ) -> RefreshUse | None:
        """As :meth:`consume_code`, for a refresh token."""

    def issue_tokens(self, access: AccessToken, refresh: RefreshToken) -> bool:
        """Store an access token and the refresh token of grant ``refresh.grant_id`` if the
        grant still exists, its client is active and its client's creator and approving admin
        are active admins (else ``False``); drop the grant's expired refresh tokens."""

    def revoke_admin_grants(self, workspace_id: str, email: str) -> int:
        """Revoke the grants the admin approved and those of the clients they created (the
        backends run it inside ``deactivate_admin``'s transaction too); how many."""


class AuthorizePageError(Exception):
    """An authorize request that must not be redirected (RFC 6749 §4.1.2.1): shown to the
    browser as a page with ``message`` and the HTTP ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthorizeRedirectError(Exception):
    """An authorize request refused by a redirect to the client (RFC 6749 §4.1.2.1):
    :meth:`location` is the URL with ``error``, ``error_description`` and ``state``."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None):
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self, issuer: str) -> str:
        """The redirect URI with the error (and ``iss``, RFC 9207)."""
        params = {"error": self.error, "error_description": self.description}
        return with_query(self.redirect_uri, params, self.state, issuer)


@frozen
class AuthorizationRequest:
    """A valid authorize request: which client asks for which workspace, and what to bind the
    code to."""

    client: OAuthClient
    workspace: Workspace
    redirect_uri: str
    redirect_uri_sent: bool
    state: str | None
    code_challenge: str | None


def with_query(uri: str, params: dict[str, str], state: str | None, issuer: str) -> str:
    """``uri`` with ``params``, ``state`` and ``iss`` added to its query (its own query kept,
    RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    added = dict(params)
    if state is not None:
        added["state"] = state
    added["iss"] = issuer
    query = "&".join(q for q in (parts.query, urlencode(added)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def add_authorization_metadata(
    body: dict[str, Any], issuer: str, codes: AuthorizationCodes
) -> None:
    """Add the grant to an RFC 8414 metadata document when it is offered
    (:attr:`AuthorizationCodes.available`)."""
    if not codes.available or codes.endpoint is None:
        return
    body["authorization_endpoint"] = issuer + codes.endpoint
    body["grant_types_supported"] = [
        *body["grant_types_supported"], "authorization_code", "refresh_token"
    ]  # fmt: skip
    body["response_types_supported"] = ["code"]
    body["code_challenge_methods_supported"] = ["S256"]
    body["authorization_response_iss_parameter_supported"] = True  # RFC 9207
    body["scopes_supported"] = [SCOPE]


def check_redirect_uri(uri: str) -> str:
    """``uri`` if it can be registered: absolute ``https`` (``http`` only on a loopback host),
    no fragment, no user information, no white space, at most 2000 characters;
    :class:`~scimcore.workspaces.WorkspaceError` otherwise."""
    if not uri or len(uri) > _MAX_URI or any(c.isspace() or ord(c) < 0x21 for c in uri):
        raise WorkspaceError(f"a redirect URI has 1 to {_MAX_URI} characters and no spaces")
    try:
        parts = urlsplit(uri)
        host, _ = parts.hostname, parts.port  # a bad port raises here
    except ValueError:
        raise WorkspaceError(f"{uri!r} is not a valid URI") from None
    if parts.scheme not in ("https", "http") or not host:
        raise WorkspaceError(f"{uri!r} is not an absolute http(s) URI")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise WorkspaceError(f"{uri!r}: http is allowed only on localhost; use https")
    if "#" in uri or "@" in parts.netloc:
        raise WorkspaceError(f"{uri!r}: a redirect URI has no fragment and no user name")
    return uri


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters, blank ones left out (RFC 6749 §3.1); a repeated one names itself in
    the error raised (:class:`ValueError`) only when it is one of ours."""
    found: dict[str, str] = {}
    repeated: list[str] = []
    for key, value in pairs:
        if key in found or (key in repeated):
            repeated.append(key)
        elif value:
            found[key] = value
    if repeated:
        names = sorted({k for k in repeated if k in _PARAMETERS}) or ["a parameter"]
        raise ValueError(f"{', '.join(names)} repeated")
    return found


class AuthorizationCodes:
    """Redirect URIs (Python API and CLI), authorize requests and the codes an approval issues.
    ``endpoint``: the authorize page's path once an adapter serves it (``None`` before; the
    RFC 8414 metadata and ``/ServiceProviderConfig`` list the grant only when it is served)."""

    def __init__(self, clients: OAuthClients, config: ServiceConfig) -> None:
        self.clients = clients
        self.config = config
        self.endpoint: str | None = None

    @property
    def storage(self) -> AuthorizationStorage:
        """The storage, if it keeps authorization codes (:class:`AuthorizationStorage`)."""
        storage = self.clients.workspaces.storage
        if not isinstance(storage, AuthorizationStorage):
            raise WorkspaceError("this storage does not keep authorization codes")
        return storage

    @property
    def available(self) -> bool:
        """Whether the grant is offered: the storage keeps codes and an adapter serves the page."""
        storage = self.clients.workspaces.storage
        return self.endpoint is not None and isinstance(storage, AuthorizationStorage)

    # --- redirect URIs -------------------------------------------------------------------------

    def add_redirect_uri(
        self, slug: str, client_id: str, uri: str, *, actor: str = "admin"
    ) -> RedirectUri:
        """Register ``uri`` (:func:`check_redirect_uri`) for an active client of the workspace;
        registering it again returns the one registered."""
        client = self.clients.get(slug, client_id)
        check_redirect_uri(uri)
        uris = self.storage.list_redirect_uris(client.id)
        for known in uris:
            if known.uri == uri:
                return known
        if len(uris) >= MAX_REDIRECT_URIS:
            raise WorkspaceError(f"a client has at most {MAX_REDIRECT_URIS} redirect URIs")
        runtime = self.clients.runtime
        record = RedirectUri(runtime.new_id(), client.id, uri, runtime.now())
        if client.state != CLIENT_ACTIVE or not self.storage.add_redirect_uri(record):
            raise WorkspaceError(f"OAuth client {client_id} is dead: create a new client")
        detail = f"OAuth client {client.id}: redirect URI {uri} added"
        self.clients.workspaces._log(client.workspace_id, actor, "client.redirect.add", detail)
        return record

    def list_redirect_uris(self, slug: str, client_id: str) -> Sequence[RedirectUri]:
        """The client's redirect URIs, oldest first."""
        return self.storage.list_redirect_uris(self.clients.get(slug, client_id).id)

    def delete_redirect_uri(
        self, slug: str, client_id: str, uri_or_id: str, *, actor: str = "admin"
    ) -> None:
        """Remove a redirect URI (given as itself or by id): new authorize requests naming it
        are refused; codes and tokens already issued keep working."""
        client = self.clients.get(slug, client_id)
        storage = self.storage
        found = [u for u in storage.list_redirect_uris(client.id) if uri_or_id in (u.id, u.uri)]
        if not found or not storage.delete_redirect_uri(client.id, found[0].id):
            raise WorkspaceError(f"OAuth client {client_id} has no redirect URI {uri_or_id!r}")
        detail = f"OAuth client {client.id}: redirect URI {found[0].uri} deleted"
        self.clients.workspaces._log(client.workspace_id, actor, "client.redirect.delete", detail)

    # --- the authorize request (RFC 6749 §4.1.1) -----------------------------------------------

    def request(self, query: str) -> AuthorizationRequest:
        """Validate an authorize request's query string (see the module documentation)."""
        try:
            params = _single(parse_qsl(query, keep_blank_values=True))
        except ValueError as exc:
            params = {}
            repeated = str(exc)
        else:
            repeated = ""
        client_id = params.get("client_id", "")
        storage = self.clients.workspaces.storage
        grant = None
        if isinstance(storage, OAuthStorage) and _ID_RE.match(client_id):
            grant = storage.client_grant(client_id)
        if repeated or grant is None or not isinstance(storage, AuthorizationStorage):
            why = f"the request is malformed ({repeated})" if repeated else "unknown client"
            raise AuthorizePageError(f"This authorization request cannot be used: {why}.")
        if grant.client.state != CLIENT_ACTIVE or not grant.admin_active:
            raise AuthorizePageError("This OAuth client is no longer active: create a new one.")
        registered = [u.uri for u in storage.list_redirect_uris(client_id)]
        sent = params.get("redirect_uri")
        if sent is None and len(registered) != 1:
            raise AuthorizePageError(
                "The request names no redirect_uri, and the client does not have exactly one."
            )
        redirect_uri = registered[0] if sent is None else sent
        if redirect_uri not in registered:
            raise AuthorizePageError(
                "The redirect_uri is not one registered for this client (it must match "
                "exactly): register it with 'scimcore client redirect-uri add'."
            )
        state = params.get("state")
        if state is not None and len(state) > _MAX_STATE:
            # not echoed: too long to put back in a URL
            raise AuthorizeRedirectError("invalid_request", "state is too long", redirect_uri, None)

        def refuse(error: str, description: str) -> AuthorizeRedirectError:
            return AuthorizeRedirectError(error, description, redirect_uri, state)

        response_type = params.get("response_type")
        if response_type is None:
            raise refuse("invalid_request", "the parameter response_type is missing")
        if response_type != "code":
            raise refuse("unsupported_response_type", "this server issues codes only")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if method is not None and challenge is None:
            raise refuse("invalid_request", "code_challenge_method without code_challenge")
        if challenge is not None and method != "S256":
            raise refuse("invalid_request", "code_challenge_method must be S256")
        if challenge is not None and not _CHALLENGE_RE.match(challenge):
            raise refuse("invalid_request", "code_challenge is not a base64url SHA-256")
        return AuthorizationRequest(
            grant.client, grant.workspace, redirect_uri, sent is not None, state, challenge
        )

    def approve(self, request: AuthorizationRequest, admin_email: str, issuer: str) -> str:
        """An active admin of the client's workspace approves: a new code, and the URL to send
        the browser to (the redirect URI with ``code``, ``state`` and ``iss``).
        :class:`AuthorizePageError` (403) when ``admin_email`` is not one of its active admins;
        (400) when the client died meanwhile."""
        workspaces = self.clients.workspaces
        admin = workspaces.storage.get_admin(request.workspace.id, admin_email.lower())
        if admin is None or not admin.active:
            raise AuthorizePageError(
                "Only an admin of the workspace this client belongs to can approve it.", 403
            )
        runtime = self.clients.runtime
        now = runtime.now()
        client = request.client
        grant = AuthorizationGrant(
            runtime.new_id(), client.id, client.workspace_id, admin.email, request.redirect_uri,
            now,
        )  # fmt: skip
        plaintext = runtime.new_secret()
        code = AuthorizationCode(
            code_hash=hash_secret(plaintext),
            grant_id=grant.id,
            client_id=client.id,
            redirect_uri=request.redirect_uri,
            redirect_uri_sent=request.redirect_uri_sent,
            code_challenge=request.code_challenge,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
        if not self.storage.add_code(grant, code):
            raise AuthorizePageError("This OAuth client is no longer active: create a new one.")
        detail = f"OAuth client {client.id} approved for {request.redirect_uri}"
        workspaces._log(client.workspace_id, admin.email, "client.approve", detail)
        return with_query(request.redirect_uri, {"code": plaintext}, request.state, issuer)

    def deny(self, request: AuthorizationRequest, admin_email: str, issuer: str) -> str:
        """The admin denies: the URL sending ``access_denied`` back to the client."""
        detail = f"OAuth client {request.client.id} denied"
        self.clients.workspaces._log(
            request.client.workspace_id, admin_email.lower(), "client.deny", detail
        )
        error = AuthorizeRedirectError(
            "access_denied", "the admin denied the request", request.redirect_uri, request.state
        )
        return error.location(issuer)

    def new_refresh_token(
        self, grant: AuthorizationGrant, access: AccessToken
    ) -> tuple[RefreshToken, str]:
        """A refresh token of ``grant`` issued with ``access``, and its plaintext (shown once)."""
        plaintext = REFRESH_TOKEN_PREFIX + self.clients.runtime.new_secret()
        record = RefreshToken(
            token_hash=hash_secret(plaintext),
            grant_id=grant.id,
            client_id=grant.client_id,
            access_token_id=access.id,
            created_at=access.created_at,
            expires_at=access.created_at + REFRESH_TOKEN_LIFETIME,
        )
        return record, plaintext
