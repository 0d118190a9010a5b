"""``scimcore client redirect-uri ...``: the redirect URIs of a client, for the authorization-code
grant (issue 20, Okta; ``add`` is fixed in ``cli.md``). A thin layer over
:class:`scimcore.authorization.AuthorizationCodes`; :mod:`.cli_clients` adds the parser and
hands these commands to :func:`run`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from scimcore import ScimService
from scimcore.authorization import AUTHORIZE_PATH, RedirectUri
from scimcore.oauth import TOKEN_PATH

__all__ = ["add_parser", "authorize_endpoint", "run", "uri_json"]


def authorize_endpoint(token_endpoint: str | None) -> str | None:
    """The authorize endpoint's URL beside the token endpoint's (``…/token`` → ``…/authorize``)."""
    if token_endpoint is None or not token_endpoint.endswith(TOKEN_PATH):
        return None
    return token_endpoint[: -len(TOKEN_PATH)] + AUTHORIZE_PATH


def uri_json(uri: RedirectUri) -> dict[str, Any]:
    """A redirect URI as ``client list`` and ``redirect-uri list`` show it."""
    return {"id": uri.id, "uri": uri.uri, "created_at": uri.created_at.isoformat()}


def add_parser(actions: Any) -> None:
    """``client redirect-uri add|list|delete`` on the ``client`` subparsers ``actions``."""
    text = "register, list or delete the redirect URIs of the authorization-code grant (Okta)"
    parser = actions.add_parser("redirect-uri", help=text, description=text)
    uris = parser.add_subparsers(dest="uri_action", required=True, metavar="ACTION")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = uris.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("slug", help="the workspace's slug")
        sub.add_argument("client_id", help="the client's id, from 'client list'")
        return sub

    add = command("add", "register a redirect URI (matched exactly, character for character)")
    add.add_argument("uri", help="the URI, e.g. Okta's .../admin/app/cpc/APPNAME/oauth/callback")
    add.add_argument("--json", action="store_true", help="print JSON instead of text")
    listed = command("list", "list the client's redirect URIs")
    listed.add_argument("--json", action="store_true", help="print JSON instead of text")
    delete = command("delete", "delete a redirect URI: authorize requests naming it fail")
    delete.add_argument("uri", help="the URI, or its id from 'redirect-uri list'")


def run(service: ScimService, args: argparse.Namespace, out: Any, token_url: str | None) -> None:
    """Carry out one ``scimcore client redirect-uri ...`` command."""
    codes = service.authorization
    if args.uri_action == "add":
        added = codes.add_redirect_uri(args.slug, args.client_id, args.uri)
        endpoint = authorize_endpoint(token_url)
        if args.json:
            print(json.dumps({**uri_json(added), "authorize_endpoint": endpoint}), file=out)
            return
        print(f"Redirect URI: {added.uri} (id {added.id})", file=out)
        where = endpoint or f"{AUTHORIZE_PATH} at the server's root (pass --base-url to see it)"
        print(f"Authorize endpoint: {where}", file=out)
        if token_url:
            print(f"Token endpoint: {token_url}", file=out)
    elif args.uri_action == "list":
        rows = [uri_json(u) for u in codes.list_redirect_uris(args.slug, args.client_id)]
        if args.json:
            print(json.dumps(rows), file=out)
        for row in [] if args.json else rows:
            print(f"{row['id']}  {row['uri']}", file=out)
    else:
        codes.delete_redirect_uri(args.slug, args.client_id, args.uri)
        print(f"redirect URI {args.uri} deleted", file=out)
