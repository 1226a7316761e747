"""The `bastion` command line. One module per command group; `main` is the console script."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from bastion.cli import audit, keys, model, router
from bastion.cli._common import err
from bastion.cli.api import api
from bastion.cli.ask import ask
from bastion.cli.chat import chat
from bastion.cli.demo import demo
from bastion.cli.index import index, search
from bastion.errors import BastionError, InputError
from bastion.settings import load_settings
from bastion.wiring import private_data_dir

# Groups whose modules take seconds to import (the evaluation layer loads every agent), loaded when
# they run rather than when `bastion --help` lists them: name → (module, the one-line help it shows).
# tests/bastion/test_cli.py checks each line against the group's own help.
LAZY_GROUPS = {
    "eval": (
        "bastion.cli.eval",
        "Measure retrieval, grounding, refusals, routing and cache reuse; compare runs; draw the report.",
    ),
}


class _LazyGroup(TyperGroup):
    """Stands in for a command group until it is used: listed with its one-line help, then replaced
    by the real group the moment click makes a context for it."""

    def __init__(self, name: str, module: str, summary: str) -> None:
        super().__init__(name=name, short_help=summary, help=summary)
        self.module = module

    def real(self) -> Any:
        return typer.main.get_command(importlib.import_module(self.module).app)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self.real().make_context(info_name, args, parent=parent, **extra)


class _Root(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in LAZY_GROUPS:
            return _LazyGroup(name, *LAZY_GROUPS[name])
        return super().get_command(ctx, name)


app = typer.Typer(
    cls=_Root,
    name="bastion",
    help="Bastion: answers from your own documents, on your own servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(model.app, name="model")
app.add_typer(router.app, name="router")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.command()(index)
app.command()(search)
app.command()(ask)
app.command()(chat)
app.command()(demo)
app.command()(api)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", help="TOML config file (default: $BASTION_CONFIG)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where Bastion keeps its data ($BASTION_DATA_DIR)."
    ),
) -> None:
    overrides = {"data_dir": data_dir} if data_dir else {}
    ctx.obj = load_settings(config, **overrides)
    private_data_dir(ctx.obj.data_dir)


def main() -> None:
    # Keys, the audit log, conversations and uploaded documents are nobody else's business: every file
    # Bastion creates is readable by its user only (0600, folders 0700).
    os.umask(0o077)
    # Models load from local folders only; these keep the Hugging Face libraries offline and quiet.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except BastionError as exc:
        # Anything else (a ValueError from deep inside, say) is a bug and keeps its traceback.
        err.print("[bold red]Error:[/bold red] " + escape(str(exc)), markup=True, highlight=False)
        sys.exit(2 if isinstance(exc, InputError) else 1)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
