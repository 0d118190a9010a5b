"""The product rules R3 to R9 end to end: SCIM requests in, cards, mail, seats and log out."""

from __future__ import annotations

from typing import Any

import pytest

from scimcore import ScimService, WorkspaceError
from scimcore.outbox import RecordingMailer, deliver_pending
from scimcore.provisioning import Event
from scimcore.schema import parse_utc_datetime
from tests.conftest import Client

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def entra_body(user_name: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": user_name,
        "active": True,
        "displayName": "Ann Lee",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "title": "Engineer",
        "emails": [{"type": "work", "value": user_name, "primary": True}],
        "phoneNumbers": [{"type": "mobile", "value": "+1 555 0199"}],
        ENT: {"department": "Marketing", "organization": "Blinq"},
    }
    body.update(over)
    return body


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def card_of(service: ScimService, user_name: str) -> dict[str, Any]:
    views = [v for v in service.product.cards("acme") if v.user_name == user_name]
    assert views, user_name
    return views[-1].to_dict()


def test_create_makes_a_locked_linked_card(service: ScimService, client: Client) -> None:
    # R3.1, R3.2, R3.3
    client("POST", "/Users", entra_body("ann@contoso.com"))
    card = card_of(service, "ann@contoso.com")
    assert card["fields"]["job_title"] == {
        "value": "Engineer",
        "locked": True,
        "linked": True,
        "source": "idp",
    }
    assert card["fields"]["company"]["value"] == "Blinq"
    assert card["active"] is True and card["template"] is None


def test_partial_payload_is_normal(service: ScimService, client: Client) -> None:
    # R3.1: admins delete mappings in the IdP
    assert client("POST", "/Users", {"userName": "min@contoso.com"}).status == 201
    assert set(card_of(service, "min@contoso.com")["fields"]) == set()


def test_template_rule_applied_once_at_provisioning(service: ScimService, client: Client) -> None:
    # R3.4, R7.2, R7.3, R4.2
    service.product.create_template("acme", "Brand", {"company": "Blinq Inc.", "logo": "b.png"})
    service.product.add_rule("acme", "Brand", 'department eq "Marketing" or department eq "Sales"')
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    card = card_of(service, "ann@contoso.com")
    assert card["template"] == "Brand"
    assert card["fields"]["company"] == {
        "value": "Blinq Inc.",
        "locked": True,
        "linked": True,
        "source": "template",
    }
    assert card["fields"]["logo"]["value"] == "b.png"
    # IdP updates do not override template fields (R7.3)...
    client(
        "PATCH",
        f"/Users/{user['id']}",
        ops({"op": "replace", "path": f"{ENT}:organization", "value": "Blinq Pty"}),
    )
    assert card_of(service, "ann@contoso.com")["fields"]["company"]["value"] == "Blinq Inc."
    # ...and templates are not re-evaluated on update (R4.2).
    client(
        "PATCH",
        f"/Users/{user['id']}",
        ops({"op": "replace", "path": f"{ENT}:department", "value": "R&D"}),
    )
    assert card_of(service, "ann@contoso.com")["template"] == "Brand"
    other = client("POST", "/Users", entra_body("bob@contoso.com", **{ENT: {"department": "R&D"}}))
    assert other.status == 201
    assert card_of(service, "bob@contoso.com")["template"] is None


def test_linked_fields_follow_put_and_patch(service: ScimService, client: Client) -> None:
    # R4.1, R4.3
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    client(
        "PATCH",
        f"/Users/{user['id']}",
        {
            "Operations": [
                {"op": "Replace", "path": "title", "value": "Lead"},
                {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 555 0100"},
                {"op": "replace", "value": {"name.givenName": "Annie"}},
            ]
        },
    )
    fields = card_of(service, "ann@contoso.com")["fields"]
    assert fields["job_title"]["value"] == "Lead"
    assert fields["office_phone"]["value"] == "+1 555 0100"
    assert fields["first_name"]["value"] == "Annie"
    current = client("GET", f"/Users/{user['id']}").json()
    current.pop("phoneNumbers")
    client("PUT", f"/Users/{user['id']}", current)
    fields = card_of(service, "ann@contoso.com")["fields"]
    assert "mobile_phone" not in fields and "office_phone" not in fields


def test_admin_and_owner_edits(service: ScimService, client: Client) -> None:
    # R8.1, R8.2, R8.3, R8.4
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    service.product.admin_edit("acme", "ann@contoso.com", "job_title", "Chief")
    service.product.unlock("acme", "ann@contoso.com", "department")
    with pytest.raises(WorkspaceError, match="locked"):
        service.product.owner_edit("acme", "ann@contoso.com", "company", "Mine")
    service.product.owner_edit("acme", "ann@contoso.com", "department", "Growth")
    client(
        "PATCH",
        f"/Users/{user['id']}",
        ops(
            {"op": "replace", "path": "title", "value": "Intern"},
            {"op": "replace", "path": f"{ENT}:department", "value": "Ops"},
        ),
    )
    fields = card_of(service, "ann@contoso.com")["fields"]
    assert fields["job_title"] == {
        "value": "Chief",
        "locked": True,
        "linked": False,
        "source": "admin",
    }
    assert fields["department"] == {
        "value": "Growth",
        "locked": False,
        "linked": False,
        "source": "owner",
    }
    actors = {(e.operation, e.actor) for e in service.product.log("acme")}
    assert {("card.update", "admin"), ("card.update", "owner"), ("patch", "idp")} <= actors


def test_template_edit_propagates(service: ScimService, client: Client) -> None:
    # R7.1
    service.product.create_template("acme", "Brand", {"company": "Blinq Inc."})
    service.product.add_rule("acme", "Brand", 'department eq "Marketing"')
    client("POST", "/Users", entra_body("ann@contoso.com"))
    client("POST", "/Users", entra_body("bob@contoso.com"))
    service.product.admin_edit("acme", "bob@contoso.com", "company", "Bob Co")
    service.product.set_template("acme", "Brand", {"company": "Blinq Incorporated"})
    assert card_of(service, "ann@contoso.com")["fields"]["company"]["value"] == (
        "Blinq Incorporated"
    )
    assert card_of(service, "bob@contoso.com")["fields"]["company"]["value"] == "Bob Co"


def test_bad_rule_refused_when_saved(service: ScimService, client: Client) -> None:
    # R7.4
    service.product.create_template("acme", "Brand", {})
    with pytest.raises(Exception) as info:
        service.product.add_rule("acme", "Brand", 'department eq "Sales" or')
    assert "position" in str(info.value) or "end" in str(info.value)
    assert service.product.rules("acme") == []


def test_deactivation_frees_the_seat(service: ScimService, client: Client) -> None:
    # R5.1
    a = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    client("POST", "/Users", entra_body("bob@contoso.com"))
    assert service.product.seats("acme") == 2
    client("PATCH", f"/Users/{a['id']}", ops({"op": "Replace", "path": "active", "value": "False"}))
    assert service.product.seats("acme") == 1
    assert card_of(service, "ann@contoso.com")["active"] is False
    assert client("GET", f"/Users/{a['id']}").json()["active"] is False
    client("PATCH", f"/Users/{a['id']}", ops({"op": "replace", "value": {"active": True}}))
    assert service.product.seats("acme") == 2
    assert card_of(service, "ann@contoso.com")["active"] is True


def test_delete_keeps_person_inactive_with_card(service: ScimService, client: Client) -> None:
    # R5.2
    a = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    assert client("DELETE", f"/Users/{a['id']}").status == 204
    assert client("GET", f"/Users/{a['id']}").status == 404
    assert service.product.seats("acme") == 0
    views = service.product.cards("acme")
    assert [(v.user_name, v.active, v.deprovisioned) for v in views] == [
        ("ann@contoso.com", False, True)
    ]
    assert views[0].card.fields["job_title"].value == "Engineer"
    again = client("POST", "/Users", entra_body("ann@contoso.com"))
    assert again.status == 201 and again.json()["id"] != a["id"]
    assert service.product.seats("acme") == 1


def test_activation_email_exactly_once(service: ScimService, client: Client) -> None:
    # R3.5, R3.6
    body = entra_body("ann@contoso.com")
    assert client("POST", "/Users", body).status == 201
    assert client("POST", "/Users", body).status == 409  # the IdP retries
    outbox = service.product.outbox("acme")
    assert [(m.to, m.kind, m.status) for m in outbox] == [
        ("ann@contoso.com", "activation", "pending")
    ]
    mailer = RecordingMailer()
    report = deliver_pending(service.storage, mailer, service.runtime)
    assert report.sent == 1 and [m[0] for m in mailer.sent] == ["ann@contoso.com"]
    assert deliver_pending(service.storage, mailer, service.runtime).sent == 0
    assert service.product.outbox("acme")[0].status == "sent"


def test_activation_off_then_manual(service: ScimService, client: Client) -> None:
    # R3.5
    service.product.update_settings("acme", activation_email=False)
    client("POST", "/Users", entra_body("ann@contoso.com"))
    client("POST", "/Users", entra_body("bob@contoso.com"))
    assert service.product.outbox("acme") == []
    queued = service.product.send_activation("acme", ["ann@contoso.com", "bob@contoso.com"])
    assert sorted(m.to for m in queued) == ["ann@contoso.com", "bob@contoso.com"]


def test_failed_create_leaves_nothing(service: ScimService, client: Client) -> None:
    # R3.6: user, card and mail are one unit
    client("POST", "/Users", entra_body("ann@contoso.com"))
    r = client("POST", "/Users", entra_body("ANN@contoso.com"))
    assert r.status == 409
    assert len(service.product.cards("acme")) == 1
    assert len(service.product.outbox("acme")) == 1


def test_noop_sync_changes_nothing(service: ScimService, client: Client) -> None:
    # R4.4
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    before_log = len(service.product.log("acme"))
    before_card = card_of(service, "ann@contoso.com")
    r = client("PUT", f"/Users/{user['id']}", user)
    assert r.json()["meta"]["version"] == user["meta"]["version"]
    client(
        "PATCH",
        f"/Users/{user['id']}",
        ops({"op": "replace", "path": "title", "value": "Engineer"}),
    )
    assert len(service.product.log("acme")) == before_log
    assert card_of(service, "ann@contoso.com") == before_card
    assert len(service.product.outbox("acme")) == 1


def test_log_records_outcomes_without_secrets(
    service: ScimService, client: Client, token: str
) -> None:
    # R9.2
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    client("POST", "/Users", entra_body("ann@contoso.com"))
    client("PATCH", f"/Users/{user['id']}", ops({"op": "bogus"}))
    entries = service.product.log("acme")
    assert [(e.operation, e.status) for e in entries] == [
        ("patch", 400),
        ("create", 409),
        ("create", 201),
        ("token.generate", 200),  # the admin action that made the test's token
    ]
    assert entries[0].resource_id == user["id"]
    assert "bogus" in entries[0].detail
    token_id = service.workspaces.list_tokens("acme")[0].id
    assert all(e.token_id == token_id for e in entries)
    secret = token.split("_", 2)[2]
    assert all(secret not in repr(e) for e in entries)


def test_one_write_records_one_instant(service: ScimService, client: Client) -> None:
    # The user, the person, the mail, the log entry and the token's use all carry the write's
    # instant (to the millisecond, as meta shows it), though the test clock ticks per call.
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    created = parse_utc_datetime(user["meta"]["created"])
    assert created is not None and user["meta"]["lastModified"] == user["meta"]["created"]
    workspace = service.workspaces.get("acme")

    def person_times() -> tuple[Any, Any]:
        with service.storage.users(workspace.id) as store:
            person = store.get_person(user["id"])
        assert person is not None
        return person.created_at, person.updated_at

    (mail,) = service.product.outbox("acme")
    entry, generated = service.product.log("acme")
    assert generated.operation == "token.generate"
    (token,) = service.workspaces.list_tokens("acme")
    assert person_times() == (created, created)
    assert mail.created_at == mail.next_attempt_at == entry.at == created
    assert token.last_used_at == created

    retitled = client(
        "PATCH", f"/Users/{user['id']}", ops({"op": "replace", "path": "title", "value": "CTO"})
    ).json()
    modified = parse_utc_datetime(retitled["meta"]["lastModified"])
    assert modified is not None and modified > created
    assert retitled["meta"]["created"] == user["meta"]["created"]
    assert person_times() == (created, modified)
    assert service.product.log("acme")[0].at == modified


def test_events_after_commit(service: ScimService, client: Client) -> None:
    # host events
    seen: list[Event] = []
    service.subscribe(seen.append)
    user = client("POST", "/Users", entra_body("ann@contoso.com")).json()
    client(
        "PATCH", f"/Users/{user['id']}", ops({"op": "replace", "path": "active", "value": False})
    )
    client("POST", "/Users", entra_body("ann@contoso.com"))  # 409: no event
    client("DELETE", f"/Users/{user['id']}")
    kinds = [e.kind for e in seen]
    assert kinds == [
        "user.provisioned",
        "mail.queued",
        "user.updated",
        "user.deprovisioned",
        "card.changed",
        "user.deleted",
    ]


def test_failed_searches_are_logged_as_search(service: ScimService, client: Client) -> None:
    # R9.2
    client("POST", "/.search", {"filter": "userName eq"})
    client("POST", "/Users/.search", {"count": "x"})
    client("GET", "/Users", query={"filter": "bad ("})
    entries = service.product.log("acme")
    assert [(e.operation, e.status, e.resource_id) for e in entries] == [
        ("list", 400, None),
        ("search", 400, None),
        ("search", 400, None),
        ("token.generate", 200, None),  # the admin action that made the test's token
    ]


def test_concurrent_patches_of_one_user_all_apply(service: ScimService, client: Client) -> None:
    # R4.1, R9.1: an IdP's parallel workers, or a retry overlapping the original request. No
    # If-Match was sent, so no 412: every PATCH applies, in some order, and none is lost.
    uid = client("POST", "/Users", entra_body("race@contoso.com")).json()["id"]
    n = 6
    statuses: list[int] = []

    def add_phone(i: int) -> None:
        phone = {"type": "other", "value": f"+1 555 010{i}"}
        body = ops({"op": "add", "path": "phoneNumbers", "value": [phone]})
        statuses.append(client("PATCH", f"/Users/{uid}", body).status)

    _race(*(lambda i=i: add_phone(i) for i in range(n)))
    assert statuses == [200] * n
    doc = client("GET", f"/Users/{uid}").json()
    others = {p["value"] for p in doc["phoneNumbers"] if p["type"] == "other"}
    assert others == {f"+1 555 010{i}" for i in range(n)}
    assert doc["meta"]["version"] == f'W/"{1 + n}"'


def _race(*actions: Any) -> None:
    """Run ``actions`` in threads released at the same moment; re-raise the first failure."""
    import threading

    start = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Any) -> None:
        start.wait()
        try:
            action()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _retitle(client: Client, uid: str, title: str) -> None:
    body = ops({"op": "replace", "path": "title", "value": title})
    assert client("PATCH", f"/Users/{uid}", body).status == 200


def test_admin_card_edit_racing_an_idp_update_loses_neither(
    service: ScimService, client: Client
) -> None:
    # R4.1 and R8.1 at the same moment: the admin's edit of one field and the IdP's change of
    # another (linked) field both end up on the card.
    uid = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    for r in range(8):
        _race(
            lambda r=r: service.product.admin_edit(
                "acme", "ann@contoso.com", "department", f"Dept {r}"
            ),
            lambda r=r: _retitle(client, uid, f"Title {r}"),
        )
        fields = card_of(service, "ann@contoso.com")["fields"]
        assert fields["job_title"]["value"] == f"Title {r}", r
        assert fields["department"]["value"] == f"Dept {r}", r
        assert fields["department"]["linked"] is False


def test_template_edit_racing_an_idp_update_loses_neither(
    service: ScimService, client: Client
) -> None:
    # R7.1 and R4.1 at the same moment: the template's new value and the IdP's change of a
    # linked field both end up on the card.
    service.product.create_template("acme", "Brand", {"website": "w"})
    service.product.add_rule("acme", "Brand", 'department eq "Marketing"')
    uid = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    for r in range(8):
        _race(
            lambda r=r: service.product.set_template("acme", "Brand", {"website": f"w{r}"}),
            lambda r=r: _retitle(client, uid, f"Title {r}"),
        )
        fields = card_of(service, "ann@contoso.com")["fields"]
        assert fields["job_title"]["value"] == f"Title {r}", r
        assert fields["website"]["value"] == f"w{r}", r
