"""`bastion audit verify | anchor | export`: check, anchor and read the keyed, hash-chained audit log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from bastion.audit import read_anchors
from bastion.cli._common import JSON_OPTION, err, out, say
from bastion.cli._common import settings as get_settings
from bastion.wiring import audit_log

app = typer.Typer(help="The tamper-evident audit log of every question and answer.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor: Path | None = typer.Option(
        None,
        "--anchor",
        help="A file of anchors from `bastion audit anchor --to`: also fail if the log was cut or "
        "rewritten after any of them.",
        exists=True,
        dir_okay=False,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recompute the keyed hash chain; exit 1 if any record was edited, deleted or reordered."""
    anchors = read_anchors(anchor) if anchor else []
    with audit_log(get_settings(ctx), create=False) as log:
        result = log.verify(anchors)
    if as_json:
        out.print_json(json.dumps({**result.model_dump(), "ok": result.ok}))
    elif result.ok:
        out.print(f"Audit log intact: {result.records} records; head {result.head}")
    else:
        for problem in result.problems:
            err.print(f"[red]{problem}[/red]")
        err.print(f"[bold red]Audit log tampered with:[/bold red] {len(result.problems)} problem(s).")
    if not result.ok:
        raise typer.Exit(1)


@app.command("anchor")
def anchor(
    ctx: typer.Context,
    to: Path | None = typer.Option(
        None,
        "--to",
        help="Append the anchor to this file (keep it where the server cannot rewrite it: another "
        "machine, WORM storage). Default: print it, e.g. for syslog.",
        dir_okay=False,
    ),
) -> None:
    """Emit the chain's head (sequence, hash, time) as one JSON line, to check truncation against later."""
    with audit_log(get_settings(ctx), create=False) as log:
        head = log.head()
    line = head.model_dump_json()
    if to is None:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    with to.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())
    say(f"Anchored record {head.seq} in {to}.")


@app.command("export")
def export(
    ctx: typer.Context,
    since: datetime | None = typer.Option(
        None, "--since", help="Only records from this time (UTC), e.g. 2026-11-01."
    ),
) -> None:
    """Write the records as JSON lines to stdout, oldest first."""
    start = None if since is None else since.replace(tzinfo=since.tzinfo or UTC).timestamp()
    with audit_log(get_settings(ctx), create=False) as log:
        for record in log.records(since=start):
            out.print(json.dumps(record, ensure_ascii=False), markup=False, highlight=False, soft_wrap=True)
