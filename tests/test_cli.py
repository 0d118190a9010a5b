"""The ``scimcore`` command (shared/spec/cli.md) and a scenario driven only through the CLI and
SCIM: two workspaces, templates and rules, Entra-shaped users, admin and owner edits, template
edits, deactivation, deletion, token rotation and an admin's deactivation (R1 to R9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from examples.flask_server import create_app
from flask.testing import FlaskClient

from scimcore import ScimService
from scimcore_adapters.cli import main
from scimcore_adapters.sql import SqlStorage
from tests.conftest import free_port

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ROOT = Path(__file__).resolve().parents[1]


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str, ok: bool = True) -> str:
        self.capsys.readouterr()
        code = main(["--database-url", self.url, *args])
        out, err = self.capsys.readouterr()
        assert (code == 0) is ok, (args, out, err)
        if not ok:
            assert err.startswith("scimcore: error:") and err.count("\n") == 1
            assert out == ""
        return out if ok else err

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


def scim(url: str, token: str) -> tuple[FlaskClient, dict[str, str]]:
    client = create_app(ScimService(SqlStorage(url))).test_client()
    return client, {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


def test_workspace_admin_token_commands(cli: Cli) -> None:
    # R1.2, R2.1, R2.2
    assert "created workspace acme" in cli(
        "workspace", "create", "acme", "--admin", "It@Acme.example"
    )
    assert [w["slug"] for w in cli.json("workspace", "list")] == ["acme"]
    out = cli("token", "generate", "acme", "--admin", "it@acme.example", "--label", "Entra")
    assert out.startswith("Secret Token: scim_")  # no Tenant URL: never a guessed port
    url = "https://scim.acme.example/scim/v2"
    out = cli("--base-url", url, "token", "generate", "acme", "--admin", "it@acme.example")
    assert out.startswith(f"Tenant URL: {url}\nSecret Token: scim_")
    token = cli("token", "generate", "acme", "--admin", "it@acme.example", "--quiet").strip()
    assert token.startswith("scim_") and "\n" not in token
    tokens = cli.json("token", "list", "acme")
    assert [t["label"] for t in tokens] == ["Entra", "", ""]
    assert set(tokens[0]) == {
        "id",
        "label",
        "created_by",
        "created_at",
        "last_used_at",
        "state",
        "dead_reason",
    }
    assert token.split("_", 2)[2] not in json.dumps(tokens)
    cli("token", "delete", "acme", tokens[0]["id"])
    assert len(cli.json("token", "list", "acme")) == 2
    assert "no workspace" in cli("token", "list", "nope", ok=False)
    assert "already exists" in cli("workspace", "create", "acme", "--admin", "x@y.z", ok=False)
    assert "not an active admin" in cli(
        "token", "generate", "acme", "--admin", "stranger@acme.example", ok=False
    )


def test_bad_rule_is_refused_with_position(cli: Cli) -> None:
    # R7.4
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    cli("template", "create", "acme", "Brand", "--field", "company=Acme Inc.")
    err = cli(
        "rule", "add", "acme", "--template", "Brand", "--filter", 'department eq "x" or', ok=False
    )
    assert "position" in err
    err = cli("rule", "add", "acme", "--template", "Brand", "--filter", 'dept eq "x"', ok=False)
    assert "dept" in err
    assert cli.json("rule", "list", "acme") == []


def entra_user(name: str, department: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": name,
        "active": True,
        "displayName": name.split("@")[0].title(),
        "title": "Engineer",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}],
        ENT: {"department": department, "organization": "Acme"},
    }
    body.update(extra)
    return body


def test_full_scenario_two_workspaces(cli: Cli) -> None:
    # R1..R9 through the CLI and SCIM only
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    cli("workspace", "create", "beta", "--admin", "it@beta.example")
    cli("admin", "add", "acme", "ops@acme.example")
    token_a = cli("token", "generate", "acme", "--admin", "it@acme.example", "--quiet").strip()
    token_b = cli("token", "generate", "beta", "--admin", "it@beta.example", "--quiet").strip()
    cli(
        "template",
        "create",
        "acme",
        "Brand",
        "--field",
        "company=Acme Inc.",
        "--field",
        "logo=https://acme.example/logo.png",
    )
    cli(
        "rule",
        "add",
        "acme",
        "--template",
        "Brand",
        "--filter",
        'department eq "Marketing" or department eq "Sales"',
    )
    http, hdr = scim(cli.url, token_a)
    http_b, hdr_b = scim(cli.url, token_b)

    # R1.3 Test Connection, R3 provisioning
    r = http.get('/scim/v2/Users?filter=userName eq "7d1c0c56-9d43-4e0d"', headers=hdr)
    assert r.status_code == 200 and r.get_json()["totalResults"] == 0
    ann = http.post("/scim/v2/Users", json=entra_user("ann@acme.example", "Marketing"), headers=hdr)
    bob = http.post("/scim/v2/Users", json=entra_user("bob@acme.example", "R&D"), headers=hdr)
    assert ann.status_code == bob.status_code == 201
    ann_id, bob_id = ann.get_json()["id"], bob.get_json()["id"]
    retry = http.post(
        "/scim/v2/Users", json=entra_user("ann@acme.example", "Marketing"), headers=hdr
    )
    assert retry.status_code == 409  # R9.1: the IdP retries, nothing doubles

    cards = {c["user_name"]: c for c in cli.json("cards", "acme")}
    assert cards["ann@acme.example"]["template"] == "Brand"
    assert cards["ann@acme.example"]["fields"]["company"] == {
        "value": "Acme Inc.",
        "locked": True,
        "linked": True,
        "source": "template",
    }
    assert cards["bob@acme.example"]["template"] is None
    assert cards["bob@acme.example"]["fields"]["company"]["source"] == "idp"
    assert cards["bob@acme.example"]["fields"]["job_title"] == {
        "value": "Engineer",
        "locked": True,
        "linked": True,
        "source": "idp",
    }
    outbox = cli.json("outbox", "acme")
    assert sorted((m["to"], m["kind"], m["status"]) for m in outbox) == [
        ("ann@acme.example", "activation", "pending"),
        ("bob@acme.example", "activation", "pending"),
    ]
    assert {m["user_name"] for m in outbox} == {"ann@acme.example", "bob@acme.example"}

    # R4: updates flow into linked fields; R8 edits
    cli("card", "edit", "acme", "bob@acme.example", "job_title", "Principal Engineer")
    cli("card", "unlock", "acme", "bob@acme.example", "mobile_phone")
    assert "locked" in cli(
        "card", "owner-edit", "acme", "bob@acme.example", "department", "X", ok=False
    )
    cli("card", "owner-edit", "acme", "bob@acme.example", "mobile_phone", "+1 555 9999")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "title", "value": "Manager"},
            {
                "op": "Replace",
                "path": 'phoneNumbers[type eq "mobile"].value',
                "value": "+1 555 0000",
            },
            {"op": "Replace", "path": f"{ENT}:department", "value": "Sales"},
        ],
    }
    assert http.patch(f"/scim/v2/Users/{bob_id}", json=patch, headers=hdr).status_code == 200
    bob_card = {c["user_name"]: c for c in cli.json("cards", "acme")}["bob@acme.example"]
    assert bob_card["fields"]["job_title"]["value"] == "Principal Engineer"  # R8.1
    assert bob_card["fields"]["mobile_phone"]["value"] == "+1 555 9999"  # R8.2
    assert bob_card["fields"]["department"]["value"] == "Sales"  # R4.1
    assert bob_card["template"] is None  # R4.2

    # R7.1 template edit propagates
    cli("template", "set", "acme", "Brand", "--field", "company=Acme Incorporated")
    cards = {c["user_name"]: c for c in cli.json("cards", "acme")}
    assert cards["ann@acme.example"]["fields"]["company"]["value"] == "Acme Incorporated"
    assert cards["bob@acme.example"]["fields"]["company"]["value"] == "Acme"

    # R5 seats
    assert cli("seats", "acme").strip() == "2"
    deactivate = {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    http.patch(f"/scim/v2/Users/{ann_id}", json=deactivate, headers=hdr)
    assert cli("seats", "acme").strip() == "1"
    assert http.delete(f"/scim/v2/Users/{bob_id}", headers=hdr).status_code == 204
    assert http.get(f"/scim/v2/Users/{bob_id}", headers=hdr).status_code == 404
    assert cli("seats", "acme").strip() == "0"
    cards = {c["user_name"]: c for c in cli.json("cards", "acme")}
    assert cards["bob@acme.example"]["active"] is False
    assert cards["bob@acme.example"]["fields"]["job_title"]["value"] == "Principal Engineer"

    # R1.1 the other workspace sees nothing
    assert http_b.get(f"/scim/v2/Users/{ann_id}", headers=hdr_b).status_code == 404
    assert http_b.get("/scim/v2/Users", headers=hdr_b).get_json()["totalResults"] == 0
    assert cli.json("cards", "beta") == [] and cli("seats", "beta").strip() == "0"
    assert cli.json("outbox", "beta") == []
    beta_log = cli.json("log", "beta")  # only beta's own failed probe, nothing of acme's
    assert [(e["operation"], e["status"]) for e in beta_log] == [
        ("get", 404),
        ("token.generate", 200),
    ]
    beta_token = cli.json("token", "list", "beta")[0]["id"]
    assert beta_log[0]["token_id"] == beta_token

    # R9.2 log, newest first, with token ids and no secrets
    log = cli.json("log", "acme")
    assert [(e["operation"], e["status"]) for e in log[:2]] == [("get", 404), ("delete", 204)]
    assert log[1]["resource_id"] == bob_id
    assert {"at", "operation", "resource_id", "status", "detail", "token_id"} <= set(log[0])
    assert any(e["status"] == 409 for e in log)
    assert token_a.split("_", 2)[2] not in json.dumps(log)

    # R2.2 rotation, R2.3 admin deactivation
    new_token = cli("token", "generate", "acme", "--admin", "ops@acme.example", "--quiet").strip()
    http2, hdr2 = scim(cli.url, new_token)
    assert http.get("/scim/v2/Users", headers=hdr).status_code == 200
    cli("admin", "deactivate", "acme", "it@acme.example")
    assert http.get("/scim/v2/Users", headers=hdr).status_code == 401
    assert http2.get("/scim/v2/Users", headers=hdr2).status_code == 200

    # R3.5 manual activation, delivery through the CLI is covered in test_smtp
    cli("settings", "acme", "--activation-email", "off")
    assert cli.json("settings", "acme")["activation_email"] is False
    http2.post("/scim/v2/Users", json=entra_user("cat@acme.example", "R&D"), headers=hdr2)
    assert len(cli.json("outbox", "acme")) == 2
    assert "queued" in cli("activation", "send", "acme", "cat@acme.example")
    assert len(cli.json("outbox", "acme")) == 3


def test_settings_restrict_and_extend_the_mapping(cli: Cli) -> None:
    # R6: the mapping is data a workspace can restrict or extend
    cli("workspace", "create", "acme", "--admin", "it@acme.example")
    token = cli("token", "generate", "acme", "--admin", "it@acme.example", "--quiet").strip()
    fields = cli.json(
        "settings",
        "acme",
        "--fields",
        "name,email,department",
        "--map-field",
        f"employee_id={ENT}:employeeNumber",
    )["fields"]
    assert list(fields) == ["name", "department", "email", "employee_id"]
    assert "nope" in cli("settings", "acme", "--map-field", "x=nope.nothing", ok=False)
    http, hdr = scim(cli.url, token)
    body = entra_user(
        "ann@acme.example", "Sales", **{ENT: {"department": "Sales", "employeeNumber": "42"}}
    )
    assert http.post("/scim/v2/Users", json=body, headers=hdr).status_code == 201
    card = cli.json("cards", "acme")[0]["fields"]
    assert set(card) == {"name", "email", "department", "employee_id"}
    assert card["employee_id"]["value"] == "42"
    cli.json("settings", "acme", "--reset-fields")
    assert "job_title" in cli.json("settings", "acme")["fields"]


def test_a_database_that_cannot_be_opened_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_dir = Cli(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", capsys)
    err = missing_dir("workspace", "create", "acme", "--admin", "a@acme.example", ok=False)
    assert "cannot open the database sqlite:///" in err and "unable to open" in err

    # A PostgreSQL server that does not answer: the password never appears.
    url = f"postgresql+psycopg://scim:s3cret-pw@127.0.0.1:{free_port()}/scim"
    err = Cli(url, capsys)("workspace", "list", ok=False)
    assert "cannot open the database postgresql+psycopg://scim:***@127.0.0.1" in err
    assert "s3cret-pw" not in err


def test_a_missing_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    # A fresh interpreter in which psycopg cannot be imported (as without the postgres extra).
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from scimcore_adapters.cli import main\n"
        "sys.exit(main(['--database-url', 'postgresql+psycopg://x@127.0.0.1/db', 'workspace',"
        " 'list']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (
        "scimcore: error: this database needs psycopg, which is not installed: "
        "pip install 'scimcore[postgres]'\n"
    )


def test_example_server_refuses_a_database_it_cannot_open(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCIMCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'absent' / 'x.db'}",
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "flask_server.py"), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("flask_server: error: cannot open the database sqlite:///")
