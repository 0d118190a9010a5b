"""Workload identity federation (issue 20 item 3; RFC 7521, RFC 7523 §2.2) over each backend:
federated identities of OAuth clients, used assertion ids, and client assertions at the sans-IO
token endpoint with keys held in memory (the HTTP key source: ``tests/test_federation_http.py``).

:class:`FederationContract` is a base of :class:`scimcore.testing.StorageContract`, so
every backend (memory, SQLite, PostgreSQL) runs it with its ``storage`` fixture.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from scimcore import ScimRequest, ScimResponse, ScimService, Storage, WorkspaceError
from scimcore.testing._console_contract import ADMIN, T0, call, console_service, new_user
from scimcore.testing._oauth_contract import ROOT, error_of, token_request

ISSUER = "https://login.example/tenant-1/v2.0"
SUBJECT = "sync-fabric-object-id"
AUDIENCE = "api://workload-identity-app"


class Issuer:
    """A JWT issuer of the tests: a key it generates (RSA, or EC for ``ES256``), its JWKS,
    and client assertions it signs (PyJWT, the federation extra)."""

    def __init__(self, url: str = ISSUER, kid: str = "key-1", alg: str = "RS256") -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.url, self.kid, self.alg = url, kid, alg
        self.key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if alg.startswith("ES")
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        self.serial = itertools.count(1)

    def jwk(self) -> dict[str, Any]:
        import jwt

        public = jwt.get_algorithm_by_name(self.alg).to_jwk(self.key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def claims(self, now: datetime, lifetime: int = 3900, **override: Any) -> dict[str, Any]:
        at = int(now.timestamp())
        claims = {
            "iss": self.url,
            "sub": SUBJECT,
            "aud": AUDIENCE,
            "iat": at,
            "nbf": at,
            "exp": at + lifetime,
            "jti": f"assertion-{next(self.serial)}",
            "tid": "tenant-1",
        }
        claims.update(override)
        return {k: v for k, v in claims.items() if v is not None}

    def assertion(self, now: datetime, lifetime: int = 3900, **override: Any) -> str:
        import jwt

        headers = {"kid": self.kid}
        return jwt.encode(self.claims(now, lifetime, **override), self.key, self.alg, headers)


class StaticKeys:
    """A :class:`scimcore.federation.KeySource` over issuers held in memory, for the sans-IO
    tests (the HTTP one is tested over HTTP in ``tests/test_federation_http.py``)."""

    def __init__(self, *issuers: Issuer) -> None:
        self.issuers = issuers

    def jwks(self, issuer: str, jwks_url: str | None, kid: str | None) -> dict[str, Any]:
        return {"keys": [i.jwk() for i in self.issuers if i.url == issuer]}


def assertion_request(
    service: ScimService, assertion: str, client_id: str | None = None
) -> ScimResponse:
    from scimcore.federation import ASSERTION_TYPE

    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "scim",
    }
    if client_id is not None:
        form["client_id"] = client_id
    return token_request(service, form)


def federated_service(storage: Storage) -> tuple[ScimService, Any, Issuer, str]:
    """A service whose workspace ``acme`` has a client without a secret that trusts the
    identity of an :class:`Issuer` (ISSUER, SUBJECT, AUDIENCE)."""
    pytest.importorskip("jwt", reason="federation tests need the federation extra (PyJWT)")
    service, clock = console_service(storage)
    issuer = Issuer()
    service.oauth.assertions.key_source = StaticKeys(issuer)
    client = service.oauth_clients.create_without_secret("acme", ADMIN, "entra wif")
    service.oauth_clients.federate("acme", client.id, ISSUER, SUBJECT, AUDIENCE)
    return service, clock, issuer, client.id


class FederationContract:
    """Federated identities on every backend (a base of
    :class:`scimcore.testing.StorageContract`, as :class:`OAuthContract` is)."""

    def test_federated_identities_are_kept_per_client(self, storage: Storage) -> None:
        from scimcore.federation import FederationStorage

        assert isinstance(storage, FederationStorage)
        service, clock = console_service(storage)
        clients = service.oauth_clients
        service.workspaces.create("beta", "root@beta.example")
        bare = clients.create_without_secret("acme", ADMIN, "wif")
        ((listed, secrets),) = clients.list("acme")
        assert (listed, list(secrets)) == (bare, [])
        first = clients.federate("acme", bare.id, ISSUER, SUBJECT, AUDIENCE)
        assert (first.client_id, first.issuer, first.subject, first.audience) == (
            bare.id,
            ISSUER,
            SUBJECT,
            AUDIENCE,
        )
        assert (first.jwks_url, first.created_at, first.last_used_at) == (None, T0, None)
        clock.advance(seconds=1)
        keys = "https://login.example/tenant-1/discovery/v2.0/keys"
        second = clients.federate("acme", bare.id, ISSUER, "other-subject", AUDIENCE, keys)
        assert clients.federations("acme", bare.id) == [first, second]
        assert storage.federations_of(ISSUER, SUBJECT) == [first]
        assert storage.federations_of(ISSUER, "nobody") == []
        storage.touch_federation(first.id, T0 + timedelta(minutes=5))
        (touched,) = storage.federations_of(ISSUER, SUBJECT)
        assert touched.last_used_at == T0 + timedelta(minutes=5)
        for bad in (
            ("http://login.example/t", SUBJECT, AUDIENCE, None),  # http, not loopback
            (ISSUER, "", AUDIENCE, None),
            (ISSUER, SUBJECT, "a" * 601, None),
            ("not a url", SUBJECT, AUDIENCE, None),  # no JWKS URL: discovery needs a URL
            ("not a url", SUBJECT, AUDIENCE, "ftp://keys.example/k"),
        ):
            with pytest.raises(WorkspaceError):
                clients.federate("acme", bare.id, *bad)
        with pytest.raises(WorkspaceError):
            clients.federate("beta", bare.id, ISSUER, SUBJECT, AUDIENCE)  # R1.2
        with pytest.raises(WorkspaceError):
            clients.delete_federation("acme", bare.id, "f" * 32)
        clients.delete_federation("acme", bare.id, second.id)
        assert [f.id for f in clients.federations("acme", bare.id)] == [first.id]
        operations = [e.operation for e in service.product.log("acme", 100)]
        assert {"client.federate", "client.unfederate"} <= set(operations)
        clients.delete("acme", bare.id)
        assert storage.list_federations(bare.id) == []
        assert storage.federations_of(ISSUER, SUBJECT) == []

    def test_dead_client_keeps_its_identities_unusable(self, storage: Storage) -> None:
        service, _, issuer, client_id = federated_service(storage)
        service.workspaces.add_admin("acme", "it@acme.example")
        theirs = service.oauth_clients.create_without_secret("acme", "it@acme.example")
        service.oauth_clients.federate("acme", theirs.id, ISSUER, "theirs", AUDIENCE)
        service.workspaces.deactivate_admin("acme", "it@acme.example")
        with pytest.raises(WorkspaceError, match="dead"):
            service.oauth_clients.federate("acme", theirs.id, ISSUER, SUBJECT, AUDIENCE)
        assert [f.subject for f in service.oauth_clients.federations("acme", theirs.id)] == [
            "theirs"
        ]
        refused = assertion_request(service, issuer.assertion(T0, sub="theirs"), theirs.id)
        assert (refused.status, error_of(refused)) == (401, "invalid_client")
        log = [e.detail for e in service.product.log("acme", 100) if e.operation == "auth.refused"]
        assert len(log) == 1 and "dead" in log[0] and theirs.id in log[0]
        fine = assertion_request(service, issuer.assertion(T0), client_id)
        assert fine.status == 200

    def test_assertion_ids_are_claimed_once_until_they_expire(self, storage: Storage) -> None:
        from scimcore.federation import FederationStorage

        assert isinstance(storage, FederationStorage)
        hour = timedelta(hours=1)
        assert storage.claim_assertion("a" * 64, T0 + hour, T0)
        assert not storage.claim_assertion("a" * 64, T0 + hour, T0 + timedelta(minutes=59))
        assert storage.claim_assertion("b" * 64, T0 + hour, T0)
        # expired at T0 + 1 h: purged, so the same hash is accepted again (never a replay:
        # the assertion it came from has expired too)
        assert storage.claim_assertion("a" * 64, T0 + 2 * hour, T0 + hour)
        assert not storage.claim_assertion("a" * 64, T0 + 2 * hour, T0 + hour)

    def test_client_assertion_then_scim_call(self, storage: Storage) -> None:
        # RFC 7523 §2.2, RFC 7521 §4.2
        service, clock, issuer, client_id = federated_service(storage)
        metadata = service.oauth.handle(
            ScimRequest("GET", "/.well-known/oauth-authorization-server", base_url=ROOT)
        ).json()
        assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
        assert "HS256" not in metadata["token_endpoint_auth_signing_alg_values_supported"]
        assertion = issuer.assertion(T0)
        response = assertion_request(service, assertion, client_id)
        assert response.status == 200, response.json()
        body = response.json()
        assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "scim")
        assert call(service, body["access_token"], "POST", new_user("w@acme.test")).status == 201
        replayed = assertion_request(service, assertion, client_id)
        assert (replayed.status, error_of(replayed)) == (401, "invalid_client")
        assert "used already" in replayed.json()["error_description"]
        anonymous = assertion_request(service, issuer.assertion(T0))  # found by iss and sub
        assert anonymous.status == 200
        (federation,) = service.oauth_clients.federations("acme", client_id)
        assert federation.last_used_at == T0
        clock.advance(seconds=3900 + 59)
        assert assertion_request(service, assertion, client_id).status == 401  # still noted
        clock.advance(seconds=1)  # expired (with the 60 s skew): refused as such
        late = assertion_request(service, assertion, client_id)
        assert "expired" in late.json()["error_description"]
        log = repr(service.product.log("acme", 100))
        assert "refused: client assertion" in log and assertion not in log

    def test_an_identity_trusted_by_two_clients_needs_client_id(self, storage: Storage) -> None:
        service, _, issuer, client_id = federated_service(storage)
        service.workspaces.create("beta", "root@beta.example")
        other = service.oauth_clients.create_without_secret("beta", "root@beta.example")
        service.oauth_clients.federate("beta", other.id, ISSUER, SUBJECT, AUDIENCE)
        ambiguous = assertion_request(service, issuer.assertion(T0))
        assert (ambiguous.status, error_of(ambiguous)) == (400, "invalid_request")
        for chosen in (client_id, other.id):
            response = assertion_request(service, issuer.assertion(T0), chosen)
            assert response.status == 200
            token = response.json()["access_token"]
            assert call(service, token).status == 200
        # an assertion that names another client's identity is refused for this client
        issued = service.oauth_clients.create("acme", ADMIN)
        mismatch = assertion_request(service, issuer.assertion(T0), issued.client.id)
        assert (mismatch.status, error_of(mismatch)) == (401, "invalid_client")
