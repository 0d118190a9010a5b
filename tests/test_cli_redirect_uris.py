"""``scimcore client redirect-uri add|list|delete`` (cli.md; issue 20 item 4): registered URIs,
shown by ``client list``, and the authorize endpoint beside the token endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimcore_adapters.cli_redirect_uris import authorize_endpoint
from tests.test_cli import Cli

OKTA = "https://system-admin.okta.com/admin/app/cpc/acme_scim/oauth/callback"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    cli = Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    return cli


def test_redirect_uri_add_list_delete(cli: Cli) -> None:
    cid = cli.json("client", "create", "acme", "--admin", "it@acme.example")["client_id"]
    base = ["--base-url", "https://scim.example.com/scim/v2"]
    text = cli(*base, "client", "redirect-uri", "add", "acme", cid, OKTA)
    assert "Authorize endpoint: https://scim.example.com/oauth/authorize" in text
    assert "Token endpoint: https://scim.example.com/oauth/token" in text
    added = cli.json("client", "redirect-uri", "add", "acme", cid, "http://localhost:8080/cb")
    assert added["uri"] == "http://localhost:8080/cb" and added["authorize_endpoint"] is None
    listed = cli.json("client", "redirect-uri", "list", "acme", cid)
    assert [u["uri"] for u in listed] == [OKTA, "http://localhost:8080/cb"]
    (client,) = cli.json("client", "list", "acme")
    assert [u["uri"] for u in client["redirect_uris"]] == [OKTA, "http://localhost:8080/cb"]
    assert f"redirect URI {OKTA}" in cli("client", "list", "acme")
    cli("client", "redirect-uri", "delete", "acme", cid, added["id"])
    cli("client", "redirect-uri", "delete", "acme", cid, OKTA)
    assert cli.json("client", "redirect-uri", "list", "acme", cid) == []


def test_redirect_uri_errors_are_one_line(cli: Cli) -> None:
    cid = cli.json("client", "create", "acme", "--admin", "it@acme.example")["client_id"]
    add = ("client", "redirect-uri", "add", "acme")
    assert "use https" in cli(*add, cid, "http://okta.example/cb", ok=False)
    assert "no fragment" in cli(*add, cid, "https://okta.example/cb#x", ok=False)
    assert "no OAuth client" in cli(*add, "f" * 32, OKTA, ok=False)
    assert "no redirect URI" in cli("client", "redirect-uri", "delete", "acme", cid, OKTA, ok=False)
    assert cli.json("client", "redirect-uri", "list", "acme", cid) == []


def test_authorize_endpoint_beside_the_token_endpoint() -> None:
    assert authorize_endpoint("https://x.example/app/oauth/token") == (
        "https://x.example/app/oauth/authorize"
    )
    assert authorize_endpoint(None) is None
