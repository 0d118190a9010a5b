"""OAuth 2.0 clients and the client credentials grant (issue 20, R2.6) over each backend:
the Python API, the sans-IO token endpoint and SCIM requests with its access tokens.

:class:`OAuthContract` is a base of :class:`~scimcore.testing.StorageContract`, so every
backend (memory, SQLite, PostgreSQL) runs it with its ``storage`` fixture.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest

from scimcore import ScimRequest, ScimResponse, ScimService, Storage, WorkspaceError
from scimcore.oauth_clients import CLIENT_DEAD, IssuedSecret
from scimcore.testing._authorization_contract import AuthorizationContract
from scimcore.testing._console_contract import ADMIN, T0, call, console_service, new_user

ROOT = "https://scim.example"
FORM = "application/x-www-form-urlencoded"


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret form-urlencoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def token_request(
    service: ScimService,
    form: dict[str, str] | list[tuple[str, str]] | str,
    authorization: str | None = None,
    *,
    content_type: str = FORM,
    method: str = "POST",
) -> ScimResponse:
    body = form if isinstance(form, str) else urlencode(form)
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = ScimRequest(method, "/oauth/token", {}, headers, body.encode(), base_url=ROOT)
    return service.oauth.handle(request)


def client_credentials(
    service: ScimService, issued: IssuedSecret, *, post: bool = False, secret: str | None = None
) -> ScimResponse:
    secret = issued.plaintext if secret is None else secret
    if post:
        form = {"grant_type": "client_credentials", "client_id": issued.client.id}
        return token_request(service, {**form, "client_secret": secret})
    return token_request(
        service, {"grant_type": "client_credentials"}, basic(issued.client.id, secret)
    )


def access_token(service: ScimService, issued: IssuedSecret, **kwargs: Any) -> str:
    response = client_credentials(service, issued, **kwargs)
    assert response.status == 200, response.json()
    token = response.json()["access_token"]
    assert isinstance(token, str) and token.startswith("scimat_")
    return token


def error_of(response: ScimResponse) -> str:
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert response.headers["Cache-Control"] == "no-store"
    return str(body["error"])


class OAuthContract(AuthorizationContract):
    """Tests every backend inherits (see the module documentation)."""

    def test_client_credentials_both_methods_then_scim_call(self, storage: Storage) -> None:
        # R2.6
        service, _ = console_service(storage)
        issued = service.oauth_clients.create("acme", ADMIN, "entra gallery")
        assert issued.secret.expires_at == T0 + timedelta(days=365)
        for post in (False, True):
            response = client_credentials(service, issued, post=post)
            assert response.status == 200
            body = response.json()
            assert set(body) == {"access_token", "token_type", "expires_in"}
            assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["Pragma"] == "no-cache"
            created = call(service, body["access_token"], "POST", new_user(f"u{post}@acme.test"))
            assert created.status == 201
        listed = call(service, body["access_token"]).json()
        assert listed["totalResults"] == 2
        ((client, secrets),) = service.oauth_clients.list("acme")
        assert (client.id, client.label, client.created_by) == (
            issued.client.id,
            "entra gallery",
            ADMIN,
        )
        (secret,) = secrets
        assert secret.secret_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
        assert secret.last_used_at == T0

    def test_token_endpoint_errors_follow_rfc_6749(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        issued = service.oauth_clients.create("acme", ADMIN)
        good = basic(issued.client.id, issued.plaintext)
        grant = {"grant_type": "client_credentials"}
        wrong = client_credentials(service, issued, secret="x" * 43)
        assert (wrong.status, error_of(wrong)) == (401, "invalid_client")
        assert wrong.headers["WWW-Authenticate"].startswith("Basic")
        wrong_post = client_credentials(service, issued, post=True, secret="x" * 43)
        assert (wrong_post.status, error_of(wrong_post)) == (401, "invalid_client")
        unknown = token_request(service, grant, basic("0" * 32, issued.plaintext))
        assert (unknown.status, error_of(unknown)) == (401, "invalid_client")
        anonymous = token_request(service, grant)
        assert (anonymous.status, error_of(anonymous)) == (401, "invalid_client")
        cases: list[tuple[Any, str | None, str, str]] = [
            ({}, good, FORM, "invalid_request"),
            ({"grant_type": "password"}, good, FORM, "unsupported_grant_type"),
            ({"grant_type": "authorization_code", "code": "c"}, good, FORM, "unauthorized_client"),
            ([*grant.items(), *grant.items()], good, FORM, "invalid_request"),
            ([*grant.items(), ('x"\\é', "1"), ('x"\\é', "2")], good, FORM, "invalid_request"),
            (grant, good, "application/json", "invalid_request"),
            ({**grant, "client_secret": issued.plaintext}, good, FORM, "invalid_request"),
            (
                {**grant, "client_id": issued.client.id},
                None,
                FORM,
                "invalid_client",  # an id and no secret: no authentication
            ),
            ({**grant, "client_secret": issued.plaintext}, None, FORM, "invalid_request"),
        ]
        for form, authorization, content_type, expected in cases:
            response = token_request(service, form, authorization, content_type=content_type)
            assert error_of(response) == expected, (form, content_type)
            assert response.status == (401 if expected == "invalid_client" else 400)
            assert issued.plaintext not in response.body.decode()
            description = response.json()["error_description"]
            assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description)
        get = token_request(service, grant, good, method="GET")
        assert (get.status, get.headers["Allow"], error_of(get)) == (405, "POST", "invalid_request")
        assert client_credentials(service, issued).status == 200  # nothing was broken

    def test_secrets_expire_and_rotate_with_overlap(self, storage: Storage) -> None:
        # R2.6: secrets expire and can overlap for rotation
        service, clock = console_service(storage)
        clients = service.oauth_clients
        first = clients.create("acme", ADMIN, secret_days=1)
        clock.advance(hours=12)
        second = clients.add_secret("acme", first.client.id, secret_days=30)
        rotated = IssuedSecret(first.client, second.secret, second.plaintext)
        assert client_credentials(service, first).status == 200
        assert client_credentials(service, rotated).status == 200
        clock.advance(hours=12)  # the first secret expires now
        expired = client_credentials(service, first)
        assert (expired.status, error_of(expired)) == (401, "invalid_client")
        assert client_credentials(service, rotated).status == 200
        clients.delete_secret("acme", first.client.id, first.secret.id)
        ((_, secrets),) = clients.list("acme")
        assert [s.id for s in secrets] == [second.secret.id]
        clients.delete_secret("acme", first.client.id, second.secret.id)
        assert client_credentials(service, rotated).status == 401
        with pytest.raises(WorkspaceError):
            clients.delete_secret("acme", first.client.id, second.secret.id)

    def test_secret_lifetime_bounds(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        clients = service.oauth_clients
        for days in (0, -1, 3 * 365 + 1):
            with pytest.raises(WorkspaceError, match="1 to 1095 days"):
                clients.create("acme", ADMIN, secret_days=days)
        assert clients.list("acme") == []
        longest = clients.create("acme", ADMIN, secret_days=3 * 365)
        assert longest.secret.expires_at == T0 + timedelta(days=1095)
        with pytest.raises(WorkspaceError, match="not an active admin"):
            clients.create("acme", "nobody@acme.example")

    def test_expired_access_token_gets_invalid_token(self, storage: Storage) -> None:
        # RFC 6750 §3
        service, clock = console_service(storage)
        token = access_token(service, service.oauth_clients.create("acme", ADMIN))
        clock.advance(seconds=3599)
        assert call(service, token).status == 200
        clock.advance(seconds=1)
        for method, body in (("GET", None), ("POST", new_user("late@acme.test"))):
            refused = call(service, token, method, body)
            assert refused.status == 401
            assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
            assert token not in refused.body.decode()
        forged = call(service, token[:-4] + "AAAA")
        assert forged.status == 401 and "invalid_token" in forged.headers["WWW-Authenticate"]

    def test_deleted_client_and_its_tokens_stop_at_once(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        clients = service.oauth_clients
        issued = clients.create("acme", ADMIN)
        token = access_token(service, issued)
        clients.delete("acme", issued.client.id)
        assert call(service, token).status == 401
        assert client_credentials(service, issued).status == 401
        assert clients.list("acme") == []
        with pytest.raises(WorkspaceError):
            clients.delete("acme", issued.client.id)

    def test_client_dies_with_its_admin_for_good(self, storage: Storage) -> None:
        # R2.3, R2.5, R2.6
        service, _ = console_service(storage)
        clients, api = service.oauth_clients, service.workspaces
        api.add_admin("acme", "it@acme.example")
        issued = clients.create("acme", "it@acme.example", "entra")
        token = access_token(service, issued)
        kept = access_token(service, clients.create("acme", ADMIN, "other admin's"))
        api.deactivate_admin("acme", "it@acme.example")
        assert call(service, token).status == 401
        assert client_credentials(service, issued).status == 401
        api.add_admin("acme", "it@acme.example")
        assert call(service, token).status == 401
        assert client_credentials(service, issued).status == 401
        assert call(service, kept).status == 200
        (dead, secrets), _ = clients.list("acme")
        assert (dead.state, dead.dead_reason) == (CLIENT_DEAD, "admin deactivated")
        assert [s.id for s in secrets] == [issued.secret.id]  # kept, unusable: for the log
        with pytest.raises(WorkspaceError, match="dead"):
            clients.add_secret("acme", issued.client.id)
        clients.delete("acme", issued.client.id)
        assert [c.label for c, _ in clients.list("acme")] == ["other admin's"]

    def test_dead_clients_refused_requests_are_logged_once_a_minute(self, storage: Storage) -> None:
        # R9.2: a 401 because a client's admin left is visible in the log
        service, clock = console_service(storage)
        clients, api = service.oauth_clients, service.workspaces
        api.add_admin("acme", "it@acme.example")
        issued = clients.create("acme", "it@acme.example", "entra")
        api.deactivate_admin("acme", "it@acme.example")

        def refusals() -> list[str]:
            log = service.product.log("acme", 100)
            return [e.detail for e in log if e.operation == "auth.refused" and e.status == 401]

        assert client_credentials(service, issued).status == 401
        assert client_credentials(service, issued, post=True).status == 401
        clock.advance(seconds=59)
        assert client_credentials(service, issued).status == 401
        (logged,) = refusals()
        assert issued.client.id in logged and "it@acme.example" in logged and "dead" in logged
        assert client_credentials(service, issued, secret="y" * 43).status == 401
        clock.advance(seconds=1)
        assert client_credentials(service, issued, secret="y" * 43).status == 401
        assert len(refusals()) == 1  # a wrong secret is nobody's refusal to log
        assert client_credentials(service, issued).status == 401
        assert len(refusals()) == 2
        assert issued.plaintext not in repr(service.product.log("acme", 100))

    def test_access_tokens_are_bound_to_their_workspace(self, storage: Storage) -> None:
        # R1.2: one workspace never sees another's data
        service, _ = console_service(storage)
        service.workspaces.create("beta", "root@beta.example")
        clients = service.oauth_clients
        acme = clients.create("acme", ADMIN)
        beta = clients.create("beta", "root@beta.example")
        created = call(service, access_token(service, acme), "POST", new_user("a@acme.test"))
        assert created.status == 201
        beta_token = access_token(service, beta)
        assert call(service, beta_token).json()["totalResults"] == 0
        uid = created.json()["id"]
        assert call(service, beta_token, path=f"/Users/{uid}").status == 404
        with pytest.raises(WorkspaceError):
            clients.delete("beta", acme.client.id)
        with pytest.raises(WorkspaceError):
            clients.add_secret("beta", acme.client.id)
        assert [c.id for c, _ in clients.list("beta")] == [beta.client.id]

    def test_secret_use_recorded_at_most_once_a_minute(self, storage: Storage) -> None:
        service, clock = console_service(storage)
        clients = service.oauth_clients
        issued = clients.create("acme", ADMIN)

        def last_used() -> object:
            ((_, (secret,)),) = clients.list("acme")
            return secret.last_used_at

        assert last_used() is None
        access_token(service, issued)
        clock.advance(seconds=59)
        access_token(service, issued)
        assert last_used() == T0
        clock.advance(seconds=1)
        access_token(service, issued)
        assert last_used() == T0 + timedelta(seconds=60)

    def test_admin_actions_logged_without_secrets(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        clients = service.oauth_clients
        issued = clients.create("acme", ADMIN, "entra")
        more = clients.add_secret("acme", issued.client.id, actor=ADMIN)
        token = access_token(service, issued)
        clients.delete_secret("acme", issued.client.id, issued.secret.id, actor=ADMIN)
        clients.delete("acme", issued.client.id, actor=ADMIN)
        log = service.product.log("acme", 100)
        operations = [e.operation for e in log if e.operation.startswith("client.")]
        assert sorted(operations) == [
            "client.create",
            "client.delete",
            "client.secret.add",
            "client.secret.delete",
        ]
        text = repr(log)
        for secret in (issued.plaintext, more.plaintext, token, token.split("_")[2]):
            assert secret not in text

    def test_service_provider_config_lists_both_bearer_schemes(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        response = service.handle(ScimRequest("GET", "/ServiceProviderConfig"))
        schemes = response.json()["authenticationSchemes"]
        assert [s["type"] for s in schemes] == ["oauthbearertoken", "oauthbearertoken"]
        assert "client credentials" in schemes[1]["name"]
        assert [s["primary"] for s in schemes] == [True, False]

    def test_scim_tokens_keep_their_answers(self, storage: Storage) -> None:
        # R2.4 unchanged beside the access tokens
        service, _ = console_service(storage)
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        assert call(service, token).status == 200
        for bad in ("scim_" + "0" * 32 + "_" + "x" * 40, "garbage"):
            refused = call(service, bad)
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="SCIM"'
