"""SGLang's model gateway (`smg`, the Shepherd Model Gateway) in front of several model servers.

One place writes the gateway's command, for `launch-sglang --replicas N`, the compose file and the
local `bastion model gateway`; every command is checked by smg's own argument parser (the `smg` wheel
is a dependency, so the check runs wherever Bastion is installed), abbreviations refused as in
`_sglang.py`. Facts this module relies on, checked against smg 1.13.0 on llama-server workers:

- It registers an unknown OpenAI-compatible server (llama-server) as a generic worker, and forwards the
  chat body as sent: `cache_salt`, `reasoning_effort`, `chat_template_kwargs`, `response_format` and
  image parts arrive at the worker untouched, with the `Authorization` header
  (`tests/serving/test_gateway.py` replays it against a recording worker).
- It also opens a Prometheus listener, on 0.0.0.0:29000 unless told otherwise: two gateways on one host
  collide, and the default publishes per-worker metrics to the network, so we always name host and port.
- Without `--api-key` its data plane and its control plane (`POST /workers`, `/flush_cache`) answer
  anyone who can reach it; production commands take a key.
"""

from __future__ import annotations

import argparse
from typing import Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from serving._errors import ServingError

GATEWAY = ["smg", "launch"]

GatewayPolicy = Literal[
    "cache_aware", "round_robin", "prefix_hash", "consistent_hashing", "power_of_two", "least_load", "random"
]


class GatewayConfigError(ServingError):
    """A generated gateway command would not start: smg's parser or its own checks refuse it."""


class GatewayConfig(BaseModel):
    """One gateway: where it listens, which workers it fronts, and how it picks one per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    worker_urls: list[str] = Field(min_length=1)
    # cache_aware keeps a session on the replica whose radix tree holds its prefix, which is what the
    # agents' stable prompt layout is for; round_robin is the baseline the benchmark compares with.
    policy: GatewayPolicy = "cache_aware"
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=29000, ge=1, le=65535)
    api_key: str | None = None
    request_timeout_s: int | None = Field(default=None, ge=1)
    # A worker that stops answering health checks leaves the rotation after this many failures.
    health_failure_threshold: int | None = Field(default=None, ge=1)
    health_check_interval_s: int | None = Field(default=None, ge=1)
    shutdown_grace_s: int | None = Field(default=None, ge=0)
    log_level: Literal["debug", "info", "warn", "error"] | None = None

    def args(self) -> list[str]:
        args = [
            "--worker-urls", *self.worker_urls,
            "--policy", self.policy,
            "--host", self.host,
            "--port", str(self.port),
            "--prometheus-host", self.metrics_host,
            "--prometheus-port", str(self.metrics_port),
        ]  # fmt: skip
        if self.api_key is not None:
            args += ["--api-key", self.api_key]
        if self.request_timeout_s is not None:
            args += ["--request-timeout-secs", str(self.request_timeout_s)]
        if self.health_failure_threshold is not None:
            args += ["--health-failure-threshold", str(self.health_failure_threshold)]
        if self.health_check_interval_s is not None:
            args += ["--health-check-interval-secs", str(self.health_check_interval_s)]
        if self.shutdown_grace_s is not None:
            args += ["--shutdown-grace-period-secs", str(self.shutdown_grace_s)]
        if self.log_level is not None:
            args += ["--log-level", self.log_level]
        return args

    def command(self) -> list[str]:
        return [*GATEWAY, *self.args()]


class _Refused(Exception):
    pass


class _StrictParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting the caller's process."""

    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


def validate_gateway_args(args: list[str]) -> None:
    """Check `smg launch` arguments with smg's own parser and its own cross-checks."""
    try:
        from smg.router_args import RouterArgs
    except ImportError as exc:  # a broken install: smg is a dependency
        raise GatewayConfigError(f"Cannot check the gateway command: smg is not importable ({exc})") from exc
    parser = _StrictParser(prog="smg launch", allow_abbrev=False, add_help=False)
    RouterArgs.add_cli_args(parser, use_router_prefix=False)
    try:
        namespace = parser.parse_args(args)
        router_args = RouterArgs.from_cli_args(namespace, use_router_prefix=False)
        router_args._validate_router_args()  # smg's own pre-start checks (no public name for them)
    except (_Refused, ValueError) as exc:
        raise GatewayConfigError(f"The gateway command is invalid for smg: {exc}") from exc


def gateway_args_of(command: list[str]) -> list[str]:
    """The flags of an `smg launch …` command."""
    return command[len(GATEWAY) :] if command[: len(GATEWAY)] == GATEWAY else command
