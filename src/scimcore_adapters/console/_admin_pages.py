"""Integrations (Team Card Provisioning, Card Settings), Security and the provisioning log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.errors import SCIMError
from scimcore.storage import TOKEN_ACTIVE, LogEntry
from scimcore.workspaces import GeneratedToken, WorkspaceError

from ._common import current_admin, done, failed, filter_error

__all__ = ["register_admin_pages"]

#: Outcome filters of the provisioning log: name -> (label, test on the HTTP status).
OUTCOMES = {
    "ok": "Succeeded",
    "refused": "Refused (401, 403)",
    "failed": "Failed (other errors)",
}


def outcome(entry: LogEntry) -> str:
    """``ok``, ``refused`` (authentication or permission) or ``failed``."""
    if entry.status < 400:
        return "ok"
    return "refused" if entry.status in (401, 403) else "failed"


def register_admin_pages(bp: Blueprint, service: ScimService, scim_path: str) -> None:
    """Add the Integrations, Security and log pages to ``bp``."""
    workspaces = service.workspaces
    product = service.product

    def integrations_page(
        workspace: str,
        *,
        generated: GeneratedToken | None = None,
        rule_error: dict[str, Any] | None = None,
        status: int = 200,
    ) -> tuple[str, int]:
        tenant_url = request.url_root.rstrip("/") + "/" + scim_path.strip("/")
        tokens = [t for t in workspaces.list_tokens(workspace) if t.state == TOKEN_ACTIVE]
        page = render_template(
            "console/integrations.html",
            workspace=workspace,
            tenant_url=tenant_url,
            active_tokens=len(tokens),
            generated=generated,
            settings=product.settings(workspace),
            rules=product.rules(workspace),
            templates=product.templates(workspace),
            rule_error=rule_error,
            fields=product.mapping(workspace).field_keys(),
        )
        return page, status

    @bp.get("/<workspace>/integrations")
    def integrations(workspace: str) -> ResponseReturnValue:
        return integrations_page(workspace)

    @bp.post("/<workspace>/tokens")
    def generate_token(workspace: str) -> ResponseReturnValue:
        label = request.form.get("label", "").strip()[:100] or "Team Card Provisioning"
        generated = workspaces.generate_token(workspace, current_admin().email, label=label)
        # Rendered, not redirected: the secret is in this one response and nowhere else.
        page, status = integrations_page(workspace, generated=generated)
        return page, status, {"Cache-Control": "no-store"}

    @bp.post("/<workspace>/settings")
    def settings(workspace: str) -> ResponseReturnValue:
        on = request.form.get("activation_email") == "on"
        product.update_settings(workspace, activation_email=on, actor=current_admin().email)
        state = "on" if on else "off"
        return done(f"Activation e-mails are {state}.", ".integrations", workspace=workspace)

    @bp.post("/<workspace>/rules")
    def add_rule(workspace: str) -> ResponseReturnValue:
        text = request.form.get("filter", "").strip()
        template = request.form.get("template", "")
        try:
            product.add_rule(workspace, template, text, actor=current_admin().email)
        except SCIMError as exc:
            error = {**filter_error(text, exc.detail), "filter": text, "template": template}
            return integrations_page(workspace, rule_error=error, status=422)
        except WorkspaceError as exc:
            error = {"message": str(exc), "filter": text, "template": template}
            return integrations_page(workspace, rule_error=error, status=422)
        return done("Rule added.", ".integrations", workspace=workspace, _anchor="card-settings")

    @bp.post("/<workspace>/rules/<rule_id>/delete")
    def remove_rule(workspace: str, rule_id: str) -> ResponseReturnValue:
        try:
            product.remove_rule(workspace, rule_id, actor=current_admin().email)
        except WorkspaceError:
            abort(404)
        return done("Rule removed.", ".integrations", workspace=workspace, _anchor="card-settings")

    @bp.post("/<workspace>/rules/<rule_id>/move")
    def move_rule(workspace: str, rule_id: str) -> ResponseReturnValue:
        position = request.form.get("position", type=int)
        if position is None or position < 1:
            abort(400)
        try:
            product.move_rule(workspace, rule_id, position, actor=current_admin().email)
        except WorkspaceError:
            abort(404)
        return done("Rule moved.", ".integrations", workspace=workspace, _anchor="card-settings")

    @bp.get("/<workspace>/security")
    def security(workspace: str) -> ResponseReturnValue:
        tokens = sorted(workspaces.list_tokens(workspace), key=lambda t: t.created_at)
        return render_template(
            "console/security.html",
            workspace=workspace,
            tokens=list(reversed(tokens)),
        )

    @bp.post("/<workspace>/tokens/<token_id>/delete")
    def delete_token(workspace: str, token_id: str) -> ResponseReturnValue:
        try:
            workspaces.delete_token(workspace, token_id, actor=current_admin().email)
        except WorkspaceError:
            return failed("That token no longer exists.", ".security", workspace=workspace)
        return done("Token deleted: it stops working at once.", ".security", workspace=workspace)

    @bp.get("/<workspace>/log")
    def log(workspace: str) -> ResponseReturnValue:
        wanted = request.args.get("outcome", "")
        limit = 200
        entries = product.log(workspace, limit=service.config.log_retention)
        shown = [e for e in entries if not wanted or outcome(e) == wanted][:limit]
        return render_template(
            "console/log.html",
            workspace=workspace,
            entries=[(e, outcome(e)) for e in shown],
            outcomes=OUTCOMES,
            wanted=wanted,
            limit=limit,
        )

    @bp.get("/<workspace>/log/<entry_id>")
    def log_entry(workspace: str, entry_id: str) -> ResponseReturnValue:
        entries = product.log(workspace, limit=service.config.log_retention)
        entry = next((e for e in entries if e.id == entry_id), None)
        if entry is None:
            abort(404)
        return render_template(
            "console/log_entry.html", workspace=workspace, entry=entry, outcome=outcome(entry)
        )
