"""`bastion model serve | status | stop`: the local llama-server."""

from __future__ import annotations

import json
import signal
import threading

import typer

from bastion.cli._common import JSON_OPTION, out, say
from bastion.cli._common import settings as get_settings
from bastion.wiring import local_server

app = typer.Typer(
    help="Manage the local llama-server (used when BASTION_MODEL_URL is unset).", no_args_is_help=True
)


@app.command()
def serve(
    ctx: typer.Context,
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default: a free one)."),
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached; Ctrl-C stops the server."),
) -> None:
    """Start the local model server (building it first if needed) and wait until it is healthy."""
    s = get_settings(ctx)
    server = local_server(s, port=port, install=say)
    state = server.status()
    if state is not None:
        out.print(f"Already running at {state.url} (pid {state.pid}).")
    else:
        state = server.start()
        out.print(f"llama-server ready at {state.url} (pid {state.pid}); log: {state.log_file}")
    if foreground:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0) and server.status() is not None:
                pass
        except KeyboardInterrupt:
            pass
        server.stop()
        out.print("Stopped.")


@app.command()
def status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show whether the local server runs, where, and whether it is healthy."""
    s = get_settings(ctx)
    server = local_server(s)
    state = server.status()
    healthy = state is not None and server.healthy(state)
    if as_json:
        info = {"running": state is not None, "healthy": healthy}
        if state is not None:
            info |= json.loads(state.model_dump_json())
        out.print_json(json.dumps(info))
    elif state is None:
        out.print("Not running. Start it with `bastion model serve`.")
    else:
        out.print(
            f"Running at {state.url} (pid {state.pid}), {'healthy' if healthy else 'NOT healthy'}; "
            f"log: {state.log_file}"
        )
    if s.model.url:
        say(f"Note: BASTION_MODEL_URL is set ({s.model.url}); the CLI uses that server, not this one.")


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the local server."""
    if local_server(get_settings(ctx)).stop():
        out.print("Stopped the local llama-server.")
    else:
        out.print("The local llama-server was not running.")


@app.command()
def install(ctx: typer.Context) -> None:
    """Build llama-server and fetch the model into the cache (what `scripts/setup.sh` runs)."""
    server = local_server(get_settings(ctx), install=say)
    out.print(f"llama-server: {server.config.binary}\nmodel: {server.config.model}")
