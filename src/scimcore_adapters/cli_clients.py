"""``scimcore client ...``: OAuth 2.0 clients of a workspace (issue 20; names fixed in
``cli.md``). A thin layer over :class:`scimcore.oauth_clients.OAuthClients`; the ``scimcore``
command (:mod:`.cli`) adds these parsers and hands ``client`` commands to :func:`run`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from scimcore import ScimService
from scimcore.authorization import RedirectUri
from scimcore.federation import FederatedIdentity
from scimcore.oauth import TOKEN_PATH
from scimcore.oauth_clients import (
    DEFAULT_SECRET_DAYS,
    EXPIRY_WARNING,
    MAX_SECRET_DAYS,
    MIN_SECRET_DAYS,
    ClientSecret,
    IssuedSecret,
    OAuthClient,
)

from . import cli_federation, cli_redirect_uris

__all__ = ["add_parser", "run", "token_endpoint"]

_SCIM_PREFIX = "/scim/v2"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def token_endpoint(base_url: str | None) -> str | None:
    """The token endpoint's URL beside the SCIM base URL (the Tenant URL): at the root the
    SCIM prefix ``/scim/v2`` is mounted under, else at the URL's origin. ``None``: unknown."""
    if not base_url:
        return None
    base = base_url.rstrip("/")
    if base.endswith(_SCIM_PREFIX):
        return base[: -len(_SCIM_PREFIX)] + TOKEN_PATH
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}"


def _command(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("slug", help="the workspace's slug")
    return parser


def _secret_days(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret-days",
        type=int,
        default=DEFAULT_SECRET_DAYS,
        metavar="N",
        help=f"days until the secret expires ({MIN_SECRET_DAYS} to {MAX_SECRET_DAYS}; "
        f"default: {DEFAULT_SECRET_DAYS})",
    )


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _client_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("client_id", help="the client's id, from 'client list'")


def add_parser(sub: Any) -> None:
    """The ``client`` command and its actions, on the ``scimcore`` subparsers ``sub``."""
    text = "OAuth 2.0 clients for IdPs that need client credentials (Entra's gallery)"
    parser = sub.add_parser("client", help=text, description=text)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = _command(actions, "create", "create a client and its first secret (shown once)")
    create.add_argument(
        "--admin", required=True, metavar="EMAIL", help="the active admin creating it"
    )
    create.add_argument("--label", default="", help="a name to recognise the client by")
    _secret_days(create)
    create.add_argument(
        "--no-secret",
        action="store_true",
        help="create it without a secret, for a federated identity only ('client federate')",
    )
    _json_flag(create)

    listed = _command(actions, "list", "list clients with their secrets' ids, expiry and last use")
    _json_flag(listed)

    secret = actions.add_parser(
        "secret",
        help="add or delete a client's secrets (rotation)",
        description="add or delete a client's secrets (rotation)",
    )
    secrets = secret.add_subparsers(dest="secret_action", required=True, metavar="ACTION")
    add = _command(secrets, "add", "add a secret (shown once); older secrets keep working")
    _client_id(add)
    _secret_days(add)
    _json_flag(add)
    delete = _command(secrets, "delete", "delete a secret: it fails at once")
    _client_id(delete)
    delete.add_argument("secret_id", help="the secret's id, from 'client list'")

    gone = _command(
        actions, "delete", "delete a client: its secrets and access tokens fail at once"
    )
    _client_id(gone)
    cli_federation.add_parsers(actions, _command)
    cli_redirect_uris.add_parser(actions)  # the authorization-code grant's redirect URIs


def _issued(issued: IssuedSecret, endpoint: str | None) -> dict[str, Any]:
    return {
        "client_id": issued.client.id,
        "client_secret": issued.plaintext,
        "secret_id": issued.secret.id,
        "expires_at": _iso(issued.secret.expires_at),
        "token_endpoint": endpoint,
    }


def _print_issued(args: argparse.Namespace, out: Any, issued: IssuedSecret) -> None:
    endpoint = token_endpoint(args.base_url)
    shown = _issued(issued, endpoint)
    if args.json:
        print(json.dumps(shown), file=out)
        return
    print(f"Client ID: {shown['client_id']}", file=out)
    print(f"Client secret: {shown['client_secret']}", file=out)
    print(f"Secret id: {shown['secret_id']} (the secret is shown only once)", file=out)
    print(f"Expires: {shown['expires_at']}", file=out)
    where = endpoint or f"{TOKEN_PATH} at the server's root (pass --base-url to see the URL)"
    print(f"Token endpoint: {where}", file=out)


def _print_secretless(args: argparse.Namespace, out: Any, client: OAuthClient) -> None:
    endpoint = token_endpoint(args.base_url)
    if args.json:
        print(json.dumps({"client_id": client.id, "token_endpoint": endpoint}), file=out)
        return
    print(f"Client ID: {client.id}", file=out)
    print("No secret: trust a federated identity with 'scimcore client federate'", file=out)


def _secret_json(secret: ClientSecret, now: datetime) -> dict[str, Any]:
    return {
        "secret_id": secret.id,
        "created_at": _iso(secret.created_at),
        "expires_at": _iso(secret.expires_at),
        "last_used_at": _iso(secret.last_used_at),
        "expired": secret.expires_at <= now,
        "expires_soon": now < secret.expires_at <= now + EXPIRY_WARNING,
    }


def _client_json(
    client: OAuthClient,
    secrets: list[ClientSecret],
    federations: list[FederatedIdentity],
    now: datetime,
    uris: list[RedirectUri],
) -> dict[str, Any]:
    return {
        "client_id": client.id,
        "label": client.label,
        "created_by": client.created_by,
        "created_at": _iso(client.created_at),
        "state": client.state,
        "dead_reason": client.dead_reason,
        "secrets": [_secret_json(s, now) for s in secrets],
        "federations": [cli_federation.federation_json(f) for f in federations],
        "redirect_uris": [cli_redirect_uris.uri_json(u) for u in uris],
    }


def _print_list(args: argparse.Namespace, out: Any, rows: list[dict[str, Any]]) -> None:
    if args.json:
        print(json.dumps(rows), file=out)
        return
    for c in rows:
        state = "active" if c["state"] == "active" else f"DEAD ({c['dead_reason']})"
        print(f"{c['client_id']}  {state}  {c['label'] or '-'}  by {c['created_by']}", file=out)
        for s in c["secrets"]:
            flag = "  EXPIRED" if s["expired"] else "  EXPIRES SOON" if s["expires_soon"] else ""
            used = s["last_used_at"] or "never used"
            print(f"  secret {s['secret_id']}  expires {s['expires_at']}  {used}{flag}", file=out)
        cli_federation.print_federations(c["federations"], out)
        for u in c["redirect_uris"]:
            print(f"  redirect URI {u['uri']}", file=out)


def run(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    """Carry out one ``scimcore client ...`` command."""
    clients = service.oauth_clients
    if args.action in cli_federation.ACTIONS:
        cli_federation.run(service, args, out, token_endpoint(args.base_url))
    elif args.action == "create" and args.no_secret:
        _print_secretless(
            args, out, clients.create_without_secret(args.slug, args.admin, args.label)
        )
    elif args.action == "create":
        issued = clients.create(args.slug, args.admin, args.label, args.secret_days)
        _print_issued(args, out, issued)
    elif args.action == "list":
        now = service.runtime.now()
        uris = service.authorization.list_redirect_uris
        rows = [
            _client_json(
                c,
                list(s),
                list(clients.federations(args.slug, c.id)),
                now,
                list(uris(args.slug, c.id)),
            )
            for c, s in clients.list(args.slug)
        ]
        _print_list(args, out, rows)
    elif args.action == "redirect-uri":
        cli_redirect_uris.run(service, args, out, token_endpoint(args.base_url))
    elif args.action == "secret" and args.secret_action == "add":
        _print_issued(args, out, clients.add_secret(args.slug, args.client_id, args.secret_days))
    elif args.action == "secret":
        clients.delete_secret(args.slug, args.client_id, args.secret_id)
        print(f"secret {args.secret_id} deleted", file=out)
    else:
        clients.delete(args.slug, args.client_id)
        print(f"client {args.client_id} deleted", file=out)
