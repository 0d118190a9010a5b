"""The console's part of the storage contract (issue 17): accounts, tokens and tombstones,
people pages, images and activation links, through the Python API over each backend.

:class:`ConsoleContract` is a base of :class:`~scimcore.testing.StorageContract`, so every
backend (memory, SQLite, PostgreSQL) runs it with its ``storage`` fixture.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from datetime import datetime, timedelta

import pytest

from scimcore import Runtime, ScimRequest, ScimResponse, ScimService, Storage, WorkspaceError
from scimcore.activation import ACTIVATION_TTL, ActivationError, issue_link
from scimcore.images import MAX_IMAGE_BYTES, ImageError
from scimcore.outbox import RecordingMailer, deliver_pending
from scimcore.storage import TOKEN_DEAD, Image

T0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
BASE = "https://scim.example/scim/v2"
ADMIN = "admin@acme.example"


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def console_service(storage: Storage) -> tuple[ScimService, Clock]:
    """A service over ``storage`` with a hand-moved clock and a workspace ``acme``."""
    clock = Clock()
    ids = itertools.count(1)
    runtime = Runtime(
        now=clock.now,
        new_id=lambda: f"{next(ids):032x}",
        new_secret=lambda: f"secret-{next(ids):032d}",
    )
    service = ScimService(storage, runtime=runtime)
    service.workspaces.create("acme", ADMIN)
    return service, clock


def call(
    service: ScimService, token: str, method: str = "GET", body: object = None, path: str = "/Users"
) -> ScimResponse:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    data = json.dumps(body).encode() if body is not None else b""
    return service.handle(ScimRequest(method, path, {}, headers, data, base_url=BASE))


DEACTIVATE = {"Operations": [{"op": "replace", "path": "active", "value": False}]}


def new_user(name: str) -> dict[str, object]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


class ConsoleContract:
    """Tests every backend inherits (see the module documentation)."""

    # --- tokens and tombstones (R2.3, R2.5, R9.2) ---------------------------------------------

    def test_token_orphaned_by_deactivation_stays_dead_when_admin_is_added_again(
        self, storage: Storage
    ) -> None:
        # R2.5
        service, _ = console_service(storage)
        api = service.workspaces
        token = api.generate_token("acme", ADMIN, "entra").plaintext
        assert call(service, token).status == 200
        api.deactivate_admin("acme", ADMIN)
        assert call(service, token).status == 401
        api.add_admin("acme", ADMIN)
        assert call(service, token).status == 401
        assert call(service, token, "POST", new_user("ann@acme.example")).status == 401
        (listed,) = api.list_tokens("acme")
        assert (listed.state, listed.dead_reason) == (TOKEN_DEAD, "admin deactivated")
        fresh = api.generate_token("acme", ADMIN, "new").plaintext
        assert call(service, fresh).status == 200
        assert [t.state for t in api.list_tokens("acme")] == ["dead", "active"]

    def test_dead_tokens_can_be_deleted_and_are_then_not_listed(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        api = service.workspaces
        api.add_admin("acme", "it@acme.example")
        dead = api.generate_token("acme", "it@acme.example", "old").record.id
        api.deactivate_admin("acme", "it@acme.example")
        live = api.generate_token("acme", ADMIN).record.id
        assert [t.id for t in api.list_tokens("acme")] == [dead, live]
        api.delete_token("acme", dead)
        assert [t.id for t in api.list_tokens("acme")] == [live]
        with pytest.raises(WorkspaceError):
            api.delete_token("acme", dead)  # deleted already: nothing listed to delete

    def test_refused_requests_with_dead_or_deleted_tokens_are_logged_once_a_minute(
        self, storage: Storage
    ) -> None:
        # R9.2: the admin learns why provisioning stopped
        service, clock = console_service(storage)
        api = service.workspaces
        deleted = api.generate_token("acme", ADMIN, "entra")
        api.delete_token("acme", deleted.record.id)
        api.add_admin("acme", "it@acme.example")
        orphan = api.generate_token("acme", "it@acme.example", "okta")
        api.deactivate_admin("acme", "it@acme.example")

        def refusals() -> list[tuple[str | None, str]]:
            return [
                (e.token_id, e.detail)
                for e in service.product.log("acme", 100)
                if e.operation == "auth.refused" and e.status == 401
            ]

        assert call(service, deleted.plaintext).status == 401
        assert call(service, deleted.plaintext, "POST", new_user("a@acme.example")).status == 401
        clock.advance(seconds=30)
        assert call(service, deleted.plaintext).status == 401
        assert [t for t, _ in refusals()] == [deleted.record.id]
        clock.advance(seconds=31)
        assert call(service, orphan.plaintext, "POST", new_user("b@acme.example")).status == 401
        assert call(service, deleted.plaintext).status == 401
        logged = refusals()
        assert [t for t, _ in logged] == [deleted.record.id, orphan.record.id, deleted.record.id]
        assert "deleted" in logged[0][1] and "it@acme.example" in logged[1][1]
        assert all("secret" not in detail for _, detail in logged)
        # a wrong secret with a buried token's id is not attributed to the workspace
        wrong = f"scim_{deleted.record.id}_{'x' * 40}"
        clock.advance(minutes=5)
        assert call(service, wrong).status == 401
        assert len(refusals()) == 3
        # another workspace's log sees nothing
        service.workspaces.create("other", "o@other.example")
        assert [e for e in service.product.log("other", 100) if e.status == 401] == []

    def test_admin_actions_are_logged_with_their_actor(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        api = service.workspaces
        token = api.generate_token("acme", ADMIN, "entra")
        api.delete_token("acme", token.record.id, actor=ADMIN)
        api.add_admin("acme", "it@acme.example", actor=ADMIN)
        api.add_admin("acme", "it@acme.example", actor=ADMIN)  # already active: no entry
        api.set_password_hash("acme", "it@acme.example", "$argon2id$fake", actor=ADMIN)
        api.deactivate_admin("acme", "it@acme.example", actor=ADMIN)
        entries = [(e.operation, e.actor) for e in reversed(service.product.log("acme", 100))]
        assert entries == [
            ("token.generate", ADMIN),
            ("token.delete", ADMIN),
            ("admin.add", ADMIN),
            ("admin.password", ADMIN),
            ("admin.deactivate", ADMIN),
        ]
        assert all(
            token.plaintext.split("_")[-1] not in e.detail for e in service.product.log("acme", 100)
        )

    def test_admins_listed_and_password_hash_kept(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        api = service.workspaces
        api.add_admin("acme", "Bea@Acme.example")
        assert api.get_admin("acme", "bea@acme.example") is not None
        assert api.get_admin("acme", "nobody@acme.example") is None
        api.set_password_hash("acme", "BEA@acme.example", "$argon2id$v=19$hash")
        api.deactivate_admin("acme", "bea@acme.example")
        listed = [(a.email, a.active, a.password_hash) for a in api.list_admins("acme")]
        assert listed == [
            (ADMIN, True, None),
            ("bea@acme.example", False, "$argon2id$v=19$hash"),
        ]
        api.add_admin("acme", "bea@acme.example")
        admin = api.get_admin("acme", "bea@acme.example")
        assert admin is not None and admin.active and admin.password_hash == "$argon2id$v=19$hash"
        api.set_password_hash("acme", "bea@acme.example", None)
        admin = api.get_admin("acme", "bea@acme.example")
        assert admin is not None and admin.password_hash is None
        service.workspaces.create("other", "o@other.example")
        assert [a.email for a in api.list_admins("other")] == ["o@other.example"]
        with pytest.raises(WorkspaceError):
            api.set_password_hash("other", "bea@acme.example", "x")

    # --- Team Cards: people pages, cards by id (issue 17) --------------------------------------

    def test_people_pages_search_and_states(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        names = ["dave@acme.example", "Ann@acme.example", "bob@acme.example", "carl@acme.example"]
        ids = {}
        for n in names:
            body = {**new_user(n), "displayName": f"Zed {n[:3].title()}"}
            if n.startswith("carl"):
                body["emails"] = [{"type": "work", "value": "boss@corp.example", "primary": True}]
            ids[n.lower()] = call(service, token, "POST", body).json()["id"]
        assert (
            call(service, token, "PATCH", DEACTIVATE, f"/Users/{ids['bob@acme.example']}").status
            == 200
        )
        assert (
            call(service, token, "DELETE", path=f"/Users/{ids['dave@acme.example']}").status == 204
        )
        p = service.product

        def names_of(**kw: object) -> tuple[int, list[str]]:
            page = p.people("acme", **kw)  # type: ignore[arg-type]
            return page.total, [v.user_name for v in page.items]

        everyone = [
            "Ann@acme.example",
            "bob@acme.example",
            "carl@acme.example",
            "dave@acme.example",
        ]
        assert names_of() == (4, everyone)
        assert names_of(offset=1, limit=2) == (4, everyone[1:3])
        assert names_of(offset=4) == (4, [])
        assert names_of(state="active") == (2, ["Ann@acme.example", "carl@acme.example"])
        assert names_of(state="inactive") == (1, ["bob@acme.example"])
        assert names_of(state="deprovisioned") == (1, ["dave@acme.example"])
        assert names_of(search="AN") == (1, ["Ann@acme.example"])  # user name prefix
        assert names_of(search="BOSS@") == (1, ["carl@acme.example"])  # e-mail prefix
        assert names_of(search="zed b") == (1, ["bob@acme.example"])  # card name prefix
        assert names_of(search="zed", state="active", limit=1) == (2, ["Ann@acme.example"])
        assert names_of(search="acme") == (0, [])  # a prefix, not a substring
        view = p.people("acme", search="carl").items[0]
        assert (view.person_id, view.email, view.state) == (
            ids["carl@acme.example"],
            "boss@corp.example",
            "active",
        )
        assert p.card("acme", ids["dave@acme.example"]).state == "deprovisioned"
        with pytest.raises(WorkspaceError):
            p.people("acme", state="gone")
        service.workspaces.create("other", "o@other.example")
        assert p.people("other").total == 0
        with pytest.raises(WorkspaceError):
            p.card("other", ids["carl@acme.example"])  # R1.1

    def test_cards_are_addressed_by_person_id_when_user_names_repeat(
        self, storage: Storage
    ) -> None:
        # R5.2: after a SCIM DELETE the userName can come back as a new person
        service, _ = console_service(storage)
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        first = call(service, token, "POST", new_user("ann@acme.example")).json()["id"]
        assert call(service, token, "DELETE", path=f"/Users/{first}").status == 204
        second = call(service, token, "POST", new_user("ann@acme.example")).json()["id"]
        p = service.product
        p.admin_edit("acme", None, "job_title", "Old", person_id=first)
        p.admin_edit("acme", "ann@acme.example", "job_title", "New")  # the live one
        assert p.card("acme", first).card.fields["job_title"].value == "Old"
        assert p.card("acme", second).card.fields["job_title"].value == "New"
        assert [v.user_name for v in p.people("acme").items] == ["ann@acme.example"] * 2

    # --- images: photos (R8.5) and logos ------------------------------------------------------

    def test_images_are_checked_stored_and_kept_per_workspace(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        p = service.product
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 64
        png_id = p.store_image("acme", "image/png", png)
        webp_id = p.store_image("acme", None, webp)
        jpeg_id = p.store_image("acme", "image/jpg", b"\xff\xd8\xff\xe0" + b"\x01" * 10)
        stored = p.image("acme", png_id)
        assert stored is not None and (stored.content_type, stored.data) == ("image/png", png)
        assert p.image("acme", webp_id) == Image(webp_id, "image/webp", webp, T0)
        image = p.image("acme", jpeg_id)
        assert image is not None and image.content_type == "image/jpeg"
        service.workspaces.create("other", "o@other.example")
        assert p.image("other", png_id) is None  # R1.1
        assert p.image("acme", "nope") is None
        refused = [
            ("image/png", b""),
            ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            ("image/png", b"GIF89a" + b"\x00" * 10),  # declared PNG, is a GIF
            ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_IMAGE_BYTES),  # 2 MiB + 8 bytes
        ]
        for content_type, data in refused:
            with pytest.raises(ImageError):
                p.store_image("acme", content_type, data)
        assert p.store_image("acme", "image/png", png[:8] + b"\x00" * (MAX_IMAGE_BYTES - 8))

    def test_photo_set_by_admin_or_owner(self, storage: Storage) -> None:
        # R8.5: Entra sends no photo; the admin or the owner uploads one (R8.3 still holds)
        service, _ = console_service(storage)
        p = service.product
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        call(service, token, "POST", new_user("ann@acme.example"))
        pid = call(service, token, "POST", new_user("bob@acme.example")).json()["id"]
        gif = p.store_image("acme", "image/gif", b"GIF89a" + b"\x00" * 20)
        card = p.set_photo("acme", None, gif, person_id=pid, actor="owner")
        assert card.fields["photo"].value == f"image:{gif}"
        assert (card.fields["photo"].locked, card.fields["photo"].source.value) == (False, "owner")
        p.lock("acme", None, "photo", person_id=pid)
        with pytest.raises(WorkspaceError, match="locked"):
            p.set_photo("acme", None, gif, person_id=pid, actor="owner")
        card = p.set_photo("acme", "ann@acme.example", gif)  # the admin
        assert (card.fields["photo"].locked, card.fields["photo"].linked) == (True, False)
        with pytest.raises(WorkspaceError, match="no image"):
            p.set_photo("acme", "ann@acme.example", "0" * 32)
        service.workspaces.create("other", "o@other.example")
        other = p.store_image("other", "image/gif", b"GIF89a" + b"\x01" * 20)
        with pytest.raises(WorkspaceError, match="no image"):  # another workspace's image
            p.set_photo("acme", "ann@acme.example", other)

    # --- activation links (R3.7) ----------------------------------------------------------------

    def test_activation_link_rendered_at_delivery_single_use_and_expiring(
        self, storage: Storage
    ) -> None:
        service, clock = console_service(storage)
        p = service.product
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        pid = call(service, token, "POST", new_user("ann@acme.example")).json()["id"]
        mailer = RecordingMailer()
        report = deliver_pending(
            storage, mailer, service.runtime, base_url="https://cards.example/"
        )
        assert report.sent == 1
        ((_, _, body),) = mailer.sent
        link = re.search(r"https://cards\.example/activate/(\S+)", body)
        assert link is not None
        secret = link.group(1)
        (queued,) = p.outbox("acme")
        assert secret not in queued.body and "activate/" not in queued.body
        assert storage.get_activation_link(secret) is None  # stored hashed only
        view = p.activation_status(secret)
        assert (view.workspace_slug, view.person_id, view.card.user_name) == (
            "acme",
            pid,
            "ann@acme.example",
        )
        assert view.expires_at == T0 + ACTIVATION_TTL
        assert p.activation_status(secret).person_id == pid  # looking does not use it
        assert p.card("acme", pid).activated_at is None
        clock.advance(hours=1)
        activated = p.activate(secret)
        assert activated.card.activated_at == T0 + timedelta(hours=1)
        assert p.card("acme", pid).activated_at == T0 + timedelta(hours=1)
        for use in (p.activate, p.activation_status):
            with pytest.raises(ActivationError) as refused:
                use(secret)
            assert refused.value.reason == "used"
        with pytest.raises(ActivationError) as refused:
            p.activate("not-a-token")
        assert refused.value.reason == "unknown"
        # a resend: a new link; an older unused link keeps working until it expires
        p.send_activation("acme", ["ann@acme.example"])
        p.send_activation("acme", person_ids=[pid])
        mailer.sent.clear()
        assert (
            deliver_pending(storage, mailer, service.runtime, base_url="https://c.example").sent
            == 2
        )
        first, second = (re.findall(r"/activate/(\S+)", b)[0] for _, _, b in mailer.sent)
        assert first != second
        clock.advance(days=1)
        again = p.activate(second)  # activated already: reaches the card again
        assert again.card.activated_at == T0 + timedelta(hours=1)  # the first activation
        clock.at = T0 + timedelta(hours=1) + ACTIVATION_TTL
        with pytest.raises(ActivationError) as refused:
            p.activate(first)
        assert refused.value.reason == "expired"
        entries = service.product.log("acme", 100)
        assert [e.actor for e in entries if e.operation == "activation.activate"] == ["owner"] * 2
        assert all(s not in repr(entries) for s in (secret, first, second))

    def test_activation_links_of_inactive_people_are_refused(self, storage: Storage) -> None:
        service, _ = console_service(storage)
        p = service.product
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        pid = call(service, token, "POST", new_user("ann@acme.example")).json()["id"]
        mailer = RecordingMailer()
        deliver_pending(storage, mailer, service.runtime, base_url="https://c.example")
        secret = re.findall(r"/activate/(\S+)", mailer.sent[0][2])[0]
        assert call(service, token, "DELETE", path=f"/Users/{pid}").status == 204
        for use in (p.activate, p.activation_status):
            with pytest.raises(ActivationError) as refused:
                use(secret)
            assert refused.value.reason == "inactive"
        assert p.card("acme", pid).activated_at is None
        # a mail queued before the deprovisioning is not sent with a link
        p2 = call(service, token, "POST", new_user("bob@acme.example")).json()["id"]
        assert call(service, token, "PATCH", DEACTIVATE, f"/Users/{p2}").status == 200
        mailer.sent.clear()
        report = deliver_pending(storage, mailer, service.runtime, base_url="https://c.example")
        assert (report.sent, mailer.sent) == (0, [])

    def test_an_activation_link_used_twice_at_once_works_once(self, storage: Storage) -> None:
        # R3.7 single use, whatever the timing
        service, _ = console_service(storage)
        token = service.workspaces.generate_token("acme", ADMIN).plaintext
        pid = call(service, token, "POST", new_user("ann@acme.example")).json()["id"]
        secret = issue_link(storage, service.runtime, service.workspaces.get("acme").id, pid, "h:")
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def use() -> None:
            barrier.wait()
            try:
                service.product.activate(secret.rsplit("/", 1)[1])
                outcomes.append("ok")
            except ActivationError as exc:
                outcomes.append(exc.reason)

        threads = [threading.Thread(target=use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["ok", "used", "used", "used"]
