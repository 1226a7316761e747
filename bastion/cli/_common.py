"""What every command shares: the settings in the Typer context, consoles, and the principal flags."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

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


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """Text from documents, file names or the model, made harmless for a terminal: control characters
    (an `ESC[2J` in a file name clears the screen) shown as `\\x1b` escapes; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))


def safe(text: object) -> str:
    """`plain`, and Rich markup in it shown as written rather than rendered: for values in markup."""
    return escape(plain(text))


def say(message: str) -> None:
    """Progress and status go to stderr, so `--json` output on stdout stays machine-readable. The
    message is shown as written: it often holds paths and names that are not ours."""
    err.print(f"[dim]{safe(message)}[/dim]")


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
