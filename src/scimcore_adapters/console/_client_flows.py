"""The OAuth clients page's redirect URIs and federated identities (issue #20 items 3 and 4).

Okta's authorization-code grant sends its admin back to a redirect URI registered per client
(:meth:`scimcore.authorization.AuthorizationCodes.add_redirect_uri`); Entra's workload identity
federation authenticates a client by a JWT from an issuer, subject and audience trusted per
client (:meth:`scimcore.oauth_clients.OAuthClients.federate`). A workspace admin never gets a
shell, so the page adds and deletes both. The API's refusals (a bad URI, ``http`` on a host
other than the loopback, a bad issuer...) are shown beside the form that was sent, with what
was typed kept (400); every action is logged with the signed-in admin's e-mail (R9.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.oauth_clients import OAuthClient
from scimcore.workspaces import WorkspaceError

from ._common import current_admin, done, failed

__all__ = ["FEDERATION_FIELDS", "FormError", "register_client_flow_pages"]

#: The federated identity form's fields, in order: name -> label.
FEDERATION_FIELDS = {
    "issuer": "Issuer",
    "subject": "Subject",
    "audience": "Audience",
    "jwks_url": "JWKS URL (optional)",
}

_PAGE = ".oauth_clients"


@dataclass(frozen=True)
class FormError:
    """A form the API refused: which client's (``client_id``) and which form (``"uri"`` or
    ``"federation"``), the message to show beside it, and what was typed, to keep."""

    client_id: str
    form: str
    message: str
    values: dict[str, str] = field(default_factory=dict)


Page = Callable[..., ResponseReturnValue]
Find = Callable[[str, str], OAuthClient]


def _field(name: str) -> str:
    return request.form.get(name, "").strip()


def _removed(
    workspace: str, delete: Callable[[str], None], what: str, effect: str
) -> ResponseReturnValue:
    """Run ``delete(actor)`` as the signed-in admin and say what happened (Post/Redirect/Get)."""
    try:
        delete(current_admin().email)
    except WorkspaceError:
        return failed(f"That {what} no longer exists.", _PAGE, workspace=workspace)
    return done(f"{what[0].upper()}{what[1:]} deleted: {effect}.", _PAGE, workspace=workspace)


def register_client_flow_pages(bp: Blueprint, service: ScimService, page: Page, find: Find) -> None:
    """Add the redirect URI and federated identity actions to ``bp``: ``page(workspace,
    error=...)`` renders the OAuth clients page, ``find(workspace, client_id)`` the client or
    404."""
    codes = service.authorization
    clients = service.oauth_clients

    @bp.post("/<workspace>/oauth-clients/<client_id>/redirect-uris")
    def add_redirect_uri(workspace: str, client_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        uri = _field("uri")
        try:
            codes.add_redirect_uri(workspace, client_id, uri, actor=current_admin().email)
        except WorkspaceError as exc:
            message = f"No redirect URI added: {exc}"
            return page(workspace, error=FormError(client_id, "uri", message, {"uri": uri}))
        return done(f"Redirect URI {uri} registered.", _PAGE, workspace=workspace)

    @bp.post("/<workspace>/oauth-clients/<client_id>/redirect-uris/<uri_id>/delete")
    def delete_redirect_uri(workspace: str, client_id: str, uri_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        return _removed(
            workspace,
            lambda actor: codes.delete_redirect_uri(workspace, client_id, uri_id, actor=actor),
            "redirect URI",
            "new authorize requests naming it are refused",
        )

    @bp.post("/<workspace>/oauth-clients/<client_id>/federations")
    def add_federation(workspace: str, client_id: str) -> ResponseReturnValue:
        find(workspace, client_id)
        values = {name: _field(name) for name in FEDERATION_FIELDS}
        try:
            clients.federate(
                workspace,
                client_id,
                values["issuer"],
                values["subject"],
                values["audience"],
                values["jwks_url"] or None,
                actor=current_admin().email,
            )
        except WorkspaceError as exc:
            # The API's words name the CLI's option; on this page the field is "JWKS URL".
            text = str(exc).replace("(without --jwks-url)", "(without a JWKS URL)")
            message = f"No federated identity added: {text}"
            return page(workspace, error=FormError(client_id, "federation", message, values))
        return done("Federated identity trusted.", _PAGE, workspace=workspace)

    @bp.post("/<workspace>/oauth-clients/<client_id>/federations/<federation_id>/delete")
    def delete_federation(
        workspace: str, client_id: str, federation_id: str
    ) -> ResponseReturnValue:
        find(workspace, client_id)
        return _removed(
            workspace,
            lambda actor: clients.delete_federation(
                workspace, client_id, federation_id, actor=actor
            ),
            "federated identity",
            "its assertions are refused at once",
        )
