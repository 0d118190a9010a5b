"""``scimcore client federate`` and its companions (issue 20 item 3; ``cli.md``): a client
that trusts a federated identity (Entra workload identity federation) instead of, or beside,
a secret. :mod:`.cli_clients` adds these parsers to ``client`` and hands their actions here.

``client create --no-secret`` makes a client without a secret, for federation only;
``client federate`` prints what Entra's Connectivity page asks for (Client ID, Token URL, SCIM
URL); ``client unfederate`` stops trusting an identity; ``client list`` shows each client's
identities (:func:`federation_json`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scimcore import ScimService
from scimcore.assertions import assertion_support
from scimcore.federation import FederatedIdentity

__all__ = ["ACTIONS", "add_parsers", "federation_json", "print_federations", "run"]

#: The ``client`` actions handled here.
ACTIONS = frozenset({"federate", "unfederate"})
_DISCOVERY = "/.well-known/openid-configuration"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def add_parsers(actions: Any, command: Callable[[Any, str, str], argparse.ArgumentParser]) -> None:
    """``federate`` and ``unfederate`` on the ``client`` actions (``command``: a parser with
    the workspace slug)."""
    federate = command(
        actions,
        "federate",
        "trust a federated identity (Entra workload identity federation) instead of a secret",
    )
    federate.add_argument("client_id", help="the client's id, from 'client list'")
    federate.add_argument(
        "--issuer", required=True, metavar="URL", help="the assertion's iss (Entra: Issuer)"
    )
    federate.add_argument(
        "--subject", required=True, metavar="SUB", help="the assertion's sub (Entra: Subject)"
    )
    federate.add_argument(
        "--audience", required=True, metavar="AUD", help="the assertion's aud (Entra: Audience)"
    )
    federate.add_argument(
        "--jwks-url",
        metavar="URL",
        help="where the issuer's keys are (Entra: JWKS URL); default: OpenID discovery from "
        "the issuer",
    )
    federate.add_argument("--json", action="store_true", help="print JSON instead of text")
    gone = command(actions, "unfederate", "stop trusting a federated identity, at once")
    gone.add_argument("client_id", help="the client's id, from 'client list'")
    gone.add_argument("federation_id", help="the federated identity's id, from 'client list'")


def federation_json(federation: FederatedIdentity) -> dict[str, Any]:
    """A federated identity as ``client list --json`` shows it."""
    return {
        "federation_id": federation.id,
        "issuer": federation.issuer,
        "subject": federation.subject,
        "audience": federation.audience,
        "jwks_url": federation.jwks_url,
        "created_at": _iso(federation.created_at),
        "last_used_at": _iso(federation.last_used_at),
    }


def _keys(shown: dict[str, Any]) -> str:
    if shown["jwks_url"]:
        return str(shown["jwks_url"])
    return f"discovered from {str(shown['issuer']).rstrip('/')}{_DISCOVERY}"


def print_federations(rows: list[dict[str, Any]], out: Any) -> None:
    """The text lines of ``client list`` for a client's federated identities."""
    for f in rows:
        used = f["last_used_at"] or "never used"
        print(f"  federation {f['federation_id']}  {used}", file=out)
        print(f"    issuer {f['issuer']}  subject {f['subject']}", file=out)
        print(f"    audience {f['audience']}  keys {_keys(f)}", file=out)


def run(service: ScimService, args: argparse.Namespace, out: Any, endpoint: str | None) -> None:
    """Carry out ``client federate`` or ``client unfederate`` (``endpoint``: the token
    endpoint's URL, when the public URL is known)."""
    clients = service.oauth_clients
    if args.action == "unfederate":
        clients.delete_federation(args.slug, args.client_id, args.federation_id)
        print(f"federated identity {args.federation_id} deleted", file=out)
        return
    federation = clients.federate(
        args.slug, args.client_id, args.issuer, args.subject, args.audience, args.jwks_url
    )
    shown = {
        **federation_json(federation),
        "client_id": federation.client_id,
        "token_endpoint": endpoint,
        "tenant_url": args.base_url,
    }
    if args.json:
        print(json.dumps(shown), file=out)
        return
    print(f"Federated identity: {shown['federation_id']}", file=out)
    print(f"Issuer: {shown['issuer']}", file=out)
    print(f"Subject: {shown['subject']}", file=out)
    print(f"Audience: {shown['audience']}", file=out)
    print(f"Keys: {_keys(shown)}", file=out)
    print("In Entra's Connectivity page:", file=out)
    print(f"Client ID: {shown['client_id']}", file=out)
    unknown = "(pass --base-url to see the URL)"
    print(f"Token URL: {endpoint or '/oauth/token at the server root ' + unknown}", file=out)
    print(f"SCIM URL: {args.base_url or 'the Tenant URL ' + unknown}", file=out)
    if not assertion_support():
        print(
            "Warning: PyJWT is not installed here; the server that answers the token "
            "endpoint needs it: pip install 'scimcore[federation]'",
            file=out,
        )
