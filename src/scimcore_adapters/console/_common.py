"""What every console page shares: who is signed in, CSRF, flash messages, the page guard."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
from attrs import frozen
from flask import Blueprint, Request, Response, abort, flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf

from scimcore import ScimService
from scimcore.images import image_id_of

__all__ = [
    "ConsoleAdmin",
    "Identify",
    "csrf_protect",
    "current_admin",
    "filter_error",
    "form_list",
    "is_active_admin",
    "pages_blueprint",
    "safe_next",
]


def _lower(email: str) -> str:
    return email.lower()


@frozen
class ConsoleAdmin:
    """Who a console request comes from: an admin (``email``) of one workspace (``workspace``,
    its slug). The host app's ``identify`` function returns one, or ``None`` when the request
    is not signed in."""

    workspace: str
    email: str = attrs.field(converter=_lower)


#: The host's answer to "which admin of which workspace is this request" (or ``None``).
Identify = Callable[[Request], "ConsoleAdmin | None"]


def is_active_admin(service: ScimService, admin: ConsoleAdmin) -> bool:
    """Whether ``admin`` is (still) an active admin of their workspace."""
    try:
        found = service.workspaces.get_admin(admin.workspace, admin.email)
    except ValueError:  # WorkspaceError: the workspace is gone
        return False
    return found is not None and found.active


def current_admin() -> ConsoleAdmin:
    """The admin of the current console request (set by the guard)."""
    admin: ConsoleAdmin = g.scimcore_console_admin
    return admin


def csrf_protect() -> ResponseReturnValue | None:
    """Refuse a state-changing request whose form lacks this session's CSRF token (400)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    try:
        validate_csrf(request.form.get("csrf_token"))
    except (ValueError, CSRFError):  # wtforms' ValidationError is a ValueError
        return _refused_form()
    return None


def _refused_form() -> ResponseReturnValue:
    from flask import render_template

    body = render_template(
        "console/message.html",
        title="Form refused",
        message="This form was not sent from this page (its security token is missing or has "
        "expired). Go back, reload the page and try again.",
    )
    return body, 400


def pages_blueprint(name: str, url_prefix: str, static_url_path: str = "/static") -> Blueprint:
    """A blueprint with the console's templates and static files, whose templates get
    ``csrf_token()``, ``asset(filename)`` (a static file's URL) and ``image_id(value)`` (the
    image a ``photo`` or ``logo`` value refers to, or ``None``)."""
    bp = Blueprint(
        name,
        __name__,
        url_prefix=url_prefix,
        template_folder="templates",
        static_folder="static",
        static_url_path=static_url_path,
    )

    def asset(filename: str) -> str:
        return url_for(f"{name}.static", filename=filename)

    bp.context_processor(
        lambda: {"csrf_token": generate_csrf, "asset": asset, "image_id": image_id_of}
    )
    bp.after_request(_page_headers)
    return bp


#: Sent with every console page: never framed by another site (clickjacking), no type
#: sniffing, no full URL (an activation token) in the Referer of a link followed from a page.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page_headers(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site (no scheme, no host), else ``default``: a
    sign-in's ``next`` must never send the admin to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def form_list(name: str) -> list[str]:
    """Every value of a repeated form field, without blanks."""
    return [v for v in request.form.getlist(name) if v.strip()]


_POSITION = re.compile(r"at position (\d+)")
_NEEDS = re.compile(r"'([^']+)' needs something after it")
_UNKNOWN = re.compile(r"unknown attribute '([^']+)'")


def filter_error(text: str, message: str) -> dict[str, str]:
    """A rule filter's error for the inline display: the ``message``, and the filter cut
    around the part it points to (``before``, ``at``, ``after``; ``at`` is empty when the
    message points nowhere in particular). The part is the word at the position the message
    names, the word that needs something after it at an unexpected end, or the unknown
    attribute it names."""
    for pattern, last in ((_NEEDS, True), (_UNKNOWN, False)):
        word = pattern.search(message)
        if word and word.group(1) in text:
            at = text.rindex(word.group(1)) if last else text.index(word.group(1))
            return _cut(message, text, at, at + len(word.group(1)))
    position = _POSITION.search(message)
    if position and int(position.group(1)) < len(text):
        at = end = int(position.group(1))
        while end < len(text) and not text[end].isspace():
            end += 1
        return _cut(message, text, at, max(end, at + 1))
    return {"message": message, "before": text, "at": "", "after": ""}


def _cut(message: str, text: str, start: int, end: int) -> dict[str, str]:
    return {"message": message, "before": text[:start], "at": text[start:end], "after": text[end:]}


def done(message: str, endpoint: str, **values: Any) -> ResponseReturnValue:
    """Flash ``message`` and redirect (303) to ``endpoint`` (Post/Redirect/Get)."""
    flash(message, "ok")
    return redirect(url_for(endpoint, **values), 303)


def failed(message: str, endpoint: str, **values: Any) -> ResponseReturnValue:
    """Flash an error ``message`` and redirect (303) to ``endpoint``."""
    flash(message, "error")
    return redirect(url_for(endpoint, **values), 303)


def not_found() -> ResponseReturnValue:
    abort(404)
