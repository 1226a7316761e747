"""`bastion audit verify | export`: check and read the hash-chained audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from bastion.cli._common import JSON_OPTION, err, out
from bastion.cli._common import settings as get_settings
from bastion.wiring import audit_log

app = typer.Typer(help="The tamper-evident audit log of every question and answer.", no_args_is_help=True)


@app.command("verify")
def verify(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Recompute the hash chain; exit 1 if any record was edited, deleted or reordered."""
    with audit_log(get_settings(ctx)) as log:
        result = log.verify()
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


@app.command("export")
def export(
    ctx: typer.Context,
    since: datetime | None = typer.Option(
        None, "--since", help="Only records from this time (UTC), e.g. 2026-11-01."
    ),
) -> None:
    """Write the records as JSON lines to stdout, oldest first."""
    start = None if since is None else since.replace(tzinfo=since.tzinfo or UTC).timestamp()
    with audit_log(get_settings(ctx)) as log:
        for record in log.records(since=start):
            out.print(json.dumps(record, ensure_ascii=False), markup=False, highlight=False, soft_wrap=True)
