"""The core keeps no global state: what it derives from the schemas (parsed PATCH paths, value
filters, compiled filters and predicates, card readers, the template rules' registries) lives
on the :class:`~scimcore.schema.SchemaRegistry` it was derived from (issue #18, item 3)."""

from __future__ import annotations

import gc
import weakref

from scimcore import ScimService
from scimcore.schema import Attribute, Schema, SchemaRegistry
from scimcore_adapters.memory import MemoryStorage
from tests.conftest import Client, counting_runtime

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BADGE = "urn:example:params:scim:schemas:extension:badge:2.0:User"


def _exercise(registry: SchemaRegistry) -> None:
    """Every cached path of the core, once: create (card readers, template rules), filtered
    list, PATCH with a value filter."""
    service = ScimService(MemoryStorage(registry), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    service.product.create_template("acme", "Brand", {"company": "Acme"})
    service.product.add_rule("acme", "Brand", 'department eq "Sales"')
    client = Client(service, token)
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    uid = client.create(
        "ann@acme.test",
        emails=[{"value": "ann@acme.test", "type": "work"}],
        **{enterprise: {"department": "Sales"}},
    )["id"]
    listed = client(
        "GET", "/Users", query={"filter": 'emails[type eq "work" and value co "acme"]'}
    ).json()
    assert listed["totalResults"] == 1
    operation = {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@acme.test"}
    patched = client("PATCH", f"/Users/{uid}", {"schemas": [PATCH], "Operations": [operation]})
    assert patched.json()["emails"][0]["value"] == "a@acme.test"


def test_a_dropped_registry_is_not_kept_alive_by_any_cache() -> None:
    registry = SchemaRegistry()
    _exercise(registry)
    alive = weakref.ref(registry)
    del registry
    gc.collect()
    assert alive() is None, gc.get_referrers(alive())  # a module-level cache would hold it


def test_a_registry_changed_after_use_serves_the_new_extension() -> None:
    """Values derived before ``add_extension`` are not served after it."""
    registry = SchemaRegistry()
    _exercise(registry)
    registry.add_extension(Schema(BADGE, "Badge", "", (Attribute("badgeId"),)))
    service = ScimService(MemoryStorage(registry), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    client = Client(service, token)
    uid = client.create("bob@acme.test", **{BADGE: {"badgeId": "b-1"}})["id"]
    found = client("GET", "/Users", query={"filter": f'{BADGE}:badgeId eq "b-1"'}).json()
    assert [r["id"] for r in found["Resources"]] == [uid]
    operation = {"op": "replace", "path": f"{BADGE}:badgeId", "value": "b-2"}
    patched = client("PATCH", f"/Users/{uid}", {"schemas": [PATCH], "Operations": [operation]})
    assert patched.json()[BADGE] == {"badgeId": "b-2"}
