"""The authorize endpoint's page (RFC 6749 §4.1.1, issue 20): where a workspace admin, signed
in through the console's sign-in, approves or denies an OAuth client (Okta) that asks for the
workspace's SCIM API.

:func:`authorize_blueprint` serves :data:`scimcore.authorization.AUTHORIZE_PATH` at the
application root, beside the token endpoint. What the request means, which errors redirect
and which are shown as a page, and the code an approval issues are the core's
(:class:`scimcore.authorization.AuthorizationCodes`); this module only talks HTTP: the
sign-in redirect (back to the same request afterwards), the page, and the approve / deny form
(POST, with Flask-WTF's CSRF token). Only an active admin of the client's own workspace can
approve (R1.1). :func:`~scimcore_adapters.console.signin.mount_console` registers it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, render_template, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.authorization import (
    AUTHORIZE_PATH,
    AuthorizationRequest,
    AuthorizePageError,
    AuthorizeRedirectError,
)

from ._common import ConsoleAdmin, Identify, csrf_protect, is_active_admin, pages_blueprint

__all__ = ["authorize_blueprint"]

NAME = "scimcore_authorize"
#: Sent with every answer: a page or redirect carrying a request's state or a code is never
#: cached (RFC 6749 §10.12 asks the same of the token endpoint).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def authorize_blueprint(
    service: ScimService, identify: Identify, *, sign_in_url: str | None = None
) -> Blueprint:
    """The authorize page for ``service``. ``identify(request)``: the host's answer to "which
    admin of which workspace is this request" (as for the console); a request without one is
    sent to ``sign_in_url`` with ``?next=`` the same authorize request (or, without one,
    answered 401). Registering the blueprint on an app makes the grant offered
    (``service.authorization.endpoint``: listed in the RFC 8414 metadata and
    ``/ServiceProviderConfig``)."""
    bp = pages_blueprint(NAME, "", "/oauth/authorize-static")
    bp.before_request(csrf_protect)
    codes = service.authorization

    @bp.record_once
    def offered(state: BlueprintSetupState) -> None:
        codes.endpoint = AUTHORIZE_PATH

    @bp.after_request
    def no_store(response: Response) -> Response:
        response.headers.update(_NO_STORE)
        return response

    def page(message: str, status: int, link: str | None = None) -> ResponseReturnValue:
        text = "Sign in as another admin" if link else None
        body = render_template(
            "console/message.html",
            title="Authorization refused",
            message=message,
            link=link,
            link_text=text,
        )
        return body, status

    def here(query: str) -> str:
        return f"{request.script_root}{AUTHORIZE_PATH}?{query}"

    def sign_in(query: str) -> str | None:
        if sign_in_url is None:
            return None
        return f"{sign_in_url}?{urlencode({'next': here(query)})}"

    @bp.route(AUTHORIZE_PATH, methods=["GET", "POST"])
    def authorize() -> ResponseReturnValue:
        posted = request.method == "POST"
        sent = request.query_string.decode("utf-8", "replace")
        query = request.form.get("query", "") if posted else sent
        issuer = request.host_url.rstrip("/") + request.script_root
        try:
            asked = codes.request(query)
        except AuthorizePageError as exc:
            return page(exc.message, exc.status)
        except AuthorizeRedirectError as exc:
            return redirect(exc.location(issuer), 303 if posted else 302)
        admin = identify(request)
        if admin is None or not is_active_admin(service, admin):
            target = sign_in(query)
            if target is None:
                return page("Sign in as an admin of this workspace to approve the client.", 401)
            return redirect(target, 303)
        if admin.workspace != asked.workspace.slug:
            message = (
                "You are signed in as an admin of another workspace. Only an admin of the "
                "workspace this client belongs to can approve it."
            )
            return page(message, 403, sign_in(query))
        if not posted:
            return _consent(asked, admin, query, sign_in(query) or here(query))
        decision = request.form.get("decision")
        try:
            if decision == "approve":
                return redirect(codes.approve(asked, admin.email, issuer), 303)
        except AuthorizePageError as exc:
            return page(exc.message, exc.status)
        if decision == "deny":
            return redirect(codes.deny(asked, admin.email, issuer), 303)
        return page("Choose Approve or Deny.", 400)

    return bp


def _consent(
    asked: AuthorizationRequest, admin: ConsoleAdmin, query: str, switch_url: str
) -> ResponseReturnValue:
    return render_template(
        "console/authorize.html",
        client=asked.client,
        workspace=asked.workspace,
        redirect_uri=asked.redirect_uri,
        pkce=asked.code_challenge is not None,
        who=admin.email,
        action=f"{request.script_root}{AUTHORIZE_PATH}",
        query=query,
        switch_url=switch_url,
    )
