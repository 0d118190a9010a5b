"""Migration 7 (OAuth clients, issue 20) on a real version-6 database, SQLite and PostgreSQL:
the existing workspace, admin and token keep working, and clients work at once."""

from __future__ import annotations

import hashlib

from sqlalchemy import create_engine, inspect

from scimcore import ScimService
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.migrations import MIGRATIONS, migrate
from scimcore_adapters.sql.tables import ADMINS, TOKENS, WORKSPACES
from tests.console_contract import ADMIN, T0, call
from tests.oauth_contract import access_token

OAUTH_TABLES = {"oauth_clients", "oauth_client_secrets", "oauth_access_tokens"}


def test_migration_9_adds_the_oauth_tables_to_a_version_8_database(any_url: str) -> None:
    secret = "s" * 43
    token = f"scim_{'1' * 32}_{secret}"
    engine = create_engine(any_url)
    try:
        assert migrate(engine, MIGRATIONS[:8]) == 8
        assert not OAUTH_TABLES & set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            conn.execute(WORKSPACES.insert().values(id="ws-acme", slug="acme", created_at=T0))
            admin = {"email": ADMIN, "email_key": ADMIN, "active": True, "created_at": T0}
            conn.execute(ADMINS.insert().values(workspace_id="ws-acme", **admin))
            conn.execute(
                TOKENS.insert().values(
                    id="1" * 32,
                    workspace_id="ws-acme",
                    secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
                    label="entra",
                    created_by=ADMIN,
                    created_at=T0,
                )
            )
    finally:
        engine.dispose()
    storage = SqlStorage(any_url, checkpoint_interval=None)
    try:
        assert storage.schema_version == len(MIGRATIONS) >= 9
        assert set(inspect(storage.engine).get_table_names()) >= OAUTH_TABLES
        service = ScimService(storage)
        assert call(service, token).status == 200
        issued = service.oauth_clients.create("acme", ADMIN)
        assert call(service, access_token(service, issued)).status == 200
    finally:
        storage.close()
