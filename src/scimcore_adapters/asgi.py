"""Plain ASGI adapter (no framework dependency).

:class:`ScimASGIApp` is an ASGI 3 application. It reads the request body, runs the synchronous
:meth:`scimcore.ScimService.handle` in a worker thread (``asyncio.to_thread``) and sends the
response. Mount it at the SCIM base path of any ASGI server or framework, or let it answer
``prefix`` itself:

    app = ScimASGIApp(service, prefix="/scim/v2")      # uvicorn module:app
"""

from __future__ import annotations

import asyncio

from scimcore import ScimRequest, ScimResponse, ScimService
from scimcore.errors import NotFoundError
from scimcore.oauth import OAUTH_PATHS
from scimcore.service import error_response

from ._http import BodyReader, Receive, Scope, Send, query_values, wire_response
from .jwks import use_jwks_keys

__all__ = ["ScimASGIApp"]


class ScimASGIApp:
    """Serve ``service`` at ``prefix`` (``""`` when mounted by a framework that strips it).
    ``oauth``: also answer the OAuth token endpoint and its metadata
    (:data:`scimcore.oauth.OAUTH_PATHS`, from the root path, beside ``prefix``)."""

    def __init__(
        self, service: ScimService, prefix: str = "/scim/v2", *, oauth: bool = True
    ) -> None:
        self.service = service
        self.prefix = prefix.rstrip("/")
        self.oauth = oauth
        if oauth:
            use_jwks_keys(service)  # the issuers' keys, for client assertions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        response, close = await self._answer(scope, receive)
        headers, body = wire_response(scope.get("method", "GET"), response)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers]
        if close:  # the body was not read whole: the connection cannot carry another request
            raw.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[ScimResponse, bool]:
        """The response, and whether the connection must close after it."""
        root = scope.get("root_path", "") + self.prefix
        path: str = scope["path"]
        if scope.get("root_path") and path.startswith(scope["root_path"]):
            path = path[len(scope["root_path"]) :]
        oauth = self.oauth and path in OAUTH_PATHS
        if oauth:
            root = scope.get("root_path", "")
        elif self.prefix and not (path == self.prefix or path.startswith(self.prefix + "/")):
            return error_response(NotFoundError(f"no endpoint at {scope['path']}")), False
        else:
            path = path[len(self.prefix) :] or "/"
        reader = await self._body(scope, receive)
        too_large = reader.response()
        if too_large is not None:
            return too_large, reader.abandoned
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
        request = ScimRequest(
            method=scope["method"],
            path=path,
            query=query_values(scope.get("query_string", b"").decode("utf-8", "replace")),
            headers=headers,
            body=reader.body(),
            base_url=f"{scope.get('scheme', 'http')}://{host}{root}",
        )
        handle = self.service.oauth.handle if oauth else self.service.handle
        return await asyncio.to_thread(handle, request), False

    async def _body(self, scope: Scope, receive: Receive) -> BodyReader:
        """The request body, read by the adapters' one policy (:mod:`._http`)."""
        declared: int | None = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                declared = int(value) if value.isdigit() else None
                break
        reader = BodyReader(self.service.config.max_body_bytes, declared)
        more = True
        while more and reader.wanted:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if chunk:  # an empty message is no end: more_body says whether one follows
                reader.take(chunk)
            more = message.get("more_body", False)
        return reader
