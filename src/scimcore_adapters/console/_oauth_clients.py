"""OAuth clients: the console's page for client credentials (issue #20, R2.6).

Entra's gallery apps obtain access tokens from the token endpoint with a client id and
secret instead of a long-lived Secret Token. This page lists the workspace's clients with
their secrets' ids, expiry and last use (a secret that expires within 30 days is flagged),
creates a client (its id and first secret shown once, with the Token endpoint and the Tenant
URL to copy), adds a secret (rotation: the older ones keep working until deleted), deletes a
secret, and deletes a client after a confirmation page. A client may be created without a
secret (federated identity only); :mod:`._client_flows` adds each client's redirect URIs
(Okta's authorization code) and federated identities (Entra's workload identity federation).
It is a client of :class:`scimcore.oauth_clients.OAuthClients` only; every action is logged
with the signed-in admin's e-mail (R9.2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.authorization import AUTHORIZE_PATH
from scimcore.oauth import TOKEN_PATH
from scimcore.oauth_clients import (
    CLIENT_ACTIVE,
    EXPIRY_WARNING,
    ClientSecret,
    IssuedSecret,
    OAuthClient,
)
from scimcore.workspaces import WorkspaceError

from ._client_flows import FEDERATION_FIELDS, FormError, register_client_flow_pages
from ._common import current_admin, done, failed

__all__ = ["LIFETIMES", "register_oauth_client_pages", "secret_state"]

#: The secret lifetimes offered (Entra's gallery: 1 to 3 years): days -> label.
LIFETIMES = {365: "1 year", 730: "2 years", 1095: "3 years"}

_PAGE = ".oauth_clients"


def secret_state(secret: ClientSecret, now: datetime) -> str:
    """``expired``, ``expiring`` (within 30 days) or ``valid``."""
    if secret.expires_at <= now:
        return "expired"
    return "expiring" if secret.expires_at <= now + EXPIRY_WARNING else "valid"


def _lifetime() -> int | None:
    """The secret lifetime the form chose, in days; ``None`` if it is not one offered."""
    days = request.form.get("secret_days", type=int)
    return days if days in LIFETIMES else None


def register_oauth_client_pages(bp: Blueprint, service: ScimService, scim_path: str) -> None:
    """Add the OAuth clients page and its actions to ``bp``."""
    clients = service.oauth_clients

    def urls() -> tuple[str, str]:
        """The Tenant URL and the token endpoint's URL, as this request reached the server."""
        root = request.url_root.rstrip("/")
        return f"{root}/{scim_path.strip('/')}", root + TOKEN_PATH

    def listing(workspace: str) -> list[tuple[OAuthClient, Any, Any, Any]]:
        """Each client, newest first, with its secrets (and their state), redirect URIs and
        federated identities."""
        now = service.runtime.now()
        listed: list[tuple[OAuthClient, Any, Any, Any]] = []
        for client, secrets in sorted(clients.list(workspace), key=lambda c: c[0].created_at):
            ordered = sorted(secrets, key=lambda s: s.created_at)
            listed.append(
                (
                    client,
                    [(s, secret_state(s, now)) for s in ordered],
                    service.authorization.list_redirect_uris(workspace, client.id),
                    clients.federations(workspace, client.id),
                )
            )
        return list(reversed(listed))

    def page(
        workspace: str,
        issued: IssuedSecret | None = None,
        created: bool = False,
        error: FormError | None = None,
    ) -> tuple[str, int, dict[str, str]]:
        tenant_url, token_url = urls()
        body = render_template(
            "console/oauth_clients.html",
            workspace=workspace,
            clients=listing(workspace),
            issued=issued,
            created=created,
            error=error,
            tenant_url=tenant_url,
            token_url=token_url,
            authorize_url=request.url_root.rstrip("/") + AUTHORIZE_PATH,
            lifetimes=LIFETIMES,
            federation_fields=FEDERATION_FIELDS,
            active=CLIENT_ACTIVE,
        )
        # A secret is in this one response and nowhere else: never cached.
        return body, 400 if error else 200, {"Cache-Control": "no-store"}

    def find(workspace: str, client_id: str) -> OAuthClient:
        try:
            return clients.get(workspace, client_id)
        except WorkspaceError:
            abort(404)

    @bp.get("/<workspace>/oauth-clients")
    def oauth_clients(workspace: str) -> ResponseReturnValue:
        return page(workspace)

    @bp.post("/<workspace>/oauth-clients")
    def create_client(workspace: str) -> ResponseReturnValue:
        label = request.form.get("label", "").strip()[:100]
        if request.form.get("no_secret"):
            try:
                made = clients.create_without_secret(workspace, current_admin().email, label)
            except WorkspaceError as exc:
                return failed(f"No client created: {exc}", _PAGE, workspace=workspace)
            return done(
                f"Client {made.label or made.id} created without a secret: "
                "add its federated identity below.",
                _PAGE,
                workspace=workspace,
            )
        days = _lifetime()
        if days is None:
            return failed(
                "Choose a secret lifetime of 1, 2 or 3 years.", _PAGE, workspace=workspace
            )
        try:
            issued = clients.create(workspace, current_admin().email, label, days)
        except WorkspaceError as exc:
            return failed(f"No client created: {exc}", _PAGE, workspace=workspace)
        return page(workspace, issued, created=True)  # rendered: the secret is shown once

    @bp.post("/<workspace>/oauth-clients/<client_id>/secrets")
    def add_client_secret(workspace: str, client_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        days = _lifetime()
        if days is None:
            return failed(
                "Choose a secret lifetime of 1, 2 or 3 years.", _PAGE, workspace=workspace
            )
        try:
            issued = clients.add_secret(workspace, client_id, days, actor=current_admin().email)
        except WorkspaceError as exc:
            return failed(f"No secret added: {exc}", _PAGE, workspace=workspace)
        return page(workspace, issued)

    @bp.post("/<workspace>/oauth-clients/<client_id>/secrets/<secret_id>/delete")
    def delete_client_secret(workspace: str, client_id: str, secret_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        try:
            clients.delete_secret(workspace, client_id, secret_id, actor=current_admin().email)
        except WorkspaceError:
            return failed("That secret no longer exists.", _PAGE, workspace=workspace)
        return done("Secret deleted: it stops working at once.", _PAGE, workspace=workspace)

    register_client_flow_pages(bp, service, page, find)

    @bp.get("/<workspace>/oauth-clients/<client_id>/delete")
    def confirm_delete_client(workspace: str, client_id: str) -> ResponseReturnValue:
        return render_template(
            "console/oauth_client_delete.html",
            workspace=workspace,
            client=find(workspace, client_id),
        )

    @bp.post("/<workspace>/oauth-clients/<client_id>/delete")
    def delete_client(workspace: str, client_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        try:
            clients.delete(workspace, client_id, actor=current_admin().email)
        except WorkspaceError:
            return failed("That client no longer exists.", _PAGE, workspace=workspace)
        return done(
            "Client deleted: its secrets and access tokens stop working at once.",
            _PAGE,
            workspace=workspace,
        )
