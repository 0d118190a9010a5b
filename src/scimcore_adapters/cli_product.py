"""The ``scimcore`` commands of the card product: Card Settings, templates, rules, cards,
activation e-mails, the outbox and mail delivery, seats and the provisioning log (names fixed in
``cli.md``). Each handler is a thin layer over :class:`scimcore.product.Product` (or the outbox
functions); :mod:`.cli` builds the parsers and hands these commands here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scimcore import ScimService, WorkspaceError

from . import cli_clients
from .serving import public_base_url

__all__ = ["PRODUCT_COMMANDS", "emit", "iso", "mail_command"]


def iso(value: datetime | None) -> str | None:
    """An instant as the commands print it (ISO 8601), ``None`` for none."""
    return value.isoformat() if value else None


def _fields(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise WorkspaceError(f"--field takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def emit(args: argparse.Namespace, out: Any, rows: Any, lines: Sequence[str]) -> None:
    """``rows`` as JSON with ``--json``, else the human ``lines``."""
    if getattr(args, "json", False):
        print(json.dumps(rows), file=out)
    else:
        for line in lines:
            print(line, file=out)


def _settings(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    from scimcore.cards import DEFAULT_MAPPING, FieldRule

    p = service.product
    mapping = None
    if args.reset_fields or args.fields or args.map_field:
        mapping = DEFAULT_MAPPING if args.reset_fields else p.mapping(args.slug)
        if args.fields:
            mapping = mapping.restrict(k.strip() for k in args.fields.split(",") if k.strip())
        for key, path in _fields(args.map_field).items():
            mapping = mapping.extend(FieldRule(key, key.replace("_", " ").capitalize(), path))
    activation = None if args.activation_email is None else args.activation_email == "on"
    if activation is not None or mapping is not None:
        s = p.update_settings(args.slug, activation_email=activation, mapping=mapping)
    else:
        s = p.settings(args.slug)
    fields = {r.key: r.path for r in p.mapping(args.slug).rules}
    row = {"activation_email": s.activation_email, "fields": fields}
    lines = [f"activation email: {'on' if s.activation_email else 'off'}"]
    lines += [f"field {k} <- {v}" for k, v in fields.items()]
    emit(args, out, row, lines)


def _template(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    p = service.product
    if args.action == "list":
        rows = [{"name": t.name, "fields": dict(t.fields)} for t in p.templates(args.slug)]
        emit(args, out, rows, [f"{r['name']}: {json.dumps(r['fields'])}" for r in rows])
        return
    if args.action == "delete":
        changed = p.delete_template(args.slug, args.name)
        print(f"template {args.name} deleted ({changed} cards updated)", file=out)
    elif args.action == "create":
        t = p.create_template(args.slug, args.name, _fields(args.field))
        print(f"template {t.name}: {json.dumps(dict(t.fields))}", file=out)
    else:
        u = p.set_template(args.slug, args.name, _fields(args.field))
        print(f"template {u.name}: {json.dumps(dict(u.fields))}", file=out)
        print(f"{u.cards_updated} cards updated", file=out)


def _rule(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    p = service.product
    if args.action == "add":
        r = p.add_rule(args.slug, args.template, args.filter)
        print(f"rule {r.id}: {r.filter} -> {r.template}", file=out)
    elif args.action == "list":
        rows = [
            {"id": r.id, "position": r.position, "filter": r.filter, "template": r.template}
            for r in p.rules(args.slug)
        ]
        emit(args, out, rows, [f"{r['id']}  {r['filter']} -> {r['template']}" for r in rows])
    else:
        p.remove_rule(args.slug, args.rule_id)
        print(f"rule {args.rule_id} removed", file=out)


def _cards(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    rows = [v.to_dict() for v in service.product.cards(args.slug)]
    lines = [
        f"{r['user_name']}  {'active' if r['active'] else 'inactive'}  "
        + ", ".join(f"{k}={f['value']}" for k, f in r["fields"].items())
        for r in rows
    ]
    emit(args, out, rows, lines)


def _card(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    p = service.product
    if args.action == "edit":
        card = p.admin_edit(args.slug, args.user_name, args.key, args.value)
    elif args.action == "unlock":
        card = p.unlock(args.slug, args.user_name, args.key)
    elif args.action == "lock":
        card = p.lock(args.slug, args.user_name, args.key)
    elif args.action == "assign":
        card = p.assign_template(args.slug, args.user_name, args.template)
        print(f"{args.user_name}: template {card.template}", file=out)
        return
    else:
        card = p.owner_edit(args.slug, args.user_name, args.key, args.value)
    f = card.fields[args.key]
    print(
        f"{args.key}={f.value} locked={f.locked} linked={f.linked} source={f.source.value}",
        file=out,
    )


def _activation(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    for mail in service.product.send_activation(args.slug, args.user_names):
        print(f"queued activation email to {mail.to} ({mail.id})", file=out)


def _outbox(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    from scimcore.outbox import last_attempt

    people = {v.user_id: v.user_name for v in service.product.cards(args.slug)}
    rows = []
    for m in service.product.outbox(args.slug):
        last = last_attempt(m)
        rows.append(
            {
                "id": m.id,
                "to": m.to,
                "kind": m.kind,
                "user_name": people.get(m.person_id),
                "status": m.status,
                "attempts": m.attempts,
                "last_attempt_at": iso(last.at),
                "last_error": last.error,
                "next_attempt_at": iso(m.next_attempt_at) if m.status == "pending" else None,
                "created_at": iso(m.created_at),
                "sent_at": iso(m.sent_at),
            }
        )
    lines = [
        f"{r['id']}  {r['kind']}  {r['to']}  {r['status']}  attempts {r['attempts']}"
        + (f"  last {r['last_attempt_at']}" if r["last_attempt_at"] else "")
        + (f"  error: {r['last_error']}" if r["last_error"] else "")
        for r in rows
    ]
    emit(args, out, rows, lines)


def mail_command(service: ScimService, args: argparse.Namespace, out: Any) -> int:
    """``mail deliver`` (1 when any attempt failed) and ``mail retry``."""
    from scimcore.outbox import deliver_pending, retry_mail

    from .mail import mail_settings_from_args

    if args.action == "retry":
        mail = retry_mail(service.storage, service.runtime, args.slug, args.mail_id)
        print(f"mail {mail.id} to {mail.to} queued again", file=out)
        return 0
    settings = mail_settings_from_args(args)
    report = deliver_pending(
        service.storage,
        settings.mailer(),
        service.runtime,
        limit=args.limit,
        max_attempts=args.max_attempts,
        base_url=public_base_url(args.base_url),  # activation links: the served pages' root
    )
    failures = [
        {
            "id": f.mail_id,
            "to": f.to,
            "attempts": f.attempts,
            "reason": f.reason,
            "final": f.final,
            "next_attempt_at": iso(f.next_attempt_at),
        }
        for f in report.failures
    ]
    row = {
        "sent": report.sent,
        "retrying": report.retrying,
        "failed": report.failed,
        "failures": failures,
    }
    emit(
        args, out, row, [f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}"]
    )
    for f in failures:
        then = "given up" if f["final"] else f"next attempt at {f['next_attempt_at']}"
        print(
            f"scimcore: mail {f['id']} to {f['to']} failed (attempt {f['attempts']}, {then}): "
            f"{f['reason']}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def _seats(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    print(service.product.seats(args.slug), file=out)


def _log(service: ScimService, args: argparse.Namespace, out: Any) -> None:
    rows = [
        {
            "at": iso(e.at),
            "operation": e.operation,
            "resource_id": e.resource_id,
            "status": e.status,
            "detail": e.detail,
            "token_id": e.token_id,
            "actor": e.actor,
        }
        for e in service.product.log(args.slug, args.limit)
    ]
    lines = [
        f"{r['at']}  {r['operation']:<16} {r['status']}  {r['resource_id'] or '-'}  {r['detail']}"
        for r in rows
    ]
    emit(args, out, rows, lines)


#: The handler of each product command (the ``mail`` command returns its exit code:
#: :func:`mail_command`).
PRODUCT_COMMANDS = {
    "settings": _settings,
    "template": _template,
    "rule": _rule,
    "cards": _cards,
    "card": _card,
    "activation": _activation,
    "outbox": _outbox,
    "seats": _seats,
    "log": _log,
    "client": cli_clients.run,
}
