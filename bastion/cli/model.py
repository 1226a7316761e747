"""`bastion model serve | status | stop`: the local llama-server."""

from __future__ import annotations

import importlib.util
import json
import shlex
import signal
import subprocess
import threading
from pathlib import Path

import typer

from bastion.cli._common import JSON_OPTION, out, say
from bastion.cli._common import settings as get_settings
from bastion.wiring import local_server
from serving import PROFILES, LaunchConfigError, SGLangFlags, launch_commands, server_args_of

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


SGLANG_FLAGS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"
)
API_KEY_REF = "${SGLANG_API_KEY:?set SGLANG_API_KEY}"  # expanded by the shell or Compose, never printed


@app.command("launch-sglang")
def launch_sglang(
    profile: str = typer.Option("2xh200", "--profile", help=f"One of: {', '.join(PROFILES)}."),
    replicas: int = typer.Option(
        1, "--replicas", min=1, max=16, help="Servers on this node, behind the router."
    ),
    port: int = typer.Option(30000, "--port", min=1, max=65535, help="The first replica's port."),
    print_only: bool = typer.Option(False, "--print", help="Print the commands instead of running them."),
    flags_file: Path | None = typer.Option(
        None, "--flags-file", help="SGLang's flag table to validate against (default: shared/reference)."
    ),
) -> None:
    """Generate (and validate) the SGLang commands that serve Mistral Small 4 on this hardware."""
    chosen = PROFILES.get(profile)
    if chosen is None:
        raise typer.BadParameter(f"{profile!r}: use one of {', '.join(PROFILES)}", param_hint="--profile")
    commands = launch_commands(chosen, replicas=replicas, port=port, api_key=API_KEY_REF)
    table = flags_file or SGLANG_FLAGS
    if table.exists():
        flags = SGLangFlags.from_file(table)
        for command in commands[:replicas]:
            flags.validate(server_args_of(command))
        say(f"Validated against {table.name}.")
    elif flags_file is not None:
        raise LaunchConfigError(f"The flag table {flags_file} does not exist.")
    else:
        say(f"Not validated: SGLang's flag table is not at {table}; pass --flags-file.")
    say(f"Profile {chosen.name}: {chosen.hardware}, tensor parallel {chosen.tp_size}.")
    lines = [" ".join(p if p == API_KEY_REF else shlex.quote(p) for p in command) for command in commands]
    for line in lines:
        out.print(line, markup=False)
    if not print_only and importlib.util.find_spec("sglang") is None:
        raise LaunchConfigError(
            "SGLang is not installed on this machine (it needs CUDA GPUs). Run the commands above on the GPU "
            "host, or use docker-compose.yml; add --print to only print them."
        )
    if not print_only:
        # Through bash: it sets CUDA_VISIBLE_DEVICES per replica and expands the API key reference.
        processes = [subprocess.Popen(["bash", "-c", line]) for line in lines]
        for process in processes:
            process.wait()
