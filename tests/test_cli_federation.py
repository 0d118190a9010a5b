"""``scimcore client federate`` and its companions (cli.md; issue 20 item 3): a client made
without a secret, trusting a federated identity, whose assertion the example server accepts;
the identity in ``client list``; ``client unfederate``; one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples.flask_server import create_app

from scimcore import ScimService
from scimcore.federation import ASSERTION_TYPE
from scimcore.testing._federation_contract import AUDIENCE, SUBJECT, Issuer
from scimcore_adapters.sql import SqlStorage
from tests.test_cli import Cli
from tests.test_federation_http import KeyServer

pytest.importorskip("jwt", reason="federation tests need the federation extra (PyJWT)")

BASE = ["--base-url", "https://scim.example.com/scim/v2"]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    cli = Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    return cli


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    try:
        yield server
    finally:
        server.close()


def assertion_status(url: str, client_id: str, assertion: str) -> int:
    """POST a client assertion to the example server (its own JWKS key source), then a SCIM
    call with the access token; the token request's status."""
    storage = SqlStorage(url)
    try:
        client = create_app(ScimService(storage)).test_client()
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        reply = client.post("/oauth/token", data=form)
        token = reply.get_json().get("access_token")
        if token is not None:
            scim = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
            assert scim.status_code == 200
        return reply.status_code
    finally:
        storage.close()


def test_client_federate_list_unfederate(cli: Cli, keys: KeyServer) -> None:
    from datetime import datetime, timezone

    issuer = Issuer(url=keys.url)
    keys.keys = issuer.jwks()
    text = cli(*BASE, "client", "create", "acme", "--admin", "it@acme.example", "--no-secret")
    assert "Client secret" not in text and "client federate" in text
    created = cli.json("client", "create", "acme", "--admin", "it@acme.example", "--no-secret")
    assert set(created) == {"client_id", "token_endpoint"}
    cid = created["client_id"]
    shown = cli(
        *BASE,
        "client",
        "federate",
        "acme",
        cid,
        "--issuer",
        keys.url,
        "--subject",
        SUBJECT,
        "--audience",
        AUDIENCE,
    )
    assert f"Client ID: {cid}" in shown
    assert "Token URL: https://scim.example.com/oauth/token" in shown
    assert "SCIM URL: https://scim.example.com/scim/v2" in shown
    assert f"Keys: discovered from {keys.url}/.well-known/openid-configuration" in shown

    now = datetime.now(timezone.utc)
    assert assertion_status(cli.url, cid, issuer.assertion(now)) == 200

    listed = cli.json("client", "list", "acme")
    (federation,) = listed[1]["federations"]
    assert listed[1]["secrets"] == [] and listed[0]["federations"] == []
    assert (federation["issuer"], federation["subject"], federation["audience"]) == (
        keys.url,
        SUBJECT,
        AUDIENCE,
    )
    assert federation["jwks_url"] is None and federation["last_used_at"] is not None
    assert f"federation {federation['federation_id']}" in cli("client", "list", "acme")

    extra = cli.json(
        "client", "federate", "acme", cid, "--issuer", "https://login.example/t/v2.0",
        "--subject", "s", "--audience", "a", "--jwks-url", "https://login.example/t/keys",
    )  # fmt: skip
    assert extra["jwks_url"] == "https://login.example/t/keys" and extra["client_id"] == cid
    assert "deleted" in cli("client", "unfederate", "acme", cid, federation["federation_id"])
    assert [f["subject"] for f in cli.json("client", "list", "acme")[1]["federations"]] == ["s"]
    assert assertion_status(cli.url, cid, issuer.assertion(now)) == 401


def test_client_federate_errors_are_one_line(cli: Cli) -> None:
    cid = cli.json("client", "create", "acme", "--admin", "it@acme.example", "--no-secret")[
        "client_id"
    ]
    federate = ("client", "federate", "acme", cid, "--subject", "s", "--audience", "a")
    assert "https URL" in cli(*federate, "--issuer", "http://login.example/t", ok=False)
    long = "https://login.example/" + "x" * 600
    assert "longer than 600" in cli(*federate, "--issuer", long, ok=False)
    other = ("client", "federate", "acme", "f" * 32, "--issuer", "https://l.example")
    assert "no OAuth client" in cli(*other, "--subject", "s", "--audience", "a", ok=False)
    assert "no federated identity" in cli("client", "unfederate", "acme", cid, "0" * 32, ok=False)
