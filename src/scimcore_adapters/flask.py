"""Flask adapter: a Blueprint factory and a Flask extension with ``init_app``.

Every request under the prefix is translated to a :class:`~scimcore.ScimRequest`, answered by
:meth:`scimcore.ScimService.handle`, and translated back; nothing else happens here.

    from scimcore_adapters.flask import ScimExtension
    ScimExtension(service).init_app(app)            # serves /scim/v2/...
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from scimcore import ScimRequest, ScimService

__all__ = ["ScimExtension", "scim_blueprint"]

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def scim_blueprint(
    service: ScimService, url_prefix: str = "/scim/v2", name: str = "scim"
) -> Blueprint:
    """A Blueprint that serves ``service`` under ``url_prefix``."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    prefix = url_prefix.rstrip("/")

    def endpoint(subpath: str = "") -> Response:
        scim_request = ScimRequest(
            method=request.method,
            path="/" + subpath,
            query={k: request.args[k] for k in request.args},
            headers=dict(request.headers),
            body=request.get_data(cache=False),
            base_url=request.host_url.rstrip("/") + request.script_root + prefix,
        )
        result = service.handle(scim_request)
        response = Response(result.body, status=result.status, headers=dict(result.headers))
        if "Content-Type" not in result.headers:
            del response.headers["Content-Type"]  # no body: no Flask default text/html
        return response

    bp.add_url_rule("", "root", endpoint, methods=_METHODS, strict_slashes=False)
    bp.add_url_rule("/<path:subpath>", "any", endpoint, methods=_METHODS)
    return bp


class ScimExtension:
    """Flask extension convention: ``ScimExtension(service).init_app(app)``; the service is kept
    in ``app.extensions["scimcore"]``."""

    def __init__(
        self, service: ScimService, app: Flask | None = None, url_prefix: str = "/scim/v2"
    ) -> None:
        self.service = service
        self.url_prefix = url_prefix
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.register_blueprint(scim_blueprint(self.service, self.url_prefix))
        app.extensions["scimcore"] = self.service
