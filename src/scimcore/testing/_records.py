"""The records the storage contract's tests store, and the helpers that build them
(``user``, ``ws``, ``person``, ``mail``, ``entry``...); scimcore's own backend tests use them too.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from scimcore import Storage, Workspace
from scimcore.schema import default_registry
from scimcore.storage import LogEntry, OutboxMail, Person

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
REGISTRY = default_registry()
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user(n: int, name: str | None = None, /, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"{n:032x}",
        "userName": name or f"user{n}@x.test",
        "meta": {
            "resourceType": "User",
            "created": (T0 + timedelta(seconds=n)).isoformat(),
            "lastModified": (T0 + timedelta(seconds=n)).isoformat(),
            "version": 'W/"1"',
        },
    }
    doc.update(extra)
    return doc


def bumped(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**doc, **changes}
    version = int(doc["meta"]["version"][3:-1]) + 1
    out["meta"] = {**doc["meta"], "version": f'W/"{version}"'}
    return out


def ws(storage: Storage, slug: str = "acme") -> Workspace:
    w = Workspace(id=f"ws-{slug}", slug=slug, created_at=T0)
    storage.create_workspace(w)
    return w


def person(n: int, /, **changes: Any) -> Person:
    values: dict[str, Any] = {
        "id": f"{n:032x}",
        "user_name": f"user{n}@x.test",
        "email": f"user{n}@x.test",
        "active": True,
        "deprovisioned": False,
        "card": {
            "fields": {"job_title": {"value": f"T{n}", "locked": True, "linked": True}},
            "template": None,
            "active": True,
        },
        "created_at": T0 + timedelta(seconds=n),
        "updated_at": T0 + timedelta(seconds=n),
    }
    values.update(changes)
    return Person(**values)


def mail(n: int, workspace_id: str, dedupe_key: str | None = None, /, **changes: Any) -> OutboxMail:
    values: dict[str, Any] = {
        "id": f"m{n:031x}",
        "workspace_id": workspace_id,
        "person_id": f"{n:032x}",
        "to": f"user{n}@x.test",
        "kind": "activation",
        "subject": f"Welcome {n}",
        "body": f"Hello {n} \u2013 here is your card",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": T0 + timedelta(seconds=n),
        "created_at": T0 + timedelta(seconds=n),
        "dedupe_key": dedupe_key,
    }
    values.update(changes)
    return OutboxMail(**values)


def entry(n: int, /, **changes: Any) -> LogEntry:
    values: dict[str, Any] = {
        "id": f"l{n:031x}",
        "at": T0 + timedelta(seconds=n),
        "operation": "create",
        "resource_id": f"{n:032x}",
        "status": 201,
        "detail": "",
        "token_id": "t1",
    }
    values.update(changes)
    return LogEntry(**values)
