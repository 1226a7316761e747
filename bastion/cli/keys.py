"""`bastion keys create | list | rotate | revoke`: the API keys that stand for users. Every change
is an audit record, made by the CLI's operator."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import typer
from rich.markup import escape

from bastion.audit import AuditEvent, AuditRecord
from bastion.cli._common import JSON_OPTION, out, parse_groups, say
from bastion.cli._common import settings as get_settings
from bastion.keys import KeyInfo, Role
from bastion.settings import Settings
from bastion.wiring import audit_log, key_store

app = typer.Typer(help="API keys: each stands for one user and their groups.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="The user this key stands for."),
    groups: str | None = typer.Option(None, "--groups", help="Comma-separated groups, e.g. legal,hr."),
    admin: bool = typer.Option(False, "--admin", help="May manage documents and keys through the API."),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime, e.g. 90d, 12h or 30m; after it the key gets 401 (default: never)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    role: Role = "admin" if admin else "user"
    lifetime = _duration(expires) if expires else None
    s = get_settings(ctx)
    with key_store(s) as keys:
        try:
            key, info = keys.create(user, parse_groups(groups), role=role, expires_in_s=lifetime)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).splitlines()[0], param_hint="--user/--groups") from exc
    _audit(s, "key_created", info)
    _show(key, info, as_json)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., help="The key's id (from `keys list`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Replace a key with a new one for the same user, groups, role and lifetime; the old one stops
    working at once."""
    s = get_settings(ctx)
    with key_store(s) as keys:
        key, info = keys.rotate(key_id)
    _audit(s, "key_rotated", info, f"replaces {key_id}")
    _show(key, info, as_json)


def _show(key: str, info: KeyInfo, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"key": key, **info.model_dump()}))
        return
    out.print(key, markup=False, highlight=False)
    lifetime = f", expires {_when(info.expires_at)}" if info.expires_at else ""
    say(
        f"Key {info.key_id} for {escape(info.user)} ({escape(', '.join(info.groups)) or 'no groups'}, "
        f"{info.role}{lifetime}). It is not shown again."
    )


def _audit(s: Settings, event: AuditEvent, info: KeyInfo, detail: str = "") -> None:
    """Key changes are made by the CLI's operator; the record names the key and whom it stands for."""
    about = f"user {info.user}; groups {','.join(info.groups) or '-'}; {info.role}"
    if info.expires_at:
        about += f"; expires {_when(info.expires_at)}"
    record = AuditRecord(
        event=event, user=s.user, target=info.key_id, detail="; ".join(p for p in (about, detail) if p)
    )
    with audit_log(s) as log:
        log.append(record)


def _duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if not match or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r}: give a number and d, h or m, e.g. 90d.", param_hint="--expires")
    return int(match[1]) * {"d": 86400, "h": 3600, "m": 60}[match[2]]


@app.command("list")
def list_keys(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every key: id, user, groups, role, created, expiry, revocation and last use (never the key)."""
    with key_store(get_settings(ctx)) as keys:
        infos = keys.list()
    if as_json:
        out.print_json(json.dumps({"keys": [i.model_dump() for i in infos]}))
        return
    now = time.time()
    for i in infos:
        if i.revoked_at:
            state = "revoked " + _when(i.revoked_at) + (f" (→ {i.replaced_by})" if i.replaced_by else "")
        elif i.expires_at and i.expires_at <= now:
            state = "expired " + _when(i.expires_at)
        else:
            state = "active" + (f" until {_when(i.expires_at)}" if i.expires_at else "")
        used = "used " + _when(i.last_used_at) if i.last_used_at else "never used"
        out.print(
            f"{i.key_id}  {i.user:<16} {','.join(i.groups) or '-':<24} {i.role:<5}  "
            f"{_when(i.created_at)}  {state}; {used}",
            markup=False,
            highlight=False,
        )


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")
) -> None:
    """Revoke a key at once: requests with it get 401 from then on."""
    s = get_settings(ctx)
    with key_store(s) as keys:
        info = keys.revoke(key_id)
    _audit(s, "key_revoked", info)
    out.print(f"Revoked key {info.key_id} of {info.user}.", markup=False, highlight=False)


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds or 0, UTC).strftime("%Y-%m-%d %H:%M")
