"""The ``scimcore`` admin command (``../shared/spec/cli.md``): a thin layer over the Python API.

Errors go to stderr as one line with a non-zero exit; ``--json`` prints only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scimcore import SCIMError, ScimService, WorkspaceError, Workspaces
from scimcore.storage import Storage, TokenRecord

from . import cli_clients
from .bootstrap import (
    DEFAULT_DATABASE_URL,
    StorageOpenError,
    add_rate_limit_argument,
    database_url,
    open_storage,
    server_config,
)
from .cli_product import PRODUCT_COMMANDS, emit, iso, mail_command
from .mail import add_mail_arguments
from .serving import (
    add_public_url_arguments,
    create_flask_app,
    public_base_url,
    serve_forever,
    tenant_url,
    trusted_proxies,
)

__all__ = ["main"]


def _token_json(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "label": t.label,
        "created_by": t.created_by,
        "created_at": iso(t.created_at),
        "last_used_at": iso(t.last_used_at),
        "state": t.state,
        "dead_reason": t.dead_reason,
    }


def _group(sub: Any, name: str, text: str) -> Any:
    """A command with subcommands (``scimcore NAME ACTION``)."""
    parser = sub.add_parser(name, help=text, description=text)
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def _cmd(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A command whose one-line description is ``text``."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    return parser


def _slug(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("slug", help="the workspace's slug")
    return parser


def _json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scimcore",
        description="Administer scimcore workspaces: admins, tokens, Card Settings, cards, mail.",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="the database (SQLAlchemy URL, e.g. sqlite:///scimcore.db or "
        "postgresql+psycopg://user@host/db); default: $SCIMCORE_DATABASE_URL, "
        f"else {DEFAULT_DATABASE_URL}",
    )
    add_public_url_arguments(p, trust_proxy=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ws = _group(sub, "workspace", "create and list workspaces")
    c = _cmd(ws, "create", "create a workspace and its first active admin")
    _slug(c)
    c.add_argument("--admin", required=True, metavar="EMAIL", help="the first admin's e-mail")
    _json(_cmd(ws, "list", "list the workspaces"))

    ad = _group(sub, "admin", "add, list and deactivate admins; set console passwords")
    a = _cmd(ad, "add", "make someone an admin (again); their old tokens stay dead")
    _slug(a)
    a.add_argument("email", help="the admin's e-mail")
    a = _cmd(ad, "deactivate", "deactivate an admin: every token they created dies for good")
    _slug(a)
    a.add_argument("email", help="the admin's e-mail")
    _json(_slug(_cmd(ad, "list", "list the admins, active or not")))
    apw = _cmd(ad, "password", "set an admin's console sign-in password")
    _slug(apw)
    apw.add_argument("email", help="the admin's e-mail")
    apw.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of prompting",
    )

    tk = _group(sub, "token", "generate, list and delete the IdP's bearer tokens")
    g = _cmd(tk, "generate", "generate a token (its secret is shown once); older ones keep working")
    _slug(g)
    g.add_argument("--admin", required=True, metavar="EMAIL", help="the active admin creating it")
    g.add_argument("--label", default="", help="a name to recognise the token by, e.g. Entra")
    g.add_argument("--quiet", action="store_true", help="print only the token")
    add_public_url_arguments(g, trust_proxy=False, inherit=True)
    _json(_slug(_cmd(tk, "list", "list active and dead tokens (never their secrets)")))
    td = _cmd(tk, "delete", "delete a token: requests with it fail at once")
    _slug(td)
    td.add_argument("token_id", help="the token's id, from 'token list'")

    st = _cmd(sub, "settings", "show or change Card Settings: activation e-mail, card fields")
    _slug(st)
    st.add_argument(
        "--activation-email",
        choices=["on", "off"],
        help="send an activation e-mail to each newly provisioned person (on) or not (off)",
    )
    st.add_argument(
        "--fields",
        metavar="KEY,KEY",
        help="restrict the card fields fed by the IdP to these keys",
    )
    st.add_argument(
        "--map-field",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="feed card field KEY from the SCIM attribute PATH, e.g. "
        "employee_id=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    )
    st.add_argument("--reset-fields", action="store_true", help="back to the default fields")
    _json(st)

    tp = _group(sub, "template", "card templates: create, change, list, delete")
    for action, text in (
        ("create", "create a template"),
        ("set", "change a template's fields; the cards that inherit them follow"),
    ):
        t = _cmd(tp, action, text)
        _slug(t)
        t.add_argument("name", help="the template's name")
        t.add_argument(
            "--field",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a field value (repeatable); an empty VALUE removes the field",
        )
    _json(_slug(_cmd(tp, "list", "list the templates and their fields")))
    tpd = _cmd(tp, "delete", "delete a template no rule uses; its cards lose its fields")
    _slug(tpd)
    tpd.add_argument("name", help="the template's name")

    ru = _group(sub, "rule", "Card Settings rules: which template a new card gets")
    ra = _cmd(ru, "add", "add a rule at the end (its filter is checked now)")
    _slug(ra)
    ra.add_argument("--template", required=True, help="the template the rule applies")
    ra.add_argument(
        "--filter",
        required=True,
        metavar="EXPR",
        help='a SCIM filter over the user, card field names allowed: department eq "Sales"',
    )
    _json(_slug(_cmd(ru, "list", "list the rules in the order they are tried")))
    rr = _cmd(ru, "remove", "remove a rule")
    _slug(rr)
    rr.add_argument("rule_id", help="the rule's id, from 'rule list'")

    _json(_slug(_cmd(sub, "cards", "list every card, inactive and deprovisioned ones included")))
    cd = _group(sub, "card", "change one card: edit, unlock, lock, assign a template")
    for action, has_value, text in (
        ("edit", True, "set a field as the admin (the field stops following the IdP)"),
        ("unlock", False, "let the card's owner edit a field (it stops following the IdP)"),
        ("lock", False, "lock a field again: the owner can no longer edit it"),
        ("owner-edit", True, "set a field as the card's owner (refused on a locked field)"),
    ):
        c2 = _cmd(cd, action, text)
        _slug(c2)
        c2.add_argument("user_name", help="the person's user name")
        c2.add_argument("key", help="the card field, e.g. job_title")
        if has_value:
            c2.add_argument("value", help="the new value")
    cas = _cmd(cd, "assign", "assign a template to the card by hand")
    _slug(cas)
    cas.add_argument("user_name", help="the person's user name")
    cas.add_argument("template", help="the template's name")

    ac = _group(sub, "activation", "activation e-mails")
    acs = _cmd(ac, "send", "queue activation e-mails by hand, for one or many people")
    _slug(acs)
    acs.add_argument("user_names", nargs="+", metavar="USER_NAME", help="the people's user names")

    _json(_slug(_cmd(sub, "outbox", "show queued, sent and failed mail: attempts, last error")))

    ml = _group(sub, "mail", "deliver mail, retry a failed one")
    md = _cmd(ml, "deliver", "deliver due mail once; exit 1 if any attempt failed (why: stderr)")
    add_mail_arguments(md)
    add_public_url_arguments(md, trust_proxy=False, inherit=True)  # links in activation mail
    md.add_argument("--limit", type=int, default=100, help="at most this many mails")
    md.add_argument(
        "--max-attempts", type=int, default=5, help="give a mail up after this many failures"
    )
    md.add_argument("--json", action="store_true", help="print the report as JSON")
    mr = _slug(_cmd(ml, "retry", "queue a failed mail again, due now"))
    mr.add_argument("mail_id", help="the mail's id, as 'scimcore outbox SLUG' shows it")

    _slug(_cmd(sub, "seats", "print the number of active users (the seats used)"))

    lg = _cmd(sub, "log", "show the provisioning log, newest first (never a secret)")
    _json(_slug(lg))
    lg.add_argument("--limit", type=int, default=50, help="how many entries (default: 50)")

    cli_clients.add_parser(sub)  # OAuth clients: scimcore client ...

    sv = _cmd(sub, "serve", "serve SCIM and the console, delivering mail in the background")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free)")
    add_public_url_arguments(sv, inherit=True)
    add_mail_arguments(sv)
    add_rate_limit_argument(sv)
    return p


#: The commands that may make a new database: the first workspace, and a server.
_MAY_CREATE = {("workspace", "create"), ("serve", None)}


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///...`` URL (``None`` for any other database, or memory)."""
    if not url.startswith("sqlite"):
        return None
    try:
        from sqlalchemy.engine import make_url

        database = make_url(url).database
    except Exception:  # no sqlalchemy, or a bad URL: open_storage says which
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _open(args: argparse.Namespace) -> Storage:
    """The command's storage. A SQLite file that does not exist yet is made only by
    ``workspace create`` and ``serve``, which say which file they make (a run from another
    folder would otherwise start an empty database there); any other command refuses."""
    url = database_url(args.database_url)
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        if (args.command, getattr(args, "action", None)) not in _MAY_CREATE:
            raise WorkspaceError(
                f"no database at {path}: give --database-url or set SCIMCORE_DATABASE_URL, "
                "or make one with 'scimcore workspace create'"
            )
        if path.parent.is_dir():  # else opening it fails, and says so
            print(f"scimcore: creating a new database at {path}", file=sys.stderr)
    return open_storage(url)


def _run(args: argparse.Namespace, out: Any) -> int:
    storage = _open(args)
    api = Workspaces(storage)
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "workspace" and action == "create":
        ws = api.create(args.slug, args.admin)
        print(f"created workspace {ws.slug} (admin {args.admin.lower()})", file=out)
    elif cmd == "workspace" and action == "list":
        rows = [{"slug": w.slug, "id": w.id, "created_at": iso(w.created_at)} for w in api.list()]
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
    elif cmd == "admin" and action == "list":
        admins = [
            {"email": a.email, "active": a.active, "created_at": iso(a.created_at)}
            for a in api.list_admins(args.slug)
        ]
        lines = [f"{a['email']}  {'active' if a['active'] else 'inactive'}" for a in admins]
        emit(args, out, admins, lines)
    elif cmd == "admin" and action == "password":
        api.set_password_hash(args.slug, args.email, _new_password_hash(args.password_stdin))
        print(f"password of {args.email.lower()} set", file=out)
    elif cmd == "token" and action == "generate":
        token = api.generate_token(args.slug, args.admin, args.label)
        if args.quiet:
            print(token.plaintext, file=out)
        else:
            _print_tenant_url(args, out)
            print(f"Secret Token: {token.plaintext}", file=out)
            print(f"Token id: {token.record.id} (the secret is shown only once)", file=out)
    elif cmd == "token" and action == "list":
        tokens = [_token_json(t) for t in api.list_tokens(args.slug)]
        if args.json:
            print(json.dumps(tokens), file=out)
        else:
            for t in tokens:
                used = t["last_used_at"] or "never used"
                state = "active" if t["state"] == "active" else f"DEAD ({t['dead_reason']})"
                print(
                    f"{t['id']}  {state}  {t['label'] or '-'}  by {t['created_by']}  {used}",
                    file=out,
                )
    elif cmd == "token" and action == "delete":
        api.delete_token(args.slug, args.token_id)
        print(f"token {args.token_id} deleted", file=out)
    elif cmd in PRODUCT_COMMANDS:
        PRODUCT_COMMANDS[cmd](ScimService(storage), args, out)
    elif cmd == "mail":
        return mail_command(ScimService(storage), args, out)
    elif cmd == "serve":
        _serve(ScimService(storage, config=server_config(args.rate_limit)), args, out)
    return 0


def _print_tenant_url(args: argparse.Namespace, out: Any) -> None:
    """``Tenant URL: ...`` from ``--base-url`` or ``$SCIMCORE_BASE_URL``; without either, a
    note on stderr (the port a server listens on is not guessed)."""
    base = public_base_url(args.base_url)
    if base is None:
        print(
            "scimcore: note: the Tenant URL is <the server's public URL>/scim/v2; "
            "give --base-url or set SCIMCORE_BASE_URL to print it",
            file=sys.stderr,
        )
    else:
        print(f"Tenant URL: {tenant_url(base)}", file=out)


def _serve(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    """``scimcore serve``: SCIM (and the console) with a mail delivery worker."""
    from .bootstrap import secret_key
    from .mail import mail_settings_from_args

    mail = mail_settings_from_args(args)
    base = public_base_url(args.base_url)
    app = create_flask_app(
        service,
        base_url=base,
        trust_proxy=trusted_proxies(args.trust_proxy),
        secret_key=secret_key(database_url(args.database_url)),
    )
    where = {"host": args.host, "port": args.port}
    try:
        serve_forever(app, service, **where, base_url=base, mail=mail, out=out)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else exc
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {reason}") from None


def _new_password_hash(from_stdin: bool) -> str:
    """A console password read from standard input (its first line) or prompted twice, and
    hashed (``scimcore_adapters.passwords``, the ``console`` extra)."""
    try:
        from .passwords import check_password, hash_password
    except ModuleNotFoundError:
        raise WorkspaceError(
            "passwords need argon2-cffi, which is not installed: pip install 'scimcore[console]'"
        ) from None
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass("New password: ")
        check_password(password)
        if getpass.getpass("Repeat the password: ") != password:
            raise WorkspaceError("the two passwords differ; nothing was changed")
    return hash_password(password)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scimcore`` console script."""
    args = _parser().parse_args(argv)
    try:
        code = _run(args, sys.stdout)
        sys.stdout.flush()  # a closed pipe is noticed here, not at exit
        return code
    except BrokenPipeError:
        # The reader stopped reading (``| head``): end quietly, as a program stopped by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (WorkspaceError, SCIMError, StorageOpenError, ValueError) as exc:
        print(f"scimcore: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
