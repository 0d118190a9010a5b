"""Team Cards, a card's page, and Templates."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.product import CardView
from scimcore.workspaces import WorkspaceError

from ._common import done, failed, form_list

__all__ = ["register_card_pages"]

PAGE_SIZE = 50
STATES = {"active": "Active", "inactive": "Inactive", "deprovisioned": "Deprovisioned"}


def state(view: CardView) -> str:
    """``active``, ``inactive`` or ``deprovisioned`` (R5.1, R5.2)."""
    if view.deprovisioned:
        return "deprovisioned"
    return "active" if view.active else "inactive"


def register_card_pages(bp: Blueprint, service: ScimService) -> None:
    """Add Team Cards, the card page and Templates to ``bp``."""
    product = service.product

    def find(workspace: str, person_id: str) -> CardView:
        view = next((c for c in product.cards(workspace) if c.user_id == person_id), None)
        if view is None:
            abort(404)
        return view

    @bp.get("/<workspace>/cards")
    def cards(workspace: str) -> ResponseReturnValue:
        search = request.args.get("q", "").strip()
        wanted = request.args.get("state", "")
        offset = max(request.args.get("offset", 0, type=int) or 0, 0)
        folded = search.casefold()
        matching = [
            c
            for c in product.cards(workspace)
            if (not wanted or state(c) == wanted)
            and (
                not folded
                or folded in c.user_name.casefold()
                or folded in c.card.values().get("name", "").casefold()
            )
        ]
        return render_template(
            "console/cards.html",
            workspace=workspace,
            people=[(c, state(c)) for c in matching[offset : offset + PAGE_SIZE]],
            total=len(matching),
            offset=offset,
            page_size=PAGE_SIZE,
            search=search,
            wanted=wanted,
            states=STATES,
            seats=product.seats(workspace),
        )

    @bp.post("/<workspace>/cards/activation")
    def send_activation(workspace: str) -> ResponseReturnValue:
        chosen = [find(workspace, pid).user_name for pid in form_list("person")]
        if not chosen:
            return failed("Select at least one person.", ".cards", workspace=workspace)
        try:
            queued = product.send_activation(workspace, chosen)
        except WorkspaceError as exc:
            return failed(str(exc), ".cards", workspace=workspace)
        noun = "e-mail" if len(queued) == 1 else "e-mails"
        return done(f"{len(queued)} activation {noun} queued.", ".cards", workspace=workspace)

    @bp.get("/<workspace>/cards/<person_id>")
    def card(workspace: str, person_id: str) -> ResponseReturnValue:
        view = find(workspace, person_id)
        mapping = product.mapping(workspace)
        labels = {r.key: r.label for r in mapping.rules}
        keys = list(mapping.field_keys()) + sorted(set(view.card.fields) - set(labels))
        return render_template(
            "console/card.html",
            workspace=workspace,
            view=view,
            state=state(view),
            rows=[(k, labels.get(k, k), view.card.fields.get(k)) for k in keys],
            templates=product.templates(workspace),
        )

    @bp.post("/<workspace>/cards/<person_id>/fields/<key>")
    def card_field(workspace: str, person_id: str, key: str) -> ResponseReturnValue:
        view = find(workspace, person_id)
        action = request.form.get("action", "save")
        try:
            if action == "unlock":
                product.unlock(workspace, view.user_name, key)
                message = "Unlocked: the card owner may edit it, and it no longer follows the IdP."
            else:
                product.admin_edit(workspace, view.user_name, key, request.form.get("value", ""))
                message = "Saved: the field no longer follows the IdP."
        except WorkspaceError as exc:
            return failed(str(exc), ".card", workspace=workspace, person_id=person_id)
        return done(message, ".card", workspace=workspace, person_id=person_id)

    @bp.get("/<workspace>/templates")
    def templates(workspace: str) -> ResponseReturnValue:
        return render_template(
            "console/templates.html", workspace=workspace, templates=product.templates(workspace)
        )

    @bp.post("/<workspace>/templates")
    def create_template(workspace: str) -> ResponseReturnValue:
        name = request.form.get("name", "").strip()
        try:
            product.create_template(workspace, name, {})
        except WorkspaceError as exc:
            return failed(str(exc), ".templates", workspace=workspace)
        return done(f"Template {name} created.", ".template", workspace=workspace, name=name)

    def find_template(workspace: str, name: str) -> dict[str, str]:
        found = next((t for t in product.templates(workspace) if t.name == name), None)
        if found is None:
            abort(404)
        return dict(found.fields)

    @bp.get("/<workspace>/templates/<name>")
    def template(workspace: str, name: str) -> ResponseReturnValue:
        fields = find_template(workspace, name)
        mapping = product.mapping(workspace)
        return render_template(
            "console/template.html",
            workspace=workspace,
            name=name,
            fields=fields,
            labels={r.key: r.label for r in mapping.rules},
            keys=[*mapping.field_keys(), *sorted(set(fields) - set(mapping.field_keys()))],
        )

    @bp.post("/<workspace>/templates/<name>")
    def save_template(workspace: str, name: str) -> ResponseReturnValue:
        old = find_template(workspace, name)
        fields = {k[6:]: v.strip() for k, v in request.form.items() if k.startswith("field:")}
        new_key = request.form.get("new_key", "").strip()
        if new_key:
            fields[new_key] = request.form.get("new_value", "").strip()
        changed = {k: v for k, v in fields.items() if old.get(k, "") != v}
        return save_fields(workspace, name, changed)

    def save_fields(workspace: str, name: str, changed: dict[str, str]) -> ResponseReturnValue:
        try:
            product.set_template(workspace, name, changed)
        except WorkspaceError as exc:
            return failed(str(exc), ".template", workspace=workspace, name=name)
        return done("Template saved.", ".template", workspace=workspace, name=name)
