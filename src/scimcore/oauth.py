"""The OAuth 2.0 token endpoint (RFC 6749 §3.2, §4.4) and its RFC 8414 metadata, sans-IO.

:meth:`OAuthEndpoints.handle` takes a :class:`~scimcore.messages.ScimRequest` whose ``path`` is
relative to the server root (:data:`TOKEN_PATH` or :data:`METADATA_PATH`) and whose
``base_url`` is the server root URL (scheme, host, script root), and answers a
:class:`~scimcore.messages.ScimResponse`: a form in, JSON out. The adapters mount it beside
the SCIM endpoint. The one grant is ``client_credentials``; the client authenticates with
HTTP Basic (``client_secret_basic``, id and secret form-urlencoded first, RFC 6749 §2.3.1) or
in the form (``client_secret_post``), or with a JWT assertion of a federated identity
(RFC 7523 §2.2, :mod:`scimcore.assertions`), never two of them. The answer is an opaque access token
(:mod:`scimcore.oauth_clients`) with ``Cache-Control: no-store``.

Errors are :class:`OAuthError` (a :class:`~scimcore.errors.SCIMError`, with the ``error`` code
of RFC 6749 §5.2); :meth:`OAuthEndpoints.handle` is the one place they become responses
(:func:`oauth_error_response`). No error echoes a secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from . import _json
from .assertions import AssertionRefusedError, ClientAssertions
from .authorization import AuthorizationCodes, add_authorization_metadata
from .config import ServiceConfig
from .errors import SCIMError
from .federation import ALGORITHMS, KeyUnavailableError
from .messages import ScimRequest, ScimResponse
from .oauth_clients import (
    ACCESS_TOKEN_PREFIX,
    CLIENT_ACTIVE,
    TOUCH_INTERVAL,
    AccessToken,
    OAuthClients,
    OAuthStorage,
    hash_secret,
    matching_secret,
)
from .storage import Workspace

__all__ = [
    "METADATA_PATH",
    "OAUTH_PATHS",
    "TOKEN_PATH",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "OAuthEndpoints",
    "OAuthError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "oauth_error_response",
]

#: The token endpoint, from the server root (the authorize endpoint will sit beside it).
TOKEN_PATH = "/oauth/token"
#: The RFC 8414 authorization server metadata.
METADATA_PATH = "/.well-known/oauth-authorization-server"
#: The paths :meth:`OAuthEndpoints.handle` answers: adapters send these to it.
OAUTH_PATHS = frozenset({TOKEN_PATH, METADATA_PATH})

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PARAMETERS = frozenset(
    {"grant_type", "client_id", "client_secret", "scope", "client_assertion",
     "client_assertion_type", "code", "redirect_uri", "refresh_token", "code_verifier"}
)  # fmt: skip
_GRANTS_OF_OTHER_CLIENTS = frozenset({"authorization_code", "refresh_token"})

_log = logging.getLogger("scimcore")


class OAuthError(SCIMError):
    """An error of the token endpoint (RFC 6749 §5.2): ``error`` is its code, ``detail`` its
    ``error_description`` (printable ASCII without ``"`` or ``\\``, never a secret)."""

    error = "invalid_request"

    def to_body(self) -> dict[str, object]:
        return {"error": self.error, "error_description": self.detail}


class InvalidRequestError(OAuthError):
    """400 ``invalid_request``: a parameter missing, repeated or malformed, a wrong content
    type or method, or more than one client authentication method."""


class _WrongMethod(InvalidRequestError):
    """405 ``invalid_request``: the endpoint does not take this HTTP method."""

    status = 405


class _NotServed(InvalidRequestError):
    """404 ``invalid_request``: no such endpoint, or a storage that keeps no OAuth clients."""

    status = 404


class InvalidClientError(OAuthError):
    """401 ``invalid_client``: client authentication failed (unknown, dead, wrong or expired
    secret, none sent, or an unsupported method); answered with ``WWW-Authenticate: Basic``."""

    status = 401
    error = "invalid_client"


class InvalidGrantError(OAuthError):
    """400 ``invalid_grant``: an authorization grant (a code, a refresh token) is invalid,
    expired or revoked. The client credentials grant has none; the later grants use it."""

    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    """400 ``unauthorized_client``: the client may not use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    """400 ``unsupported_grant_type``: the server does not support this grant type."""

    error = "unsupported_grant_type"


def oauth_error_response(error: OAuthError, allow: str | None = None) -> ScimResponse:
    """The JSON error response of RFC 6749 §5.2 (``allow``: the ``Allow`` header of a 405)."""
    headers = {"Content-Type": "application/json", **_NO_STORE}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="scimcore", charset="UTF-8"'
    if allow is not None:
        headers["Allow"] = allow
    return ScimResponse(error.status, headers, _json.dumps(error.to_body()))


def _json_response(body: Mapping[str, Any], headers: Mapping[str, str]) -> ScimResponse:
    return ScimResponse(200, {"Content-Type": "application/json", **headers}, _json.dumps(body))


def _form(request: ScimRequest) -> dict[str, str]:
    """The form parameters: each at most once (RFC 6749 §3.1), blank ones left out."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise InvalidRequestError(f"the token request must be {_FORM}")
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("the form is not valid UTF-8 form-urlencoded data") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:  # named only when it is one of ours: nothing sent is echoed
            name = key if key in _PARAMETERS else "a parameter"
            raise InvalidRequestError(f"{name} is repeated")
        if value:
            form[key] = value
    for key in ("client_secret", "client_assertion"):
        if key in request.query:
            raise InvalidRequestError(f"{key} must not be sent in the URI")
    return form


def _basic(authorization: str) -> tuple[str, str]:
    """Client id and secret of an HTTP Basic header (each form-urlencoded, RFC 6749 §2.3.1)."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("the token endpoint takes HTTP Basic client authentication")
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError("the Basic credentials are not valid base64") from None
    client_id, colon, secret = text.partition(":")
    if not colon:
        raise InvalidClientError("the Basic credentials have no client secret")
    return unquote_plus(client_id), unquote_plus(secret)


def _credentials(request: ScimRequest, form: Mapping[str, str]) -> tuple[str, str] | None:
    """The client id and secret, from exactly one authentication method; ``None`` for a
    client assertion (RFC 7523 §2.2, :mod:`scimcore.federation`)."""
    authorization = request.header("authorization")
    in_form = "client_secret" in form
    if "client_assertion" in form or "client_assertion_type" in form:
        if authorization or in_form:
            raise InvalidRequestError("use one client authentication method, not several")
        return None
    if authorization:
        if in_form:
            raise InvalidRequestError("use one client authentication method, not several")
        client_id, secret = _basic(authorization)
        if "client_id" in form and form["client_id"] != client_id:
            raise InvalidRequestError("client_id differs from the Basic credentials")
        return client_id, secret
    if not in_form:
        raise InvalidClientError("client authentication required (HTTP Basic or the form)")
    if "client_id" not in form:
        raise InvalidRequestError("the parameter client_id is missing")
    return form["client_id"], form["client_secret"]


class OAuthEndpoints:
    """The token endpoint and the metadata document, over a service's OAuth clients."""

    def __init__(
        self,
        clients: OAuthClients,
        config: ServiceConfig,
        authorization: AuthorizationCodes | None = None,
    ) -> None:
        self.clients = clients
        self.config = config
        self.assertions = ClientAssertions(clients)
        """Client assertions of federated identities: the adapters set its ``key_source``."""
        #: The authorization-code grant (:mod:`scimcore.authorization`).
        self.authorization = authorization or AuthorizationCodes(clients, config)

    def handle(self, request: ScimRequest) -> ScimResponse:
        """Answer one request to :data:`TOKEN_PATH` or :data:`METADATA_PATH`. Never raises."""
        try:
            path = request.path.rstrip("/") or "/"
            method = request.method.upper()
            if path == METADATA_PATH:
                if method not in ("GET", "HEAD"):
                    error = _WrongMethod("the metadata document takes GET")
                    return oauth_error_response(error, allow="GET, HEAD")
                return self.metadata(request.base_url)
            if path != TOKEN_PATH:
                return oauth_error_response(_NotServed("no such OAuth endpoint"))
            if not isinstance(self.clients.workspaces.storage, OAuthStorage):
                return oauth_error_response(_NotServed("this server keeps no OAuth clients"))
            if method != "POST":
                error = _WrongMethod("the token endpoint takes POST (RFC 6749 section 3.2)")
                return oauth_error_response(error, allow="POST")
            return self.token(request)
        except OAuthError as exc:
            return oauth_error_response(exc)
        except Exception:
            _log.exception("unexpected error at the token endpoint")
            body = {"error": "server_error", "error_description": "internal server error"}
            headers = {"Content-Type": "application/json", **_NO_STORE}
            return ScimResponse(500, headers, _json.dumps(body))

    def metadata(self, root_url: str) -> ScimResponse:
        """RFC 8414 §2: the issuer (the server root) and its token endpoint."""
        issuer = root_url.rstrip("/")
        body: dict[str, Any] = {
            "issuer": issuer,
            "token_endpoint": issuer + TOKEN_PATH,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": [],
        }
        if self.assertions.enabled:  # RFC 7523 §2.2 assertions of a federated identity
            body["token_endpoint_auth_methods_supported"].append("private_key_jwt")
            body["token_endpoint_auth_signing_alg_values_supported"] = list(ALGORITHMS)
        add_authorization_metadata(body, issuer, self.authorization)
        return _json_response(body, {"Cache-Control": "max-age=3600"})

    def token(self, request: ScimRequest) -> ScimResponse:
        """RFC 6749 §4.4: an access token for an authenticated client (or :class:`OAuthError`)."""
        form = _form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("the parameter grant_type is missing")
        if grant_type != "client_credentials" and grant_type not in _GRANTS_OF_OTHER_CLIENTS:
            raise UnsupportedGrantTypeError("this server issues tokens for client_credentials")
        credentials = _credentials(request, form)
        if credentials is None:  # RFC 7523 §2.2: a federated identity's signed assertion
            client_id, workspace = self._asserted(form)
            if grant_type != "client_credentials":
                raise UnauthorizedClientError(
                    "a client assertion authenticates the client_credentials grant only"
                )
        else:
            client_id, workspace = credentials[0], self._authenticated(*credentials)
        if grant_type in _GRANTS_OF_OTHER_CLIENTS:  # the authorization-code grant's own module
            from .authorization_tokens import code_grant_token

            return code_grant_token(self.authorization, grant_type, client_id, workspace, form)
        return self._issue(client_id, workspace, form.get("scope"))

    def _authenticated(self, client_id: str, secret: str) -> Workspace:
        """The client's workspace if ``secret`` is one of its unexpired secrets and the
        client and its admin are active; :class:`InvalidClientError` otherwise (the same
        answer for every reason: nothing tells an unknown client from a wrong secret)."""
        storage = self.clients.storage
        grant = storage.client_grant(client_id) if len(client_id) == 32 else None
        now = self.clients.runtime.now()
        found = matching_secret(grant, secret, now)
        if grant is None or found is None:
            raise InvalidClientError("client authentication failed")
        if grant.client.state != CLIENT_ACTIVE or not grant.admin_active:
            self.clients.refused(grant)
            raise InvalidClientError("client authentication failed")
        if found.last_used_at is None or now - found.last_used_at >= TOUCH_INTERVAL:
            storage.touch_secret(found.id, now)
        return grant.workspace

    def _asserted(self, form: Mapping[str, str]) -> tuple[str, Workspace]:
        """The client and workspace a client assertion proves (:mod:`scimcore.assertions`),
        its refusals as RFC 7521 §4.2.1 and RFC 6749 §5.2 errors."""
        try:
            return self.assertions.authenticate(form)
        except AssertionRefusedError as exc:
            error = InvalidClientError if exc.status == 401 else InvalidRequestError
            raise error(exc.detail) from None
        except KeyUnavailableError as exc:  # PyJWT missing: the operator's problem
            _log.error("a client assertion was refused: %s", exc.detail)
            raise InvalidClientError("this server cannot verify client assertions now") from None

    def _issue(self, client_id: str, workspace: Workspace, scope: str | None) -> ScimResponse:
        runtime = self.clients.runtime
        lifetime = self.config.access_token_lifetime
        token_id = runtime.new_id()
        secret = runtime.new_secret()
        now = runtime.now()
        record = AccessToken(
            id=token_id,
            client_id=client_id,
            workspace_id=workspace.id,
            token_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + lifetime,
        )
        self.clients.storage.add_access_token(record)
        body: dict[str, Any] = {
            "access_token": f"{ACCESS_TOKEN_PREFIX}{token_id}_{secret}",
            "token_type": "Bearer",
            "expires_in": int(lifetime.total_seconds()),
        }
        if scope is not None:  # one scope, the workspace's SCIM API (RFC 6749 §3.3)
            body["scope"] = "scim"
        return _json_response(body, _NO_STORE)
