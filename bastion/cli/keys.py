"""`bastion keys create | list | revoke`: the API keys that stand for users."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from bastion.cli._common import JSON_OPTION, out, parse_groups, say
from bastion.cli._common import settings as get_settings
from bastion.keys import Role
from bastion.wiring import key_store

app = typer.Typer(help="API keys: each stands for one user and their groups.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="The user this key stands for."),
    groups: str | None = typer.Option(None, "--groups", help="Comma-separated groups, e.g. legal,hr."),
    admin: bool = typer.Option(False, "--admin", help="May manage documents and keys through the API."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    role: Role = "admin" if admin else "user"
    with key_store(get_settings(ctx)) as keys:
        try:
            key, info = keys.create(user, parse_groups(groups), role=role)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).splitlines()[0], param_hint="--user/--groups") from exc
    if as_json:
        out.print_json(json.dumps({"key": key, **info.model_dump()}))
        return
    out.print(key)
    say(
        f"Key {info.key_id} for {info.user} ({', '.join(info.groups) or 'no groups'}, {role}). "
        "It is not shown again."
    )


@app.command("list")
def list_keys(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every key: id, user, groups, role, created and revoked times (never the key itself)."""
    with key_store(get_settings(ctx)) as keys:
        infos = keys.list()
    if as_json:
        out.print_json(json.dumps({"keys": [i.model_dump() for i in infos]}))
        return
    for i in infos:
        state = "revoked " + _when(i.revoked_at) if i.revoked_at else "active"
        out.print(
            f"{i.key_id}  {i.user:<16} {','.join(i.groups) or '-':<24} {i.role:<5}  "
            f"{_when(i.created_at)}  {state}"
        )


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")
) -> None:
    """Revoke a key at once: requests with it get 401 from then on."""
    with key_store(get_settings(ctx)) as keys:
        info = keys.revoke(key_id)
    out.print(f"Revoked key {info.key_id} of {info.user}.")


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds or 0, UTC).strftime("%Y-%m-%d %H:%M")
