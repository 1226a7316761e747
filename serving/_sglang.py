"""SGLang launch profiles for Mistral Small 4, and validation of the commands they produce.

Every command Bastion generates is checked against SGLang's own flag list before it is printed: the
parser of the installed `sglang` when there is one, else the table dumped from SGLang 0.5.23's argparse
parser (`shared/reference/sglang-0.5.23-server-flags.json`, or any file of that shape given with
`--flags-file`), so no CUDA install is needed to validate.
Exact option strings only: argparse would accept `--tp` as a prefix of `--tp-size`, but a prefix
that a later SGLang makes ambiguous breaks a deployment, so we reject it and name the full flag.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving._errors import ServingError
from serving._gateway import GatewayConfig, validate_gateway_args

MISTRAL_SMALL_4 = "mistralai/Mistral-Small-4-119B-2603"


class LaunchConfigError(ServingError):
    """A generated SGLang command would not start: unknown flag, wrong choice, deprecated flag."""


class SGLangProfile(BaseModel):
    """One SGLang server for Mistral Small 4 (FP8 weights, ~111-119 GB)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hardware: str
    model_path: str = MISTRAL_SMALL_4
    served_model_name: str = "mistral-small-4"
    tp_size: int = Field(ge=1)
    gpus: int = Field(ge=1, description="GPUs one replica uses")
    replicas: int = Field(default=1, ge=1, description="replicas on the node, behind the gateway")
    # 262144 is 256Ki; SGLang reads "256k" as 256000 (decimal SI suffix).
    context_length: int = Field(default=262144, ge=1024)
    mem_fraction_static: float | None = Field(default=None, gt=0, lt=1)
    chunked_prefill_size: int | None = Field(default=None, ge=256)
    reasoning_parser: str = "mistral"
    tool_call_parser: str = "mistral"
    enable_cache_report: bool = True  # Bastion measures prefix-cache reuse from usage
    enable_metrics: bool = True
    ep_size: int | None = Field(default=None, ge=1, description="expert parallelism across the TP group")
    attn_dp_size: int | None = Field(default=None, ge=1, description="attention data parallelism")
    speculative: Literal["EAGLE", "EAGLE3"] | None = None
    speculative_draft_model_path: str | None = None
    speculative_num_steps: int = Field(default=3, ge=1)
    speculative_eagle_topk: int = Field(default=1, ge=1)
    speculative_num_draft_tokens: int = Field(default=4, ge=1)

    def server_args(
        self, *, host: str = "0.0.0.0", port: int = 30000, api_key: str | None = None
    ) -> list[str]:
        args = [
            "--model-path", self.model_path,
            "--served-model-name", self.served_model_name,
            "--tp-size", str(self.tp_size),
            "--context-length", str(self.context_length),
            "--reasoning-parser", self.reasoning_parser,
            "--tool-call-parser", self.tool_call_parser,
        ]  # fmt: skip
        if self.mem_fraction_static is not None:
            args += ["--mem-fraction-static", str(self.mem_fraction_static)]
        if self.chunked_prefill_size is not None:
            args += ["--chunked-prefill-size", str(self.chunked_prefill_size)]
        if self.ep_size is not None:
            args += ["--ep-size", str(self.ep_size)]
        if self.attn_dp_size is not None:
            args += ["--attn-dp-size", str(self.attn_dp_size)]
        if self.speculative is not None:
            if not self.speculative_draft_model_path:
                raise LaunchConfigError(
                    f"profile {self.name!r}: speculative decoding needs a draft model path"
                )
            args += [
                "--speculative-algorithm", self.speculative,
                "--speculative-draft-model-path", self.speculative_draft_model_path,
                "--speculative-num-steps", str(self.speculative_num_steps),
                "--speculative-eagle-topk", str(self.speculative_eagle_topk),
                "--speculative-num-draft-tokens", str(self.speculative_num_draft_tokens),
            ]  # fmt: skip
        if self.enable_cache_report:
            args.append("--enable-cache-report")
        if self.enable_metrics:
            args.append("--enable-metrics")
        if api_key is not None:
            args += ["--api-key", api_key]
        return [*args, "--host", host, "--port", str(port)]


PROFILES: dict[str, SGLangProfile] = {
    p.name: p
    for p in (
        # The minimum hardware: one replica holds the ~115 GB of FP8 weights with room for KV cache.
        SGLangProfile(name="2xh200", hardware="2x H200 (141 GB each)", tp_size=2, gpus=2),
        # 2x H100 would leave almost no KV cache at 256Ki context once ~115 GB of FP8 weights load.
        SGLangProfile(name="4xh100", hardware="4x H100 (80 GB each)", tp_size=4, gpus=4),
        SGLangProfile(name="b200", hardware="1x B200 (192 GB)", tp_size=1, gpus=1),
        # The model card's recommended hardware (double the minimum): two minimum replicas behind the
        # gateway rather than one replica twice as wide, because plain tensor parallelism copies the
        # MLA KV cache onto every GPU of a replica (docs/scaling.md) and a second replica doubles the
        # sessions that fit.
        SGLangProfile(name="4xh200", hardware="4x H200 (141 GB each)", tp_size=2, gpus=2, replicas=2),
        SGLangProfile(name="8xh100", hardware="8x H100 (80 GB each)", tp_size=4, gpus=4, replicas=2),
        SGLangProfile(name="2xb200", hardware="2x B200 (192 GB each)", tp_size=1, gpus=1, replicas=2),
    )
}

LAUNCH = ["python3", "-m", "sglang.launch_server"]


def launch_commands(
    profile: SGLangProfile,
    *,
    replicas: int | None = None,
    host: str = "0.0.0.0",
    port: int = 30000,
    api_key: str | None = None,
    router_port: int = 8000,
) -> list[list[str]]:
    """One SGLang command per replica, then the gateway if there are several (`replica_commands`).
    `replicas` defaults to the profile's."""
    replicas = profile.replicas if replicas is None else replicas
    if replicas < 1:
        raise LaunchConfigError("replicas must be at least 1")

    def server(server_host: str, server_port: int) -> list[str]:
        return [*LAUNCH, *profile.server_args(host=server_host, port=server_port, api_key=api_key)]

    return replica_commands(
        server, replicas, profile.gpus, host=host, port=port, router_port=router_port, api_key=api_key
    )


def replica_commands(
    server: Callable[[str, int], list[str]],
    replicas: int,
    gpus: int,
    *,
    host: str,
    port: int,
    router_port: int,
    api_key: str | None,
) -> list[list[str]]:
    """`server(host, port)` once per replica, each on its own `gpus` GPUs and port, then SGLang's
    gateway in front if there are several, with the cache-aware policy so sessions keep landing on
    the replica that holds their prefix. Behind a gateway the replicas listen on loopback: the gateway
    is the one door to the node."""
    commands = []
    server_host = host if replicas == 1 else "127.0.0.1"
    for i in range(replicas):
        devices = ",".join(str(g) for g in range(i * gpus, (i + 1) * gpus))
        env = [f"CUDA_VISIBLE_DEVICES={devices}"] if replicas > 1 else []
        commands.append([*env, *server(server_host, port + i)])
    if replicas > 1:
        gateway = GatewayConfig(
            worker_urls=[f"http://127.0.0.1:{port + i}" for i in range(replicas)],
            policy="cache_aware",
            host=host,
            port=router_port,
            api_key=api_key,
        )
        validate_gateway_args(gateway.args())
        commands.append(gateway.command())
    return commands


@dataclass(frozen=True)
class _Flag:
    takes_value: bool
    choices: list[str] | None
    deprecated: bool


class SGLangFlags:
    """SGLang's server flags, for validating generated commands without installing SGLang."""

    def __init__(self, flags: dict[str, _Flag], source: str) -> None:
        self._flags = flags
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> SGLangFlags:
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LaunchConfigError(f"Cannot read SGLang's flag list {path}: {exc}") from exc
        flags: dict[str, _Flag] = {}
        for options, spec in table.items():
            flag = _Flag(
                # The table keeps argparse defaults as text: 'False'/'True' mark on/off switches.
                takes_value=str(spec.get("default")) not in ("False", "True"),
                choices=[str(c) for c in spec["choices"]] if spec.get("choices") else None,
                deprecated=str(spec.get("help") or "").lower().startswith("deprecated"),
            )
            for option in options.split(" "):
                flags[option] = flag
        return cls(flags, source=str(path))

    @classmethod
    def from_installed(cls) -> SGLangFlags | None:
        """The flags of the `sglang` installed in this environment, read from its own parser; None if
        SGLang is not installed."""
        try:
            from sglang.srt.server_args import ServerArgs
        except ImportError:
            return None
        parser = argparse.ArgumentParser(add_help=False)
        ServerArgs.add_cli_args(parser)
        flags: dict[str, _Flag] = {}
        for action in parser._actions:  # argparse offers no public way to list an existing parser's flags
            flag = _Flag(
                takes_value=action.nargs != 0,
                choices=[str(c) for c in action.choices] if action.choices else None,
                deprecated=str(action.help or "").lower().startswith("deprecated"),
            )
            for option in action.option_strings:
                flags[option] = flag
        return cls(flags, source="the installed sglang")

    def validate(self, args: list[str]) -> None:
        """Raise LaunchConfigError naming every bad flag in a `--flag [value]` argument list."""
        problems = []
        i = 0
        while i < len(args):
            option = args[i]
            flag = self._flags.get(option)
            if flag is None:
                near = sorted(o for o in self._flags if o.startswith(option))
                hint = f" (did you mean {near[0]}?)" if near else ""
                problems.append(f"{option}: not an SGLang server flag{hint}")
                i += 1
                continue
            if flag.deprecated:
                problems.append(f"{option}: deprecated in SGLang")
            if flag.takes_value:
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    problems.append(f"{option}: needs a value")
                    i += 1
                    continue
                value = args[i + 1]
                if flag.choices and value not in flag.choices:
                    problems.append(f"{option} {value}: not one of {', '.join(flag.choices)}")
                i += 2
            else:
                i += 1
        if problems:
            raise LaunchConfigError(
                f"The SGLang command is invalid for {self.source}: " + "; ".join(problems)
            )


def server_args_of(command: list[str]) -> list[str]:
    """The flags of a `[ENV=… ]python3 -m sglang.launch_server …` command."""
    start = 0
    while start < len(command) and re.match(r"^[A-Z_][A-Z0-9_]*=", command[start]):
        start += 1
    rest = command[start:]
    return rest[len(LAUNCH) :] if rest[: len(LAUNCH)] == LAUNCH else rest
