"""Team Cards shows each person's groups and filters by group (issue #19, R7.5's groups seen by
the admin), through the console and through ``Product.people`` on every backend."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from scimcore import ScimService
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from tests.conftest import postgres_schema_url
from tests.console.helpers import scim, scim_create, token_for

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def scim_group(service: ScimService, token: str, name: str, *members: str) -> str:
    body = {
        "schemas": [CORE_GROUP],
        "displayName": name,
        "members": [{"value": m} for m in members],
    }
    response = scim(service, token, "POST", "/Groups", body)
    assert response.status == 201, response.body
    return str(json.loads(response.body)["id"])


def test_team_cards_shows_groups_and_filters_by_group(
    admin: FlaskClient, service: ScimService
) -> None:
    token = token_for(service)
    ann, bob, cat = (
        scim_create(service, token, f"{n}@acme.example") for n in ("ann", "bob", "cat")
    )
    marketing = scim_group(service, token, "Marketing", ann, bob)
    sales = scim_group(service, token, "Sales", bob)
    page = admin.get("/console/acme/cards").data.decode()
    assert '<label for="group">Group</label>' in page and '<select id="group" name="group">' in page
    assert f'<option value="{marketing}">Marketing</option>' in page
    assert f'<option value="{sales}">Sales</option>' in page
    rows = {p: page[page.index(f'value="{p}"') :][:1200] for p in (ann, bob, cat)}
    groups = {p: re.search(r'<td class="groups">(.*?)</td>', r).group(1) for p, r in rows.items()}  # type: ignore[union-attr]
    assert ">Marketing</a>" in groups[ann] and "Sales" not in groups[ann]
    assert ">Marketing</a>, <a" in groups[bob] and ">Sales</a>" in groups[bob]
    assert groups[cat] == "\u2014"
    only = admin.get(f"/console/acme/cards?group={marketing}").data.decode()
    assert "2 people in the group Marketing" in only
    assert ann in only and bob in only and f'value="{cat}"' not in only
    assert f'<option value="{marketing}" selected>' in only
    both = admin.get(f"/console/acme/cards?group={sales}&q=ann").data.decode()
    assert "0 people in the group Sales" in both
    # Another workspace's group, or none: the filter is not applied, nothing is revealed.
    other = token_for(service, "globex", "boss@globex.example")
    theirs = scim_group(service, other, "Theirs", scim_create(service, other, "x@globex.example"))
    listed = admin.get(f"/console/acme/cards?group={theirs}").data.decode()
    assert "3 people," in listed and "Theirs" not in listed


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScimService]:
    if request.param == "memory":
        yield ScimService(MemoryStorage())
        return
    if request.param == "sqlite":
        storage = SqlStorage(f"sqlite:///{tmp_path / 'people.db'}", checkpoint_interval=None)
        yield ScimService(storage)
        storage.close()
        return
    with postgres_schema_url() as url:
        storage = SqlStorage(url)
        yield ScimService(storage)
        storage.close()


def test_people_pages_by_group_with_each_persons_groups(any_service: ScimService) -> None:
    service = any_service
    service.workspaces.create("acme", "it@acme.example")
    token = token_for(service, "acme", "it@acme.example")
    ids = [scim_create(service, token, f"u{n:02d}@acme.example") for n in range(7)]
    big = scim_group(service, token, "Big", *ids[1:6])
    small = scim_group(service, token, "small", ids[3])
    assert [(g.id, g.display_name) for g in service.product.groups("acme")] == [
        (big, "Big"),
        (small, "small"),
    ]
    page = service.product.people("acme", group=big, offset=1, limit=3)
    assert page.total == 5
    assert [v.person_id for v in page.items] == ids[2:5]
    assert [[g.display_name for g in v.groups] for v in page.items] == [
        ["Big"],
        ["Big", "small"],
        ["Big"],
    ]
    assert service.product.people("acme", group=big, state="active", search="U05").total == 1
    assert service.product.people("acme", group="no-such-group").total == 0
    everyone = service.product.people("acme")
    assert everyone.total == 7 and everyone.items[0].groups == ()
    assert everyone.items[3].to_dict()["groups"] == [
        {"id": big, "display": "Big"},
        {"id": small, "display": "small"},
    ]
    # A SCIM DELETE leaves the person deprovisioned, out of every group (R5.2).
    assert scim(service, token, "DELETE", f"/Users/{ids[3]}").status == 204
    assert service.product.people("acme", group=small).total == 0
    assert service.product.people("acme", state="deprovisioned").items[0].groups == ()
