"""Floor: the routes of ``../shared/bench/apps/ceiling_flask.py`` as a bare WSGI callable.

No framework at all: a bearer check, one dict lookup, a small JSON body. Under gunicorn it
shows what the server itself costs per request on this machine (HTTP parsing, threads,
sockets), below the bare-Flask ceiling. ``benchmarks/http_compare.py --targets ...,floor-wsgi``
runs it side by side with the others.

    gunicorn -w 1 -k gthread --threads 4 floor_wsgi:app        (from benchmarks/apps)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

AUTH = "Bearer bench-token"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
FIXED = {"schemas": [USER], "id": "0", "userName": "x", "active": True}
USERS: dict[str, dict[str, Any]] = {}
BY_NAME: dict[str, str] = {}
_ids = itertools.count(1)


def _list(found: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(found),
        "Resources": found,
    }


def _route(method: str, path: str, query: str, body: Any) -> tuple[str, Any]:
    if path == "/v2/Users" and method == "POST":
        uid = str(next(_ids))
        rec = {"schemas": [USER], "id": uid, "userName": body.get("userName"), "active": True}
        USERS[uid] = rec
        BY_NAME[rec["userName"]] = uid
        return "201 Created", rec
    if path == "/v2/Users":
        args = {k: v[0] for k, v in parse_qs(query).items()}
        if "filter" in args:
            name = args["filter"].partition('"')[2].rpartition('"')[0]
            found = [USERS[BY_NAME[name]]] if name in BY_NAME else []
            return "200 OK", _list(found, len(found), 1)
        start, count = int(args.get("startIndex", 1)), int(args.get("count", 100))
        page = list(itertools.islice(USERS.values(), start - 1, start - 1 + count))
        return "200 OK", _list(page, len(USERS), start)
    uid = path.rsplit("/", 1)[1]
    if method == "DELETE":
        if uid in USERS:
            BY_NAME.pop(USERS.pop(uid)["userName"], None)
        return "204 No Content", None
    return "200 OK", USERS.get(uid, FIXED)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("HTTP_AUTHORIZATION") != AUTH:
        status, doc = "401 Unauthorized", {"status": "401"}
    else:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(size)) if size else None
        status, doc = _route(
            environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""), body
        )
    data = json.dumps(doc).encode() if doc is not None else b""
    start_response(
        status, [("Content-Type", "application/scim+json"), ("Content-Length", str(len(data)))]
    )
    return [data]
