"""The ``scimcore`` commands added with the console (shared/spec/cli.md, issue 17 section 7):
dead tokens listed as dead, admins and passwords, card assign/lock, template delete, help
texts, quiet ``| head`` and the database file a command uses."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import attrs
import pytest
from sqlalchemy import create_engine

from scimcore.storage import LogEntry
from scimcore_adapters.cli import _parser, main
from scimcore_adapters.passwords import PasswordError, hash_password, needs_rehash, verify_password
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.migrations import MIGRATIONS, migrate
from scimcore_adapters.sql.people import page_statements
from scimcore_adapters.sql.tables import ADMINS, TOKENS, WORKSPACES
from tests.test_cli import Cli, entra_user, scim
from tests.test_storage_sql import explain_statement

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


def test_admin_list_and_password(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    cli("admin", "add", "acme", "Ops@Acme.example")
    cli("admin", "deactivate", "acme", "ops@acme.example")
    admins = cli.json("admin", "list", "acme")
    assert [(a["email"], a["active"]) for a in admins] == [
        ("it@acme.example", True),
        ("ops@acme.example", False),
    ]
    assert set(admins[0]) == {"email", "active", "created_at"}
    assert "ops@acme.example  inactive" in cli("admin", "list", "acme")

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert "password of it@acme.example set" in cli(
        "admin", "password", "acme", "IT@acme.example", "--password-stdin"
    )
    storage = SqlStorage(cli.url)
    try:
        admin = storage.get_admin(storage.list_workspaces()[0].id, "it@acme.example")
        assert admin is not None and admin.password_hash is not None
        assert admin.password_hash.startswith("$argon2id$")
        assert verify_password(admin.password_hash, "correct horse")
        assert not verify_password(admin.password_hash, "correct horse\n")
    finally:
        storage.close()
    assert "correct horse" not in json.dumps(cli.json("log", "acme"))

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert "at least 8" in cli(
        "admin", "password", "acme", "it@acme.example", "--password-stdin", ok=False
    )
    answers = iter(["long enough 1", "long enough 2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert "differ" in cli("admin", "password", "acme", "it@acme.example", ok=False)
    answers = iter(["long enough 3", "long enough 3"])
    cli("admin", "password", "acme", "it@acme.example")
    monkeypatch.setattr("sys.stdin", io.StringIO("whatever123\n"))
    assert "not an admin" in cli(
        "admin", "password", "acme", "nobody@acme.example", "--password-stdin", ok=False
    )


def test_passwords_hash_verify_and_rehash() -> None:
    hashed = hash_password("s3cret-enough")
    assert hashed.startswith("$argon2id$") and "s3cret" not in hashed
    assert hash_password("s3cret-enough") != hashed  # a fresh salt
    assert verify_password(hashed, "s3cret-enough")
    assert not verify_password(hashed, "s3cret-enougH")
    assert not verify_password(None, "s3cret-enough")
    assert not verify_password("not a hash", "s3cret-enough")
    assert not needs_rehash(hashed)
    assert needs_rehash("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
    with pytest.raises(PasswordError):
        hash_password("1234567")


def test_card_assign_lock_and_template_delete(cli: Cli) -> None:
    # R7.6, R8.5, section 7: card assign, card lock, template delete, unknown keys refused
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    token = cli("token", "generate", "acme", "--admin", "it@acme.example", "--quiet").strip()
    http, hdr = scim(cli.url, token)
    assert http.post("/scim/v2/Users", json=entra_user("ann@acme.example", "R&D"), headers=hdr)
    cli("template", "create", "acme", "Brand", "--field", "company=Acme Inc.")
    assert "ann@acme.example: template Brand" in cli(
        "card", "assign", "acme", "ann@acme.example", "Brand"
    )
    (card,) = cli.json("cards", "acme")
    assert card["template"] == "Brand" and card["fields"]["company"]["value"] == "Acme Inc."
    assert "1 cards updated" in cli("template", "set", "acme", "Brand", "--field", "company=Acme")
    cli("card", "unlock", "acme", "ann@acme.example", "job_title")
    out = cli("card", "lock", "acme", "ann@acme.example", "job_title")
    assert "locked=True linked=False" in out
    assert "unknown card field 'jobtitle'" in cli(
        "card", "edit", "acme", "ann@acme.example", "jobtitle", "x", ok=False
    )
    assert "unknown card field" in cli(
        "template", "create", "acme", "T", "--field", "colour=red", ok=False
    )
    assert "jobtitle" not in cli("cards", "acme")
    assert "(1 cards updated)" in cli("template", "delete", "acme", "Brand")
    (card,) = cli.json("cards", "acme")
    assert card["template"] is None and card["fields"]["company"]["value"] == "Acme"
    assert "no template" in cli("card", "assign", "acme", "ann@acme.example", "Brand", ok=False)


@pytest.mark.parametrize(
    ("search", "state", "offset", "expected"),
    [
        ("", None, 99_950, ["USING COVERING INDEX ix_people_workspace_id_user_name_folded_id"]),
        ("", "active", 0, ["USING COVERING INDEX ix_people_workspace_id_user_name_folded_id"]),
        (
            "kim",
            None,
            0,
            [
                "MULTI-INDEX OR",
                "ix_people_workspace_id_email_folded",
                "ix_people_workspace_id_name_folded",
            ],
        ),
    ],
)
def test_people_pages_use_indexes_on_sqlite(
    tmp_path: Path, search: str, state: str | None, offset: int, expected: list[str]
) -> None:
    # Team Cards at 100,000 people: never a scan of the workspace (benchmarks/team_cards.py)
    storage = SqlStorage(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        count, ids = page_statements("w1", search, state, offset, 50)
        plan = explain_statement(storage, ids)
        assert all(part in plan for part in expected), plan
        count_plan = explain_statement(storage, count)
        for shown in (plan, count_plan):
            assert "SEARCH people USING" in shown and "SCAN people" not in shown, shown
        if search:
            assert "MULTI-INDEX OR" in count_plan, count_plan
    finally:
        storage.close()


#: The commands of the mail engineer's branch (mail, outbox, serve) are checked there.
OWN_COMMANDS = (
    "workspace",
    "admin",
    "token",
    "settings",
    "template",
    "rule",
    "cards",
    "card",
    "activation",
    "seats",
    "log",
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_help_describes_every_command_and_option_without_rule_numbers() -> None:
    # section 7: "--help says what each command and option does, without internal rule numbers"
    root = _parser()
    commands = _subparsers(root)
    todo: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [
        ((name,), commands[name]) for name in OWN_COMMANDS
    ]
    checked = 0
    while todo:
        path, parser = todo.pop()
        children = _subparsers(parser)
        todo += [((*path, n), child) for n, child in children.items()]
        assert parser.description, f"scimcore {' '.join(path)} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"scimcore {' '.join(path)} {action.dest}: no help"
        text = parser.format_help()
        assert not re.search(r"\bR\d+\.\d+\b", text), (path, text)
        checked += 1
    assert checked >= 30
    top = root.format_help()
    options = [a for a in root._actions if not isinstance(a, argparse._SubParsersAction)]
    assert all(a.help for a in options) and not re.search(r"\bR\d\.\d", top)


def test_output_into_a_closed_pipe_ends_quietly(cli: Cli, tmp_path: Path) -> None:
    # section 7: "| head ends quietly"
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    storage = SqlStorage(cli.url)
    try:
        workspace = storage.list_workspaces()[0]
        with storage.users(workspace.id) as store:
            for n in range(2000):
                entry = LogEntry(f"{n:032x}", T0, "get", None, 200, "x" * 100, None)
                store.add_log(entry, keep=10_000)
    finally:
        storage.close()
    command = [sys.executable, "-m", "scimcore_adapters.cli", "--database-url", cli.url]
    reader = subprocess.Popen(
        [*command, "log", "acme", "--limit", "2000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.read(100)
    reader.stdout.close()  # as `head` does once it has its lines
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 141
    assert err == "", err


def test_a_new_database_is_announced_and_read_commands_refuse_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # section 7: never silently a new empty database in another folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCIMCORE_DATABASE_URL", raising=False)
    default = tmp_path / "scimcore.db"
    for args in (["workspace", "list"], ["cards", "acme"], ["token", "list", "acme"]):
        assert main(args) == 1
        out, err = capsys.readouterr()
        assert out == "" and f"no database at {default}" in err and err.count("\n") == 1
        assert not default.exists()
    assert main(["workspace", "create", "acme", "--admin", "it@acme.example"]) == 0
    out, err = capsys.readouterr()
    assert err == f"scimcore: creating a new database at {default}\n"
    assert default.exists() and "created workspace acme" in out
    assert main(["workspace", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["slug"] == "acme" and err == ""


def test_migration_6_adds_the_console_columns_to_an_old_database(any_url: str) -> None:
    """A version-5 database as version 5 made it (without the columns, indexes and tables of
    version 6) opens at version 6: people searchable by e-mail and card name, admins with
    passwords, activation columns."""
    engine = create_engine(any_url)
    try:
        migrate(engine, MIGRATIONS[:5])
        with engine.begin() as conn:  # what version 5 did not have
            for index in (
                "ix_people_workspace_id_email_folded",
                "ix_people_workspace_id_name_folded",
                "ix_people_workspace_id_user_name_folded_id_active_deprovisioned",
            ):
                conn.exec_driver_sql(f"DROP INDEX {index}")
            for column in ("email_folded", "name_folded", "activated_at"):
                conn.exec_driver_sql(f"ALTER TABLE people DROP COLUMN {column}")
            conn.exec_driver_sql("ALTER TABLE admins DROP COLUMN password_hash")
            conn.execute(WORKSPACES.insert().values(id="w1", slug="acme", created_at=T0))
            conn.execute(
                ADMINS.insert().values(
                    workspace_id="w1",
                    email_key="a@x.test",
                    email="a@x.test",
                    active=True,
                    created_at=T0,
                )
            )
            card = {
                "fields": {
                    "name": {"value": "Ann Lee", "locked": True, "linked": True, "source": "idp"}
                },
                "template": None,
                "active": True,
            }
            conn.exec_driver_sql(
                "INSERT INTO people (workspace_id, id, user_name, user_name_folded, email, "
                "active, deprovisioned, card, created_at, updated_at) VALUES "
                "('w1', 'p1', 'u1@x.test', 'u1@x.test', 'Ann.Lee@Corp.test', true, false, "
                f"'{json.dumps(card)}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
    finally:
        engine.dispose()
    storage = SqlStorage(any_url)
    try:
        assert storage.schema_version == len(MIGRATIONS)
        with storage.users("w1", readonly=True) as store:
            for search in ("ann lee", "ann.lee@corp", "u1@"):
                total, people = store.page_people(search, None, 0, 10)
                assert (total, [p.id for p in people]) == (1, ["p1"]), search
            assert people[0].activated_at is None
        admin = storage.get_admin("w1", "a@x.test")
        assert admin is not None and admin.password_hash is None
        storage.save_admin(attrs.evolve(admin, password_hash="$argon2id$x"))
        stored = storage.get_admin("w1", "a@x.test")
        assert stored is not None and stored.password_hash == "$argon2id$x"
        assert storage.get_activation_link("0" * 64) is None
        assert storage.list_tokens("w1") == []
    finally:
        storage.close()
