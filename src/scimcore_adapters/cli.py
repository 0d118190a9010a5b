"""The ``scimcore`` admin command (``../shared/spec/cli.md``): a thin layer over the Python API.

Errors go to stderr as one line with a non-zero exit; ``--json`` prints only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scimcore import ScimService, WorkspaceError, Workspaces
from scimcore.storage import TokenRecord

from .bootstrap import database_url, open_storage

__all__ = ["main"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _token_json(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "label": t.label,
        "created_by": t.created_by,
        "created_at": _iso(t.created_at),
        "last_used_at": _iso(t.last_used_at),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scimcore", description="Administer scimcore workspaces.")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: $SCIMCORE_DATABASE_URL)")
    p.add_argument(
        "--base-url",
        default="http://127.0.0.1:8000/scim/v2",
        help="the public SCIM base URL shown as the Tenant URL",
    )
    sub = p.add_subparsers(dest="command", required=True)

    ws = sub.add_parser("workspace", help="workspaces").add_subparsers(dest="action", required=True)
    c = ws.add_parser("create", help="create a workspace and its first admin")
    c.add_argument("slug")
    c.add_argument("--admin", required=True, metavar="EMAIL")
    ls = ws.add_parser("list", help="list workspaces")
    ls.add_argument("--json", action="store_true")

    ad = sub.add_parser("admin", help="admins").add_subparsers(dest="action", required=True)
    for action in ("add", "deactivate"):
        a = ad.add_parser(action)
        a.add_argument("slug")
        a.add_argument("email")

    tk = sub.add_parser("token", help="bearer tokens").add_subparsers(dest="action", required=True)
    g = tk.add_parser("generate", help="generate a token (shown once)")
    g.add_argument("slug")
    g.add_argument("--admin", required=True, metavar="EMAIL")
    g.add_argument("--label", default="")
    g.add_argument("--quiet", action="store_true", help="print only the token")
    tl = tk.add_parser("list")
    tl.add_argument("slug")
    tl.add_argument("--json", action="store_true")
    td = tk.add_parser("delete")
    td.add_argument("slug")
    td.add_argument("token_id")

    sv = sub.add_parser("serve", help="serve the SCIM endpoint")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    return p


def _run(args: argparse.Namespace, out: Any) -> int:
    storage = open_storage(database_url(args.database_url))
    api = Workspaces(storage)
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "workspace" and action == "create":
        ws = api.create(args.slug, args.admin)
        print(f"created workspace {ws.slug} (admin {args.admin.lower()})", file=out)
    elif cmd == "workspace" and action == "list":
        rows = [{"slug": w.slug, "id": w.id, "created_at": _iso(w.created_at)} for w in api.list()]
        if args.json:
            print(json.dumps(rows), file=out)
        else:
            for r in rows:
                print(r["slug"], file=out)
    elif cmd == "admin" and action == "add":
        api.add_admin(args.slug, args.email)
        print(f"{args.email.lower()} is an admin of {args.slug}", file=out)
    elif cmd == "admin" and action == "deactivate":
        api.deactivate_admin(args.slug, args.email)
        print(f"{args.email.lower()} deactivated; their tokens no longer work", file=out)
    elif cmd == "token" and action == "generate":
        token = api.generate_token(args.slug, args.admin, args.label)
        if args.quiet:
            print(token.plaintext, file=out)
        else:
            print(f"Tenant URL: {args.base_url}", file=out)
            print(f"Secret Token: {token.plaintext}", file=out)
            print(f"Token id: {token.record.id} (the secret is shown only once)", file=out)
    elif cmd == "token" and action == "list":
        tokens = [_token_json(t) for t in api.list_tokens(args.slug)]
        if args.json:
            print(json.dumps(tokens), file=out)
        else:
            for t in tokens:
                used = t["last_used_at"] or "never used"
                print(f"{t['id']}  {t['label'] or '-'}  by {t['created_by']}  {used}", file=out)
    elif cmd == "token" and action == "delete":
        api.delete_token(args.slug, args.token_id)
        print(f"token {args.token_id} deleted", file=out)
    elif cmd == "serve":
        from flask import Flask

        from .flask import ScimExtension

        app = Flask("scimcore")
        ScimExtension(ScimService(storage), app)
        print(f"Tenant URL: http://{args.host}:{args.port}/scim/v2", file=out, flush=True)
        app.run(host=args.host, port=args.port, threaded=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scimcore`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args, sys.stdout)
    except (WorkspaceError, ValueError) as exc:
        print(f"scimcore: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
