"""The ``scimcore`` commands added with the console (shared/spec/cli.md, issue 17 section 7):
dead tokens listed as dead, admins and passwords, card assign/lock, template delete, help
texts, quiet ``| head`` and the database file a command uses."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.migrations import MIGRATIONS, migrate
from scimcore_adapters.sql.tables import ADMINS, TOKENS, WORKSPACES
from tests.test_cli import Cli, scim

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


def test_readded_admin_does_not_revive_tokens_and_token_list_shows_them_dead(cli: Cli) -> None:
    # R2.5, section 7: "the revived token first"
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    cli("admin", "add", "acme", "ops@acme.example")
    token = cli("token", "generate", "acme", "--admin", "it@acme.example", "--quiet").strip()
    http, hdr = scim(cli.url, token)
    assert http.get("/scim/v2/Users", headers=hdr).status_code == 200
    cli("admin", "deactivate", "acme", "it@acme.example")
    cli("admin", "add", "acme", "it@acme.example")
    assert http.get("/scim/v2/Users", headers=hdr).status_code == 401
    (listed,) = cli.json("token", "list", "acme")
    assert (listed["state"], listed["dead_reason"]) == ("dead", "admin deactivated")
    assert "DEAD (admin deactivated)" in cli("token", "list", "acme")
    refused = [e for e in cli.json("log", "acme") if e["operation"] == "auth.refused"]
    assert [(e["status"], e["token_id"]) for e in refused] == [(401, listed["id"])]
    cli("token", "delete", "acme", listed["id"])
    assert cli.json("token", "list", "acme") == []


def test_migration_6_buries_tokens_of_admins_deactivated_before_it(tmp_path: Path) -> None:
    # R2.5 for databases made before tombstones: the orphan must not come back
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    migrate(engine, MIGRATIONS[:5])
    with engine.begin() as conn:
        conn.execute(WORKSPACES.insert().values(id="w1", slug="acme", created_at=T0))
        for email, active in (("gone@acme.example", False), ("it@acme.example", True)):
            conn.execute(
                ADMINS.insert().values(
                    workspace_id="w1", email_key=email, email=email, active=active, created_at=T0
                )
            )
            conn.execute(
                TOKENS.insert().values(
                    id=email[:4].ljust(32, "0"),
                    workspace_id="w1",
                    secret_hash="h" * 64,
                    label=email,
                    created_by=email,
                    created_at=T0,
                )
            )
    engine.dispose()
    storage = SqlStorage(url)
    try:
        tokens = {t.created_by: t.state for t in storage.list_tokens("w1")}
        assert tokens == {"gone@acme.example": "dead", "it@acme.example": "active"}
        assert storage.authenticate("gone".ljust(32, "0")) is None
        assert storage.authenticate("it@a".ljust(32, "0")) is not None
    finally:
        storage.close()
