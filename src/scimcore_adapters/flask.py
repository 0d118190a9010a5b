"""Flask adapter: a Flask extension with ``init_app``, and a Blueprint factory.

Every request under the prefix is translated to a :class:`~scimcore.ScimRequest`, answered by
:meth:`scimcore.ScimService.handle`, and translated back; nothing else happens here.

    from scimcore_adapters.flask import ScimExtension
    ScimExtension(service).init_app(app)            # serves /scim/v2/...

Two ways to mount, with identical responses:

- ``mount="blueprint"`` (the default): a :func:`scim_blueprint` registered on the app. SCIM
  requests go through Flask like any other: ``before_request``/``after_request`` hooks, error
  handlers and middleware such as ``ProxyFix`` see them.
- ``mount="wsgi"``: the extension wraps ``app.wsgi_app`` with
  :class:`~scimcore_adapters.wsgi.ScimWSGIApp`, which answers the SCIM prefix before Flask
  builds a request context and passes every other path to Flask. Faster (a SCIM request pays
  no routing, context or ``Response`` object; the example server uses it), but Flask's hooks
  do not see SCIM requests, and middleware applied to ``app.wsgi_app`` *before*
  ``init_app`` (``ProxyFix``, for the ``Location`` behind a proxy) is bypassed: apply it
  after ``init_app``. The extension warns when it finds ``app.wsgi_app`` already wrapped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

from flask import Blueprint, Flask, Response, request

from scimcore import ScimRequest, ScimResponse, ScimService
from scimcore.oauth import METADATA_PATH, TOKEN_PATH

from ._http import read_stream
from .jwks import use_jwks_keys
from .wsgi import ScimWSGIApp

__all__ = ["ScimExtension", "oauth_blueprint", "scim_blueprint"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _answer(
    service: ScimService, handle: Callable[[ScimRequest], ScimResponse], path: str, base_url: str
) -> Response:
    """The Flask response of ``handle`` (the SCIM service's or the token endpoint's) to the
    current request, read under the body limit."""
    # Without a Content-Length (chunked), Werkzeug's stream ends where the body does.
    body = read_stream(request.stream, service.config.max_body_bytes, request.content_length)
    if isinstance(body, ScimResponse):  # 413
        result = body
    else:
        result = handle(
            ScimRequest(
                method=request.method,
                path=path,
                query={k: request.args[k] for k in request.args},
                headers=dict(request.headers),
                body=body,
                base_url=base_url,
            )
        )
    response = Response(result.body, status=result.status, headers=dict(result.headers))
    if "Content-Type" not in result.headers:
        del response.headers["Content-Type"]  # no body: no Flask default text/html
    return response


def scim_blueprint(
    service: ScimService, url_prefix: str = "/scim/v2", name: str = "scim"
) -> Blueprint:
    """A Blueprint that serves ``service`` under ``url_prefix``."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    prefix = url_prefix.rstrip("/")

    def endpoint(subpath: str = "") -> Response:
        base_url = request.host_url.rstrip("/") + request.script_root + prefix
        return _answer(service, service.handle, "/" + subpath, base_url)

    bp.add_url_rule("", "root", endpoint, methods=_METHODS, strict_slashes=False)
    bp.add_url_rule("/<path:subpath>", "any", endpoint, methods=_METHODS)
    return bp


def oauth_blueprint(service: ScimService, name: str = "scim_oauth") -> Blueprint:
    """A Blueprint that serves the OAuth token endpoint and its RFC 8414 metadata
    (:mod:`scimcore.oauth`) at the application root, beside the SCIM prefix."""
    bp = Blueprint(name, __name__)
    use_jwks_keys(service)  # the issuers' keys, for client assertions

    def endpoint() -> Response:
        base_url = request.host_url.rstrip("/") + request.script_root
        return _answer(service, service.oauth.handle, request.path, base_url)

    bp.add_url_rule(TOKEN_PATH, "token", endpoint, methods=_METHODS)
    bp.add_url_rule(METADATA_PATH, "metadata", endpoint, methods=_METHODS)
    return bp


class ScimExtension:
    """Flask extension convention: ``ScimExtension(service).init_app(app)``; the service is kept
    in ``app.extensions["scimcore"]``. ``mount``: see the module documentation."""

    def __init__(
        self,
        service: ScimService,
        app: Flask | None = None,
        url_prefix: str = "/scim/v2",
        *,
        mount: Literal["wsgi", "blueprint"] = "blueprint",
    ) -> None:
        if mount not in ("wsgi", "blueprint"):
            raise ValueError("mount must be 'wsgi' or 'blueprint'")
        self.service = service
        self.url_prefix = url_prefix
        self.mount = mount
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if self.mount == "wsgi":
            inner = app.wsgi_app
            if getattr(inner, "__func__", None) is not type(app).wsgi_app:
                warnings.warn(
                    f"mount='wsgi' wraps app.wsgi_app, which is already wrapped ({inner!r}): "
                    "SCIM requests will bypass that middleware (e.g. ProxyFix). Apply it after "
                    "init_app, or use mount='blueprint'.",
                    stacklevel=2,
                )
            app.wsgi_app = ScimWSGIApp(  # type: ignore[method-assign]
                self.service, self.url_prefix, fallback=inner
            )
        else:
            app.register_blueprint(scim_blueprint(self.service, self.url_prefix))
            app.register_blueprint(oauth_blueprint(self.service))
        app.extensions["scimcore"] = self.service
