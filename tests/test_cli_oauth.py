"""``scimcore client ...`` (cli.md; issue 20): create, list, rotate, delete, and the client's
credentials used at the example server's token endpoint, then for a SCIM call."""

from __future__ import annotations

import argparse
import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from examples.flask_server import create_app

from scimcore import ScimService
from scimcore_adapters.cli import _parser
from scimcore_adapters.cli_clients import token_endpoint
from scimcore_adapters.sql import SqlStorage
from tests.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    cli = Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    return cli


def token_status(url: str, client_id: str, secret: str) -> tuple[int, str | None]:
    """POST client credentials (HTTP Basic) to the example server; status and access token."""
    storage = SqlStorage(url)
    try:
        client = create_app(ScimService(storage)).test_client()
        pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        reply = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {pair}"},
        )
        token = reply.get_json().get("access_token")
        if token is not None:
            scim = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
            assert scim.status_code == 200
        return reply.status_code, token
    finally:
        storage.close()


def test_client_create_list_rotate_delete(cli: Cli) -> None:
    # R2.6
    base = ["--base-url", "https://scim.example.com/scim/v2"]
    text = cli(*base, "client", "create", "acme", "--admin", "it@acme.example", "--label", "E")
    assert "Token endpoint: https://scim.example.com/oauth/token" in text
    created = cli.json(
        *base, "client", "create", "acme", "--admin", "it@acme.example", "--secret-days", "20"
    )
    assert set(created) == {
        "client_id",
        "client_secret",
        "secret_id",
        "expires_at",
        "token_endpoint",
    }
    assert created["token_endpoint"] == "https://scim.example.com/oauth/token"
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - datetime.now(timezone.utc) - timedelta(days=20)) < timedelta(minutes=5)
    assert token_status(cli.url, created["client_id"], created["client_secret"])[0] == 200

    listed = cli.json("client", "list", "acme")
    assert [c["label"] for c in listed] == ["E", ""]
    (secret,) = listed[1]["secrets"]
    assert (secret["secret_id"], secret["expires_soon"], secret["expired"]) == (
        created["secret_id"],
        True,
        False,
    )
    assert secret["last_used_at"] is not None
    assert listed[0]["secrets"][0]["expires_soon"] is False
    assert "EXPIRES SOON" in cli("client", "list", "acme")
    assert created["client_secret"] not in cli("client", "list", "acme")

    cid = created["client_id"]
    added = cli.json("client", "secret", "add", "acme", cid)
    assert token_status(cli.url, cid, added["client_secret"])[0] == 200
    cli("client", "secret", "delete", "acme", cid, created["secret_id"])
    assert token_status(cli.url, cid, created["client_secret"]) == (401, None)
    assert token_status(cli.url, cid, added["client_secret"])[0] == 200
    assert "deleted" in cli("client", "delete", "acme", cid)
    assert token_status(cli.url, cid, added["client_secret"]) == (401, None)
    assert [c["label"] for c in cli.json("client", "list", "acme")] == ["E"]


def test_client_errors_are_one_line(cli: Cli) -> None:
    create = ("client", "create", "acme")
    assert "not an active admin" in cli(*create, "--admin", "x@acme.example", ok=False)
    assert "1 to 1095 days" in cli(
        *create, "--admin", "it@acme.example", "--secret-days", "1096", ok=False
    )
    assert "no OAuth client" in cli("client", "delete", "acme", "f" * 32, ok=False)
    assert "no OAuth client" in cli("client", "secret", "add", "acme", "nope", ok=False)
    cid = cli.json(*create, "--admin", "it@acme.example")["client_id"]
    assert "has no secret" in cli("client", "secret", "delete", "acme", cid, "0" * 32, ok=False)
    assert "no workspace" in cli("client", "list", "beta", ok=False)


def test_every_client_command_and_option_has_help() -> None:
    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    client = commands.choices["client"]
    seen = 0
    stack = [client]
    while stack:
        current = stack.pop()
        assert current.description
        for action in current._actions:
            if action.dest == "help":
                continue
            if action.choices and hasattr(action.choices, "values"):
                stack.extend(action.choices.values())
                continue
            assert action.help, (current.prog, action.dest)
            seen += 1
    assert seen >= 12


def test_token_endpoint_beside_the_tenant_url() -> None:
    assert token_endpoint("https://x.example/scim/v2/") == "https://x.example/oauth/token"
    assert token_endpoint("https://x.example/app/scim/v2") == "https://x.example/app/oauth/token"
    assert token_endpoint("https://x.example/other") == "https://x.example/oauth/token"
    assert token_endpoint(None) is None
