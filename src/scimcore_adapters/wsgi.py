"""Plain WSGI adapter (PEP 3333, no framework dependency).

:class:`ScimWSGIApp` answers the SCIM endpoint as a WSGI application; given another WSGI
application as ``fallback`` it is also a middleware that serves ``prefix`` itself and passes
every other path on. This is how :class:`scimcore_adapters.flask.ScimExtension` mounts the
service by default: a SCIM request costs no Flask request context, URL routing or
``Response`` object, only the translation to a :class:`~scimcore.ScimRequest` and back.

    app = ScimWSGIApp(service, prefix="/scim/v2")              # gunicorn module:app
    flask_app.wsgi_app = ScimWSGIApp(service, "/scim/v2", fallback=flask_app.wsgi_app)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from scimcore import ScimRequest, ScimResponse, ScimService
from scimcore.errors import NotFoundError
from scimcore.oauth import OAUTH_PATHS
from scimcore.service import error_response

from ._http import query_values, read_stream, wire_response
from .jwks import use_jwks_keys

__all__ = ["ScimWSGIApp", "WSGIApp"]

#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


_STATUS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


#: WSGI environ keys to the header names they carry (``None``: not a header), as met: a
#: server sends the same few dozen keys with every request. Bounded: keys past the limit (a
#: client inventing header names) are translated each time, not remembered.
_HEADER_NAMES: dict[str, str | None] = {}
_HEADER_NAMES_MAX = 512


def _header_name(key: str) -> str | None:
    name = key[5:].replace("_", "-").lower() if key.startswith("HTTP_") else None
    if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
        _HEADER_NAMES[key] = name
    return name


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers, by lower-case name (``HTTP_X_Y`` is ``x-y``)."""
    headers: dict[str, str] = {}
    names = _HEADER_NAMES
    for key, value in environ.items():
        name = names.get(key, "")
        if name == "":
            name = _header_name(key)
        if name is not None:
            headers[name] = value
    return headers


def _text(value: str) -> str:
    """A WSGI "native string" (bytes decoded as latin-1) as the UTF-8 text it carries."""
    return value if value.isascii() else value.encode("latin-1").decode("utf-8", "replace")


class ScimWSGIApp:
    """Serve ``service`` at ``prefix`` (``""``: every path is a SCIM path).

    ``fallback``: the WSGI application that answers paths outside ``prefix`` (without one,
    they get a SCIM 404). ``oauth``: also answer the OAuth token endpoint and its metadata
    (:data:`scimcore.oauth.OAUTH_PATHS`, from the application root, beside ``prefix``).
    """

    def __init__(
        self,
        service: ScimService,
        prefix: str = "/scim/v2",
        fallback: WSGIApp | None = None,
        *,
        oauth: bool = True,
    ) -> None:
        self.service = service
        self.prefix = prefix.rstrip("/")
        self.fallback = fallback
        self.oauth = oauth
        if oauth:
            use_jwks_keys(service)  # the issuers' keys, for client assertions

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = _text(environ.get("PATH_INFO", ""))
        prefix = self.prefix
        if self.oauth and path in OAUTH_PATHS:
            response = self._answer(environ, path, oauth=True)
        elif prefix and not (path == prefix or path.startswith(prefix + "/")):
            if self.fallback is not None:
                return self.fallback(environ, start_response)
            response = error_response(NotFoundError(f"no endpoint at {path}"))
        else:
            response = self._answer(environ, path[len(prefix) :] or "/")
        status = _STATUS.get(response.status) or f"{response.status} Unknown"
        headers, body = wire_response(environ.get("REQUEST_METHOD", "GET"), response)
        start_response(status, headers)
        return [body]

    def _answer(self, environ: dict[str, Any], path: str, oauth: bool = False) -> ScimResponse:
        limit = self.service.config.max_body_bytes
        body = read_stream(environ.get("wsgi.input"), limit, self._declared(environ))
        if isinstance(body, ScimResponse):  # 413: the server closes the connection when it
            return body  # was not read whole
        headers = _headers(environ)
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST")
        if not host:
            host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        root = _text(environ.get("SCRIPT_NAME", ""))
        request = ScimRequest(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            query=query_values(_text(environ.get("QUERY_STRING", ""))),
            headers=headers,
            body=body,
            base_url=f"{scheme}://{host}{root}{'' if oauth else self.prefix}",
        )
        return self.service.oauth.handle(request) if oauth else self.service.handle(request)

    @staticmethod
    def _declared(environ: dict[str, Any]) -> int | None:
        """The length of the request body to read (``None``: to the end of the stream), for
        the adapters' one reading policy (:mod:`._http`)."""
        length = environ.get("CONTENT_LENGTH")
        declared: int | None = None
        if length:
            try:
                declared = max(int(length), -1)
            except ValueError:
                declared = -1
        if declared is None or declared < 0:  # no usable length: read to the end if it has one
            terminated = environ.get("wsgi.input_terminated") or "chunked" in environ.get(
                "HTTP_TRANSFER_ENCODING", ""
            )
            declared = None if terminated and length != "0" else 0
        return declared
