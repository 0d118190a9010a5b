"""The console blueprint: the page guard, and the pages of :mod:`._admin_pages`,
:mod:`._card_pages` and :mod:`._oauth_clients`."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from scimcore import ScimService

from ._admin_pages import register_admin_pages
from ._card_pages import register_card_pages
from ._common import Identify, csrf_protect, current_admin, is_active_admin, pages_blueprint
from ._oauth_clients import register_oauth_client_pages

__all__ = ["console_blueprint"]

NAME = "scimcore_console"


def console_blueprint(
    service: ScimService,
    identify: Identify,
    *,
    url_prefix: str = "/console",
    sign_in_url: str | None = None,
    sign_out_url: str | None = None,
    scim_path: str = "/scim/v2",
) -> Blueprint:
    """The admin console for ``service``, mounted at ``url_prefix``.

    ``identify(request)`` is the host's answer to "which admin of which workspace is this
    request" (a :class:`~scimcore_adapters.console.ConsoleAdmin` or ``None``). A request
    without an admin, or whose admin is no longer an active admin of the workspace, is sent
    to ``sign_in_url`` (with ``?next=``) or, without one, refused with 401. ``sign_out_url``:
    where the header's "Sign out" button posts (none shown without it). ``scim_path``: where
    the host serves SCIM, for the Tenant URL (the request's base URL plus this path).
    """
    bp = pages_blueprint(NAME, url_prefix)

    @bp.before_request
    def guard() -> ResponseReturnValue | None:
        if request.endpoint == f"{NAME}.static":
            return None
        admin = identify(request)
        if admin is None or not is_active_admin(service, admin):
            return _signed_out(sign_in_url)
        g.scimcore_console_admin = admin
        workspace = (request.view_args or {}).get("workspace")
        if workspace is not None and workspace != admin.workspace:
            # Another workspace's page: as if it did not exist (R1.1).
            return render_template("console/message.html", title="Not found", message=""), 404
        return csrf_protect()

    @bp.context_processor
    def page_context() -> dict[str, object]:
        admin = g.get("scimcore_console_admin")
        return {"admin": admin, "sign_out_url": sign_out_url}

    @bp.route("/")
    def index() -> ResponseReturnValue:
        return redirect(url_for(".integrations", workspace=current_admin().workspace))

    register_admin_pages(bp, service, scim_path)
    register_card_pages(bp, service)
    register_oauth_client_pages(bp, service, scim_path)
    return bp


def _signed_out(sign_in_url: str | None) -> ResponseReturnValue:
    """A request with no (or no longer an) active admin: to the sign-in page, or 401."""
    if sign_in_url is None:
        message = "Sign in as an admin of this workspace to use the console."
        return render_template("console/message.html", title="Sign in", message=message), 401
    target = request.full_path if request.method == "GET" else request.path
    return redirect(f"{sign_in_url}?{urlencode({'next': target.rstrip('?')})}", 303)
