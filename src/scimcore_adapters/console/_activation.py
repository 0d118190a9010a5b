"""The card owner's pages: the activation link of the e-mail, then their own card (R3.7, R8.3).

``GET /activate/<token>`` only looks at the link (mail scanners fetch links); the person
presses "Activate", a ``POST`` that consumes it (single use) and opens an owner session (in
Flask's signed session cookie) for ``/activate/card``, where they see their card, edit the
unlocked fields and upload their photo. The owner session ends with "Sign out", when the
browser closes, or when the person is deactivated or deprovisioned.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from scimcore import ScimService
from scimcore.activation import ActivationError
from scimcore.product import CardView
from scimcore.workspaces import WorkspaceError

from ._common import csrf_protect, done, failed, pages_blueprint
from ._images import image_response, stored_image

__all__ = ["activation_blueprint"]

_KEY = "scimcore_owner"

#: Why a link is refused: status and what the page says.
_REFUSALS = {
    "unknown": (404, "This activation link is not valid. Check that you copied all of it."),
    "expired": (410, "This activation link has expired. Ask your admin to send a new one."),
    "used": (
        410,
        "This activation link was already used. Ask your admin for a new one "
        "if you need to reach your card again.",
    ),
    "inactive": (
        403,
        "This card is no longer active. Ask your admin if you think this is a mistake.",
    ),
}


def activation_blueprint(
    service: ScimService, *, url_prefix: str = "/activate", max_age: float = 12 * 3600
) -> Blueprint:
    """The activation pages at ``url_prefix``. The activation e-mails link to
    ``<public base URL>/activate/<token>`` (``deliver_pending(base_url=...)``): mount them
    at the site's root with the default prefix unless a proxy rewrites the path.
    ``max_age``: seconds an owner session lasts."""
    bp = pages_blueprint("scimcore_activation", url_prefix)
    bp.before_request(csrf_protect)
    product = service.product

    def refused(reason: str) -> ResponseReturnValue:
        status, message = _REFUSALS.get(reason, _REFUSALS["unknown"])
        page = render_template("console/message.html", title="Activation", message=message)
        return page, status

    def owner() -> tuple[str, CardView]:
        """The signed-in owner's workspace and card; 403 when there is none any more."""
        data: Any = session.get(_KEY)
        try:
            workspace, person_id = str(data["workspace"]), str(data["person_id"])
            fresh = time.time() - float(data["at"]) < max_age
            view = product.card(workspace, person_id) if fresh else None
        except (KeyError, TypeError, ValueError):  # no session, or WorkspaceError
            view = None
        if view is None or not view.active or view.deprovisioned:
            session.pop(_KEY, None)
            abort(403)
        return workspace, view

    @bp.after_request
    def private(response: Response) -> Response:
        # The pages show one person's card, and their URL may hold the activation token.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @bp.errorhandler(403)
    def no_owner(_: Exception) -> ResponseReturnValue:
        message = "Open the activation link of your e-mail to reach your card."
        return render_template("console/message.html", title="Your card", message=message), 403

    @bp.get("/<token>")
    def link(token: str) -> ResponseReturnValue:
        try:
            view = product.activation_status(token)
        except ActivationError as exc:
            return refused(exc.reason)
        return render_template("console/activate.html", token=token, view=view)

    @bp.post("/<token>")
    def activate(token: str) -> ResponseReturnValue:
        try:
            view = product.activate(token)
        except ActivationError as exc:
            return refused(exc.reason)
        session.pop(_KEY, None)
        session[_KEY] = {
            "workspace": view.workspace_slug,
            "person_id": view.person_id,
            "at": time.time(),
        }
        return redirect(url_for(".card"), 303)

    @bp.get("/card")
    def card() -> ResponseReturnValue:
        workspace, view = owner()
        labels = {r.key: r.label for r in product.mapping(workspace).rules}
        rows = [(k, labels.get(k, k), f) for k, f in sorted(view.card.fields.items())]
        return render_template("console/owner_card.html", view=view, rows=rows)

    @bp.post("/card/fields/<key>")
    def edit(key: str) -> ResponseReturnValue:
        workspace, view = owner()
        try:
            value = request.form.get("value", "")
            product.owner_edit(workspace, None, key, value, person_id=view.person_id)
        except WorkspaceError as exc:
            return failed(str(exc), ".card")
        return done("Saved.", ".card")

    @bp.post("/card/photo")
    def photo() -> ResponseReturnValue:
        workspace, view = owner()
        try:
            image_id = stored_image(product, workspace)
            product.set_photo(workspace, None, image_id, person_id=view.person_id, actor="owner")
        except WorkspaceError as exc:
            return failed(str(exc), ".card")
        return done("Photo saved.", ".card")

    @bp.get("/card/images/<image_id>")
    def image(image_id: str) -> ResponseReturnValue:
        workspace, _ = owner()
        return image_response(product, workspace, image_id)

    @bp.post("/sign-out")
    def sign_out() -> ResponseReturnValue:
        session.pop(_KEY, None)
        page = render_template("console/message.html", title="Signed out", message="Signed out.")
        return page

    return bp
