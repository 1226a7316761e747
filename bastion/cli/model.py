"""`bastion model serve | status | stop | gateway | launch-sglang`: the local llama-server, SGLang's
gateway in front of local replicas, and the production launch commands."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import cast, get_args

import typer
from rich.table import Table

from bastion.cli._common import JSON_OPTION, out, say
from bastion.cli._common import settings as get_settings
from bastion.wiring import local_gateway, local_server, make_embedder, model_url, probe_client
from retrieval import OnnxEmbedder
from serving import (
    PRESETS,
    PROFILES,
    Dialect,
    GatewayPolicy,
    LaunchConfigError,
    LocalGateway,
    LocalServer,
    MetricsSnapshot,
    ServerInfo,
    SGLangFlags,
    ensure_model,
    launch_commands,
    probe,
    running_gateway,
    server_args_of,
    vllm_commands,
)

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
        _stay_attached(server)


def _stay_attached(running: LocalServer | LocalGateway) -> None:
    """Wait until Ctrl-C, SIGTERM or the process's own end, then stop it (and what it runs)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0) and running.status() is not None:
            pass
    except KeyboardInterrupt:
        pass
    running.stop()
    out.print("Stopped.")


@app.command()
def status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show whether the local server runs, where, and whether it is healthy."""
    s = get_settings(ctx)
    server = local_server(s)
    state = server.status()
    healthy = state is not None and server.healthy(state)
    gateway = running_gateway(s.files.gateway)
    if as_json:
        info = {"running": state is not None, "healthy": healthy}
        if state is not None:
            info |= json.loads(state.model_dump_json())
        if gateway is not None:
            info["gateway"] = json.loads(gateway.model_dump_json())
        out.print_json(json.dumps(info))
    elif state is None:
        out.print("Not running. Start it with `bastion model serve`.")
    else:
        out.print(
            f"Running at {state.url} (pid {state.pid}), {'healthy' if healthy else 'NOT healthy'}; "
            f"log: {state.log_file}"
        )
    if gateway is not None and not as_json:
        out.print(
            f"Gateway running at {gateway.url} (pid {gateway.pid}, {gateway.policy}) in front of "
            f"{', '.join(gateway.workers)}; the CLI uses it."
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


POLICIES = get_args(GatewayPolicy)


@app.command()
def gateway(
    ctx: typer.Context,
    replicas: int = typer.Option(2, "--replicas", min=1, max=8, help="Local llama-server replicas."),
    policy: str = typer.Option(
        "cache_aware", "--policy", help=f"How the gateway picks a replica: {', '.join(POLICIES)}."
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="The gateway's port (default: a free one)."
    ),
    stop_it: bool = typer.Option(False, "--stop", help="Stop the gateway and its replicas."),
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached; Ctrl-C stops them all."),
) -> None:
    """Run SGLang's model gateway (smg) in front of N local llama-server replicas: production's
    topology on one machine. While it runs, Bastion sends its model calls through it (unless
    BASTION_MODEL_URL names another server)."""
    s = get_settings(ctx)
    if stop_it:
        stopped = local_gateway(s).stop()
        out.print("Stopped the gateway and its replicas." if stopped else "The gateway was not running.")
        return
    if policy not in POLICIES:
        raise typer.BadParameter(f"{policy!r}: use one of {', '.join(POLICIES)}", param_hint="--policy")
    runner = local_gateway(s, replicas=replicas, policy=cast(GatewayPolicy, policy), port=port, install=say)
    state = runner.status()
    if state is not None:
        out.print(
            f"Already running at {state.url} (pid {state.pid}, {state.policy}, "
            f"{len(state.workers)} replicas); stop it first with `bastion model gateway --stop`."
        )
    else:
        say(f"Starting {replicas} llama-server replicas, then smg ({policy})…")
        state = runner.start()
        out.print(
            f"Gateway ready at {state.url} (pid {state.pid}, {state.policy}) in front of "
            f"{', '.join(state.workers)}; log: {state.log_file}"
        )
    if foreground:
        _stay_attached(runner)


@app.command()
def install(ctx: typer.Context) -> None:
    """Build llama-server, fetch the models and export the embedding model into the cache (what
    `scripts/setup.sh` runs).

    The configured local model (Qwen2.5-Coder-1.5B unless BASTION_LOCAL_MODEL says otherwise), and
    SmolLM2-135M beside it: the fallback, and the model of the fast protocol tests. On a CPU the
    embedding model runs through ONNX Runtime, exported here once rather than at the first search."""
    s = get_settings(ctx)
    server = local_server(s, install=say)
    fallback = ensure_model(s.cache_dir, "smollm2", log=say)
    out.print(f"llama-server: {server.config.binary}\nmodel: {server.config.model}\nfallback: {fallback}")
    embedder = make_embedder(s, say=say)
    if isinstance(embedder, OnnxEmbedder):
        out.print(f"embedding model ({embedder.backend}): {embedder.prepare()}")


SGLANG_FLAGS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"
)
API_KEY_REF = "${SGLANG_API_KEY:?set SGLANG_API_KEY}"  # expanded by the shell or Compose, never printed


@app.command("launch-sglang")
def launch_sglang(
    profile: str = typer.Option("2xh200", "--profile", help=f"One of: {', '.join(PROFILES)}."),
    replicas: int | None = typer.Option(
        None,
        "--replicas",
        min=1,
        max=16,
        help="Servers on this node, behind SGLang's gateway (default: the profile's).",
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
    replicas = replicas or chosen.replicas
    commands = launch_commands(chosen, replicas=replicas, port=port, api_key=API_KEY_REF)
    table = flags_file or SGLANG_FLAGS
    flags = None if flags_file else SGLangFlags.from_installed()
    if flags is None and table.exists():
        flags = SGLangFlags.from_file(table)
    elif flags is None and flags_file is not None:
        raise LaunchConfigError(f"The flag table {flags_file} does not exist.")
    if flags is not None:
        for command in commands[:replicas]:
            flags.validate(server_args_of(command))
        say(f"Validated against {flags.source}.")
    else:
        say(
            f"Not validated: SGLang is not installed and its flag table is not at {table}; pass --flags-file."
        )
    if replicas > 1:
        say("The gateway command (last) was checked by smg's own argument parser.")
    say(f"Profile {chosen.name}: {chosen.hardware}, tensor parallel {chosen.tp_size}, {replicas} replica(s).")
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


@app.command()
def check(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None, "--url", help="Base URL ending in /v1 (default: the configured server)."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Bearer key (default: BASTION_MODEL_API_KEY)."
    ),
    smoke: bool = typer.Option(True, "--smoke/--no-smoke", help="Time one short streamed completion."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Probe a model server: model, context, vision, parsers, cache reporting, metrics, speed."""
    s = get_settings(ctx)
    target = url or model_url(s, say)
    key = api_key or (s.model.api_key.get_secret_value() if s.model.api_key and not url else None)
    info = asyncio.run(_probe(target, key, smoke))
    if as_json:
        out.print_json(info.model_dump_json())
        return
    table = Table(show_header=False, box=None)
    rows = [
        ("server", f"{info.kind}{' ' + info.version if info.version else ''} at {info.url}"),
        ("models", ", ".join(info.models) or "none listed"),
        ("context length", str(info.context_length or "unknown")),
        ("vision", _yes_no(info.vision)),
        ("reasoning parser", info.reasoning_parser or "-"),
        ("tool-call parser", info.tool_call_parser or "-"),
        ("cached-token reports", _yes_no(info.cache_report)),
        ("metrics", "off (no /metrics)" if info.metrics is None else _metrics_line(info.metrics)),
    ]
    if info.smoke:
        sm = info.smoke
        rows.append(("smoke", f"first token {sm.first_token_ms:.0f} ms, {sm.completion_tokens} tokens in "
                              f"{sm.total_ms:.0f} ms ({sm.tokens_per_s or 0:.0f} tokens/s)"))  # fmt: skip
    preset = PRESETS.get(info.kind)
    if preset is not None:
        rows.append(("dialect", _dialect_line(preset.dialect) + f" (`bastion model preset {preset.name}`)"))
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", value)
    out.print(table)


async def _probe(url: str, api_key: str | None, smoke: bool) -> ServerInfo:
    async with probe_client(url, api_key) as client:
        return await probe(client, smoke=smoke)


def _dialect_line(dialect: Dialect) -> str:
    """What Bastion sends such a server beyond the OpenAI core, and what it leaves out."""
    effort = {"field": "reasoning_effort", "template": "chat_template_kwargs.reasoning_effort", "off": None}
    fields = {
        "cache_salt": dialect.cache_salt,
        "json_schema": dialect.json_schema,
        "tools": dialect.tools,
    }
    sent = [f for f in (effort[dialect.reasoning], *(f for f, on in fields.items() if on)) if f]
    left = [f for f, on in {"reasoning effort": dialect.reasoning != "off", **fields}.items() if not on]
    return f"sends {', '.join(sent) or 'the core only'}" + (f"; leaves out {', '.join(left)}" if left else "")


@app.command()
def preset(
    name: str = typer.Argument(..., help=f"One of: {', '.join(PRESETS)}."),
    print_only: bool = typer.Option(False, "--print", help="Print instead of writing the files."),
    folder: Path = typer.Option(Path("."), "--dir", help="Where to write NAME.env (and NAME.sh)."),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help=f"sglang and vllm: the hardware, one of {', '.join(PROFILES)} (default: 2xh200); "
        "several replicas come with SGLang's gateway in front.",
    ),
) -> None:
    """A deployment path of Mistral Small 4: the settings that point Bastion at it (an env file), the
    command that starts it where Bastion may, and the request fields it accepts."""
    chosen = PRESETS.get(name)
    if chosen is None:
        raise typer.BadParameter(f"{name!r}: use one of {', '.join(PRESETS)}", param_hint="NAME")
    commands = [chosen.command] if chosen.command else []
    settings = chosen.env()
    if profile is not None:
        hardware = PROFILES.get(profile)
        if hardware is None:
            raise typer.BadParameter(f"{profile!r}: use one of {', '.join(PROFILES)}", param_hint="--profile")
        key = chosen.command[chosen.command.index("--api-key") + 1] if chosen.command else None
        if name == "sglang":
            commands = launch_commands(hardware, api_key=key)
        elif name == "vllm":
            commands = vllm_commands(hardware, api_key=key)
        else:
            raise typer.BadParameter("hardware profiles go with sglang and vllm", param_hint="--profile")
        if hardware.replicas > 1:  # Bastion talks to the gateway, not to one replica
            gateway_port = commands[-1][commands[-1].index("--port") + 1]
            settings["BASTION_MODEL_URL"] = f"http://gpu-node:{gateway_port}/v1"
            say(
                "  - The gateway forwards no /tokenize: run Bastion on the node with "
                "BASTION_MODEL_TOKENIZER_URL at a replica (they listen on loopback)."
            )
    env = "".join(f"{k}={v}\n" for k, v in settings.items())
    lines = [" ".join(p if p.startswith("${") else shlex.quote(p) for p in c) for c in commands]
    say(f"{chosen.title} [{chosen.kind}]; {_dialect_line(chosen.dialect)}.")
    for note in chosen.notes:
        say(f"  - {note}")
    if print_only:
        for line in lines:
            out.print(line, markup=False)
        out.print(env, end="", markup=False)
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{chosen.name}.env").write_text(env)
    written = [folder / f"{chosen.name}.env"]
    if lines:
        # Replicas in the background, the last command (the gateway, or the only server) in front.
        body = "".join(f"{line} &\n" for line in lines[:-1]) + f"exec {lines[-1]}\n"
        (folder / f"{chosen.name}.sh").write_text(f"#!/usr/bin/env bash\n{body}")
        written.append(folder / f"{chosen.name}.sh")
    out.print("Wrote " + ", ".join(str(p) for p in written) + ".", markup=False)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _metrics_line(m: MetricsSnapshot) -> str:
    def shown(value: float | None, fmt: str) -> str:
        return "unknown" if value is None else format(value, fmt)

    return (
        f"on; prefix-cache hit rate {shown(m.cache_hit_rate, '.0%')}, "
        f"running {shown(m.requests_running, '.0f')}, waiting {shown(m.requests_waiting, '.0f')}"
    )
