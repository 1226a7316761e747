"""What every command shares: the settings in the Typer context, consoles, and the principal flags."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from bastion.errors import ConfigError
from bastion.settings import Settings
from retrieval import Principal

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def settings(ctx: typer.Context) -> Settings:
    value = ctx.find_root().obj
    if not isinstance(value, Settings):
        raise ConfigError("internal: settings were not loaded")
    return value


def say(message: str) -> None:
    """Progress and status go to stderr, so `--json` output on stdout stays machine-readable."""
    err.print(f"[dim]{message}[/dim]")


def parse_groups(groups: str | None) -> frozenset[str]:
    if groups is None:
        return frozenset()
    parsed = frozenset(g.strip() for g in groups.split(",") if g.strip())
    if not parsed:
        raise typer.BadParameter(
            "give at least one group name, e.g. --groups hr,legal", param_hint="--groups"
        )
    return parsed


def principal(s: Settings, user: str | None, groups: str | None) -> Principal:
    """The principal these CLI flags stand for (the API will derive it from an API key instead)."""
    try:
        return Principal(user=user or s.user, groups=parse_groups(groups))
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--user/--groups") from exc


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


USER_OPTION = typer.Option(None, "--user", help="Search as this user (default: the local operator).")
GROUPS_OPTION = typer.Option(None, "--groups", help="Comma-separated groups of that user, e.g. hr,legal.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of text.")
