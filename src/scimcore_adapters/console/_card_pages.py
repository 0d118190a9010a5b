"""Team Cards, a card's page, and Templates."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.cards import known_fields
from scimcore.images import image_ref
from scimcore.product import CardView
from scimcore.templates import Template
from scimcore.workspaces import WorkspaceError

from ._common import current_admin, done, failed, form_list
from ._images import image_response, stored_image

__all__ = ["register_card_pages"]

PAGE_SIZE = 50
STATES = {"active": "Active", "inactive": "Inactive", "deprovisioned": "Deprovisioned"}

#: What the card page's lock buttons and value forms ask for, and what they say once done.
_FIELD_ACTIONS = {
    "save": "Saved: the field no longer follows the IdP.",
    "unlock": "Unlocked: the card owner may edit it, and it no longer follows the IdP.",
    "lock": "Locked: the card owner can no longer change it.",
}


def _cards_updated(count: int) -> str:
    return f"{count} card{'' if count == 1 else 's'} updated"


def register_card_pages(bp: Blueprint, service: ScimService) -> None:
    """Add Team Cards, the card page and Templates to ``bp``."""
    product = service.product

    def find(workspace: str, person_id: str) -> CardView:
        """The card of ``person_id`` in this workspace, else 404 (another workspace's too)."""
        try:
            return product.card(workspace, person_id)
        except WorkspaceError:
            abort(404)

    def field_names(workspace: str, present: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """The labels of the workspace's card fields, and the keys to show: every field the
        workspace knows (R6, the photo, the template-only fields), then any other present."""
        mapping = product.mapping(workspace)
        known = known_fields(mapping)
        labels = {k: k.replace("_", " ").capitalize() for k in known}
        labels.update({r.key: r.label for r in mapping.rules})
        return labels, [*known, *sorted(set(present) - set(known))]

    def find_template(workspace: str, name: str) -> Template:
        found = next((t for t in product.templates(workspace) if t.name == name), None)
        if found is None:
            abort(404)
        return found

    @bp.get("/<workspace>/cards")
    def cards(workspace: str) -> ResponseReturnValue:
        search = request.args.get("q", "").strip()[:200]
        wanted = request.args.get("state", "")
        state = wanted if wanted in STATES else None
        offset = max(request.args.get("offset", 0, type=int) or 0, 0)
        groups = product.groups(workspace)
        group = request.args.get("group", "")
        chosen = next((g for g in groups if g.id == group), None)
        page = product.people(
            workspace,
            search=search,
            state=state,
            offset=offset,
            limit=PAGE_SIZE,
            group=chosen.id if chosen else None,
        )
        return render_template(
            "console/cards.html",
            workspace=workspace,
            people=page.items,
            total=page.total,
            offset=offset,
            page_size=PAGE_SIZE,
            search=search,
            wanted=state or "",
            states=STATES,
            groups=groups,
            group=chosen,
            seats=product.seats(workspace),
        )

    @bp.post("/<workspace>/cards/activation")
    def send_activation(workspace: str) -> ResponseReturnValue:
        chosen = [find(workspace, pid).person_id for pid in form_list("person")]
        if not chosen:
            return failed("Select at least one person.", ".cards", workspace=workspace)
        try:
            queued = product.send_activation(
                workspace, person_ids=chosen, actor=current_admin().email
            )
        except WorkspaceError as exc:
            return failed(f"No e-mail sent: {exc}", ".cards", workspace=workspace)
        noun = "e-mail" if len(queued) == 1 else "e-mails"
        return done(f"{len(queued)} activation {noun} queued.", ".cards", workspace=workspace)

    @bp.get("/<workspace>/cards/<person_id>")
    def card(workspace: str, person_id: str) -> ResponseReturnValue:
        view = find(workspace, person_id)
        labels, keys = field_names(workspace, view.card.fields)
        return render_template(
            "console/card.html",
            workspace=workspace,
            view=view,
            rows=[(k, labels.get(k, k), view.card.fields.get(k)) for k in keys],
            templates=product.templates(workspace),
        )

    @bp.post("/<workspace>/cards/<person_id>/fields/<key>")
    def card_field(workspace: str, person_id: str, key: str) -> ResponseReturnValue:
        find(workspace, person_id)
        action = request.form.get("action", "save")
        if action not in _FIELD_ACTIONS:
            abort(400)
        back = {"workspace": workspace, "person_id": person_id}
        who = current_admin().email
        try:
            if action == "unlock":
                product.unlock(workspace, None, key, person_id=person_id, actor=who)
            elif action == "lock":
                product.lock(workspace, None, key, person_id=person_id, actor=who)
            else:
                value = request.form.get("value", "")
                product.admin_edit(workspace, None, key, value, person_id=person_id, actor=who)
        except WorkspaceError as exc:
            return failed(str(exc), ".card", **back)
        return done(_FIELD_ACTIONS[action], ".card", **back)

    @bp.post("/<workspace>/cards/<person_id>/template")
    def assign_template(workspace: str, person_id: str) -> ResponseReturnValue:
        find(workspace, person_id)
        name = request.form.get("template", "") or None
        back = {"workspace": workspace, "person_id": person_id}
        who = current_admin().email
        try:
            product.assign_template(workspace, None, name, person_id=person_id, actor=who)
        except WorkspaceError as exc:
            return failed(str(exc), ".card", **back)
        message = f"Template {name} assigned." if name else "The card has no template now."
        return done(message, ".card", **back)

    @bp.post("/<workspace>/cards/<person_id>/photo")
    def card_photo(workspace: str, person_id: str) -> ResponseReturnValue:
        find(workspace, person_id)
        back = {"workspace": workspace, "person_id": person_id}
        who = current_admin().email
        try:
            image_id = stored_image(product, workspace)
            product.set_photo(workspace, None, image_id, person_id=person_id, actor=who)
        except WorkspaceError as exc:
            return failed(str(exc), ".card", **back)
        return done("Photo saved.", ".card", **back)

    @bp.get("/<workspace>/images/<image_id>")
    def image(workspace: str, image_id: str) -> ResponseReturnValue:
        return image_response(product, workspace, image_id)

    @bp.get("/<workspace>/templates")
    def templates(workspace: str) -> ResponseReturnValue:
        return render_template(
            "console/templates.html", workspace=workspace, templates=product.templates(workspace)
        )

    @bp.post("/<workspace>/templates")
    def create_template(workspace: str) -> ResponseReturnValue:
        name = request.form.get("name", "").strip()
        try:
            product.create_template(workspace, name, {}, actor=current_admin().email)
        except WorkspaceError as exc:
            return failed(str(exc), ".templates", workspace=workspace)
        return done(f"Template {name} created.", ".template", workspace=workspace, name=name)

    @bp.get("/<workspace>/templates/<path:name>")
    def template(workspace: str, name: str) -> ResponseReturnValue:
        fields = dict(find_template(workspace, name).fields)
        labels, keys = field_names(workspace, fields)
        return render_template(
            "console/template.html",
            workspace=workspace,
            name=name,
            fields=fields,
            labels=labels,
            keys=keys,
        )

    @bp.post("/<workspace>/templates/<path:name>")
    def save_template(workspace: str, name: str) -> ResponseReturnValue:
        old = find_template(workspace, name).fields
        fields = {k[6:]: v.strip() for k, v in request.form.items() if k.startswith("field:")}
        return save_fields(
            workspace, name, {k: v for k, v in fields.items() if old.get(k, "") != v}
        )

    def save_fields(workspace: str, name: str, changed: dict[str, str]) -> ResponseReturnValue:
        try:
            update = product.set_template(workspace, name, changed, actor=current_admin().email)
        except WorkspaceError as exc:
            return failed(str(exc), ".template", workspace=workspace, name=name)
        message = f"Template saved: {_cards_updated(update.cards_updated)}."
        return done(message, ".template", workspace=workspace, name=name)

    @bp.post("/<workspace>/templates/<path:name>/logo")
    def template_logo(workspace: str, name: str) -> ResponseReturnValue:
        find_template(workspace, name)
        try:
            image_id = stored_image(product, workspace)
        except WorkspaceError as exc:
            return failed(str(exc), ".template", workspace=workspace, name=name)
        return save_fields(workspace, name, {"logo": image_ref(image_id)})

    @bp.post("/<workspace>/templates/<path:name>/delete")
    def delete_template(workspace: str, name: str) -> ResponseReturnValue:
        find_template(workspace, name)
        try:
            count = product.delete_template(workspace, name, actor=current_admin().email)
        except WorkspaceError as exc:
            return failed(str(exc), ".template", workspace=workspace, name=name)
        message = f"Template {name} deleted: {_cards_updated(count)}."
        return done(message, ".templates", workspace=workspace)
