"""The authorization-code grant (issue 20 item 4, Okta) over each backend: redirect URIs, the
authorize request, codes, refresh token rotation and what revokes them, through the Python
API and the sans-IO token endpoint.

:class:`AuthorizationContract` is a base of the OAuth contract (``OAuthContract``), so every
backend (memory, SQLite, PostgreSQL) runs it with its ``storage`` fixture.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from scimcore import ScimRequest, ScimResponse, ScimService, Storage, WorkspaceError
from scimcore.authorization import AuthorizePageError, AuthorizeRedirectError
from scimcore.authorization_tokens import pkce_challenge
from scimcore.oauth_clients import IssuedSecret
from scimcore.testing._console_contract import ADMIN, call, console_service

ROOT = "https://scim.example"
OKTA = "https://system-admin.okta.com/admin/app/cpc/acme_scim/oauth/callback"
VERIFIER = "v" * 43 + "-._~0123456789"


def okta_client(service: ScimService, admin: str = ADMIN, slug: str = "acme") -> IssuedSecret:
    """A client with Okta's redirect URI registered; the authorize endpoint offered."""
    service.authorization.endpoint = "/oauth/authorize"
    issued = service.oauth_clients.create(slug, admin, "Okta")
    service.authorization.add_redirect_uri(slug, issued.client.id, OKTA)
    return issued


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1 HTTP Basic (ids and these secrets need no form-encoding)."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(service: ScimService, form: dict[str, str], authorization: str) -> ScimResponse:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": authorization}
    request = ScimRequest("POST", "/oauth/token", {}, headers, urlencode(form).encode(), ROOT)
    return service.oauth.handle(request)


def query(issued: IssuedSecret, **extra: str) -> str:
    params = {"response_type": "code", "client_id": issued.client.id, "redirect_uri": OKTA}
    return urlencode({**params, "state": "xyz", **extra})


def approved(
    service: ScimService, issued: IssuedSecret, admin: str = ADMIN, **extra: str
) -> dict[str, str]:
    """The query parameters of the redirect after ``admin`` approves."""
    request = service.authorization.request(query(issued, **extra))
    location = service.authorization.approve(request, admin, ROOT)
    assert location.startswith(OKTA + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(service: ScimService, issued: IssuedSecret, code: str, **extra: str) -> ScimResponse:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": OKTA, **extra}
    return token_request(service, form, basic(issued.client.id, issued.plaintext))


def refresh(service: ScimService, issued: IssuedSecret, token: str) -> ScimResponse:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return token_request(service, form, basic(issued.client.id, issued.plaintext))


def tokens(response: ScimResponse) -> dict[str, Any]:
    assert response.status == 200, response.json()
    body: dict[str, Any] = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert response.headers["Cache-Control"] == "no-store"
    return body


def refused(response: ScimResponse, error: str = "invalid_grant") -> None:
    body = response.json()
    assert (response.status, body["error"]) == (400, error), body
    assert response.headers["Cache-Control"] == "no-store"


class AuthorizationContract:
    """Tests every backend inherits (see the module documentation)."""

    def test_code_with_pkce_then_rotating_refresh_tokens(self, storage: Storage) -> None:
        # R2.6; RFC 6749 §4.1, §6; RFC 7636
        service, _ = console_service(storage)
        issued = okta_client(service)
        params = approved(service, issued, code_challenge=pkce_challenge(VERIFIER),
                          code_challenge_method="S256")  # fmt: skip
        assert (params["state"], params["iss"]) == ("xyz", ROOT)
        first = tokens(exchange(service, issued, params["code"], code_verifier=VERIFIER))
        assert (first["token_type"], first["expires_in"], first["scope"]) == (
            "Bearer",
            3600,
            "scim",
        )
        assert call(service, first["access_token"]).status == 200
        second = tokens(refresh(service, issued, first["refresh_token"]))
        assert second["refresh_token"] != first["refresh_token"]
        assert call(service, second["access_token"]).status == 200
        third = tokens(refresh(service, issued, second["refresh_token"]))
        refused(refresh(service, issued, first["refresh_token"]))  # spent: the family is revoked
        for body in (first, second, third):
            assert call(service, body["access_token"]).status == 401
        refused(refresh(service, issued, third["refresh_token"]))
        log = [e.detail for e in service.product.log("acme", 100)]
        assert any("presented twice" in d for d in log)
        assert not any(first["refresh_token"] in d or params["code"] in d for d in log)

    def test_a_code_works_once_and_its_reuse_revokes_its_tokens(self, storage: Storage) -> None:
        # RFC 6749 §4.1.2
        service, clock = console_service(storage)
        issued = okta_client(service)
        code = approved(service, issued)["code"]
        body = tokens(exchange(service, issued, code))
        refused(exchange(service, issued, code))
        assert call(service, body["access_token"]).status == 401
        refused(refresh(service, issued, body["refresh_token"]))
        late = approved(service, issued)["code"]
        clock.advance(minutes=5)
        refused(exchange(service, issued, late))  # expired

    def test_the_code_is_bound_to_its_request(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        issued = okta_client(service)
        other = okta_client(service)
        challenge = {"code_challenge": pkce_challenge(VERIFIER), "code_challenge_method": "S256"}
        cases: list[tuple[dict[str, str], dict[str, str]]] = [
            ({}, {"redirect_uri": OKTA + "/"}),
            ({}, {"code_verifier": VERIFIER}),  # PKCE downgrade
            (challenge, {}),
            (challenge, {"code_verifier": "w" * 43}),
            (challenge, {"code_verifier": "short"}),
        ]
        for asked, sent in cases:
            code = approved(service, issued, **asked)["code"]
            refused(exchange(service, issued, code, **sent))
        code = approved(service, issued)["code"]
        refused(exchange(service, other, code))  # another client's code: left as it is
        tokens(exchange(service, issued, code))
        no_uri = approved(service, issued)["code"]
        form = {"grant_type": "authorization_code", "code": no_uri}
        refused(token_request(service, form, basic(issued.client.id, issued.plaintext)))

    def test_refresh_token_of_another_client_is_refused(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        issued, other = okta_client(service), okta_client(service)
        body = tokens(exchange(service, issued, approved(service, issued)["code"]))
        refused(refresh(service, other, body["refresh_token"]))
        tokens(refresh(service, issued, body["refresh_token"]))  # not spent by the other
        wide = {"grant_type": "refresh_token", "refresh_token": "x", "scope": "scim admin"}
        refused(token_request(service, wide, basic(issued.client.id, issued.plaintext)),
                "invalid_scope")  # fmt: skip

    def test_grants_die_with_their_client_and_admins(self, storage: Storage) -> None:
        # R2.3, R2.5, R2.6
        service, _ = console_service(storage)
        api = service.workspaces
        for email in ("maker@acme.example", "approver@acme.example"):
            api.add_admin("acme", email)
        issued = okta_client(service, "maker@acme.example")
        kept = tokens(exchange(service, issued, approved(service, issued)["code"]))
        theirs = tokens(
            exchange(service, issued, approved(service, issued, "approver@acme.example")["code"])
        )
        pending = approved(service, issued, "approver@acme.example")["code"]
        api.deactivate_admin("acme", "approver@acme.example")
        assert call(service, theirs["access_token"]).status == 401
        refused(refresh(service, issued, theirs["refresh_token"]))
        refused(exchange(service, issued, pending))
        api.add_admin("acme", "approver@acme.example")  # revives nothing (R2.5)
        refused(refresh(service, issued, theirs["refresh_token"]))
        kept = tokens(refresh(service, issued, kept["refresh_token"]))
        api.deactivate_admin("acme", "maker@acme.example")
        assert call(service, kept["access_token"]).status == 401
        assert refresh(service, issued, kept["refresh_token"]).status in (400, 401)

        fresh = okta_client(service)
        body = tokens(exchange(service, fresh, approved(service, fresh)["code"]))
        service.oauth_clients.delete("acme", fresh.client.id)
        assert call(service, body["access_token"]).status == 401
        assert refresh(service, fresh, body["refresh_token"]).status == 401  # invalid_client

    def test_authorize_request_errors(self, storage: Storage) -> None:
        # RFC 6749 §4.1.2.1: a bad client or redirect URI is never redirected to
        service, _ = console_service(storage)
        issued = okta_client(service)
        codes = service.authorization
        pages = [
            query(issued, client_id="0" * 32),
            query(issued, client_id="nope"),
            query(issued, redirect_uri=OKTA + "/x"),
            query(issued, redirect_uri=OKTA[:-1]),
            query(issued, redirect_uri=OKTA.upper()),
            query(issued) + "&redirect_uri=" + OKTA,  # repeated
        ]
        for bad in pages:
            with pytest.raises(AuthorizePageError):
                codes.request(bad)
        redirects = [
            (query(issued, response_type=""), "invalid_request"),
            (query(issued, response_type="token"), "unsupported_response_type"),
            (query(issued, code_challenge=pkce_challenge(VERIFIER)), "invalid_request"),
            (query(issued, code_challenge=VERIFIER, code_challenge_method="plain"),
             "invalid_request"),
            (query(issued, code_challenge="x", code_challenge_method="S256"), "invalid_request"),
        ]  # fmt: skip
        for bad, error in redirects:
            with pytest.raises(AuthorizeRedirectError) as caught:
                codes.request(bad)
            sent = parse_qs(urlsplit(caught.value.location(ROOT)).query)
            assert (sent["error"], sent["state"], sent["iss"]) == ([error], ["xyz"], [ROOT])
        request = codes.request(query(issued))
        denied = parse_qs(urlsplit(codes.deny(request, ADMIN, ROOT)).query)
        assert denied["error"] == ["access_denied"] and "code" not in denied
        one = codes.request(query(issued, redirect_uri=""))  # omitted: the only one registered
        assert (one.redirect_uri, one.redirect_uri_sent) == (OKTA, False)

    def test_only_the_clients_workspace_admins_approve(self, storage: Storage) -> None:
        # R1.1
        service, _ = console_service(storage)
        service.workspaces.create("beta", "root@beta.example")
        issued = okta_client(service)
        request = service.authorization.request(query(issued))
        for stranger in ("root@beta.example", "nobody@acme.example"):
            with pytest.raises(AuthorizePageError) as caught:
                service.authorization.approve(request, stranger, ROOT)
            assert caught.value.status == 403
        assert not any(e.operation == "client.approve" for e in service.product.log("acme", 50))

    def test_redirect_uris_registered_exactly(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        codes = service.authorization
        issued = okta_client(service)
        cid = issued.client.id
        assert codes.add_redirect_uri("acme", cid, OKTA).uri == OKTA  # again: the same one
        local = codes.add_redirect_uri("acme", cid, "http://127.0.0.1:8765/cb?x=1")
        assert [u.uri for u in codes.list_redirect_uris("acme", cid)] == [OKTA, local.uri]
        for bad in ("http://example.com/cb", "https://a.example/cb#f", "ftp://a.example/",
                    "https://u@a.example/", "/cb", "https://a.example/a b",
                    "https://a.example:99999/", "http://localhost.evil.example/"):  # fmt: skip
            with pytest.raises(WorkspaceError):
                codes.add_redirect_uri("acme", cid, bad)
        service.workspaces.create("beta", "root@beta.example")
        with pytest.raises(WorkspaceError):
            codes.add_redirect_uri("beta", cid, OKTA)  # another workspace's client
        codes.delete_redirect_uri("acme", cid, local.id)
        codes.delete_redirect_uri("acme", cid, OKTA)
        assert codes.list_redirect_uris("acme", cid) == []
        with pytest.raises(WorkspaceError):
            codes.delete_redirect_uri("acme", cid, OKTA)
        with pytest.raises(AuthorizePageError):
            codes.request(query(issued))
        log = [e.operation for e in service.product.log("acme", 50)]
        assert log.count("client.redirect.add") == 2 and log.count("client.redirect.delete") == 2

    def test_codes_and_refresh_tokens_stored_hashed(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        issued = okta_client(service)
        code = approved(service, issued)["code"]
        body = tokens(exchange(service, issued, code))
        code_hash = hashlib.sha256(code.encode()).hexdigest()
        used = storage.consume_code(code_hash, issued.client.id, service.runtime.now())  # type: ignore[attr-defined]
        assert used is not None and used.reused and used.code.used_at is not None
        assert call(service, body["access_token"]).status == 401  # the replay revoked them
        assert body["refresh_token"].startswith("scimrt_")

    def test_a_refresh_token_raced_twice_leaves_nothing_usable(self, storage: Storage) -> None:
        # RFC 9700 §4.14.2: whichever order the two uses take, the family ends revoked
        service, _ = console_service(storage)
        issued = okta_client(service)
        body = tokens(exchange(service, issued, approved(service, issued)["code"]))
        start = threading.Barrier(2)
        replies: list[ScimResponse] = []

        def use() -> None:
            start.wait(5)
            replies.append(refresh(service, issued, body["refresh_token"]))

        racers = [threading.Thread(target=use) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(10)
        assert sorted(r.status for r in replies) in ([200, 400], [400, 400])
        for reply in replies:
            if reply.status == 200:
                assert call(service, reply.json()["access_token"]).status == 401
                refused(refresh(service, issued, reply.json()["refresh_token"]))
            else:
                refused(reply)
        assert call(service, body["access_token"]).status == 401
