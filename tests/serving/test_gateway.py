"""SGLang's gateway (smg), for real: the commands Bastion writes pass smg's own parser, a real smg
forwards our request bodies untouched, and `LocalGateway` runs it in front of real llama-servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from serving import (
    PROFILES,
    BadRequestError,
    ChatClient,
    GatewayConfig,
    GatewayConfigError,
    LocalGateway,
    LocalGatewayConfig,
    LocalServerConfig,
    gateway_args_of,
    launch_commands,
    running_gateway,
    validate_gateway_args,
)
from serving._local import free_port
from serving._local_gateway import smg_binary


@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.replicas > 1])
def test_recommended_profiles_put_two_replicas_behind_the_gateway(name: str) -> None:
    profile = PROFILES[name]
    commands = launch_commands(profile, api_key="${KEY}")
    assert len(commands) == profile.replicas + 1 == 3
    gateway = gateway_args_of(commands[-1])
    validate_gateway_args(gateway)
    assert commands[-1][:2] == ["smg", "launch"]
    assert gateway[gateway.index("--policy") + 1] == "cache_aware"
    assert gateway[gateway.index("--api-key") + 1] == "${KEY}", "an open gateway lets anyone register workers"
    assert gateway[gateway.index("--prometheus-host") + 1] == "127.0.0.1"
    workers = gateway[gateway.index("--worker-urls") + 1 : gateway.index("--policy")]
    ports = [c[c.index("--port") + 1] for c in commands[:-1]]
    assert workers == [f"http://127.0.0.1:{p}" for p in ports]
    # Behind the gateway the replicas listen on loopback only; the gateway is the node's one door.
    assert {c[c.index("--host") + 1] for c in commands[:-1]} == {"127.0.0.1"}
    assert profile.gpus * profile.replicas == int(name[0])


def test_the_minimum_profiles_stay_single_replicas() -> None:
    for name in ("2xh200", "4xh100", "b200"):
        commands = launch_commands(PROFILES[name])
        assert len(commands) == 1 and "smg" not in commands[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker-urls", "http://a:1", "--policy", "lru"], "invalid choice: 'lru'"),
        (["--worker-urls", "http://a:1", "--pol", "cache_aware"], "unrecognized arguments: --pol"),
        (["--worker-urls", "http://a:1", "--port", "eighty"], "invalid int value"),
    ],
)
def test_smg_refuses_bad_gateway_arguments(args: list[str], message: str) -> None:
    with pytest.raises(GatewayConfigError, match=message):
        validate_gateway_args(args)


def test_every_policy_and_option_bastion_can_write_is_valid() -> None:
    for policy in ("cache_aware", "round_robin", "prefix_hash", "consistent_hashing", "power_of_two"):
        config = GatewayConfig(
            worker_urls=["http://127.0.0.1:30000"],
            policy=policy,  # type: ignore[arg-type]
            api_key="k",
            request_timeout_s=600,
            health_failure_threshold=2,
            health_check_interval_s=2,
            shutdown_grace_s=1,
            log_level="warn",
        )
        validate_gateway_args(config.args())


class _Recorder(BaseHTTPRequestHandler):
    """An OpenAI-compatible worker that records what reaches it."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def _send(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path.startswith("/v1/models"):
            self._send({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "llamacpp"}]})
        elif self.path.startswith("/health"):
            self._send({"status": "ok"})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append(
            {"path": self.path, "authorization": self.headers.get("authorization"), "body": body}
        )
        self._send(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def log_message(self, *args: Any) -> None:
        pass


def _start_smg(tmp_path: Path, workers: list[str], **options: Any) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port("127.0.0.1")
    config = GatewayConfig(
        worker_urls=workers,
        host="127.0.0.1",
        port=port,
        metrics_port=free_port("127.0.0.1"),
        shutdown_grace_s=1,
        **options,
    )
    log = (tmp_path / "smg.log").open("wb")
    process = subprocess.Popen(
        [str(smg_binary()), *config.command()[1:]],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "smg.log").read_text()[-2000:]
        try:
            if httpx.get(f"{url}/models", timeout=2).json().get("data"):
                return process, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("smg did not register its worker: " + (tmp_path / "smg.log").read_text()[-2000:])


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_gateway_forwards_bastions_fields_untouched(tmp_path: Path, recorder: str) -> None:
    """What a tenant's request carries must reach the engine: `cache_salt` keeps tenants' prefix
    caches apart, `reasoning_effort` picks the thinking mode, json_schema constrains the answer."""
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "stable prefix"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in the picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
        ],
        "cache_salt": "tenant-a",
        "reasoning_effort": "high",
        "chat_template_kwargs": {"reasoning_effort": "high"},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"type": "object"}},
        },
        "max_tokens": 5,
        "temperature": 0.0,
    }
    process, url = _start_smg(tmp_path, [recorder], api_key="gateway-key")
    try:
        refused = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
        assert refused.status_code == 401, "with --api-key the gateway must refuse an unauthenticated call"
        answer = httpx.post(
            f"{url}/chat/completions", json=body, headers={"authorization": "Bearer gateway-key"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    [seen] = _Recorder.seen
    forwarded = json.loads(seen["body"])
    for field in ("messages", "cache_salt", "reasoning_effort", "chat_template_kwargs", "response_format"):
        assert forwarded[field] == body[field], field
    assert seen["authorization"] == "Bearer gateway-key", "the replicas check the same key"


async def _count(url: str, tokenizers: list[str]) -> int:
    async with ChatClient(url, model="smol", tokenizer_urls=tokenizers) as client:
        return await client.count_tokens("def add(a, b):\n    return a + b\n")


@pytest.mark.llm
def test_local_gateway_routes_survives_a_dead_replica_and_stops_everything(
    tmp_path: Path, llama_binary: Path, llama_model: Path
) -> None:
    replica = LocalServerConfig(
        binary=llama_binary, model=llama_model, state_dir=tmp_path / "unused", parallel=1, alias="smol"
    )
    gateway = LocalGateway(LocalGatewayConfig(replica=replica, replicas=2, state_dir=tmp_path / "gw"))
    state = gateway.start()
    replicas = [s.status() for s in gateway.replica_servers()]
    try:
        assert running_gateway(tmp_path / "gw") == state and state.model == "smol"
        assert gateway.start().pid == state.pid, "a second start finds the running gateway"
        assert [f"http://{r.host}:{r.port}" for r in replicas if r] == state.workers

        def ask() -> httpx.Response:
            return httpx.post(
                f"{state.url}/chat/completions",
                json={"model": "smol", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4},
                timeout=60,
            )

        assert ask().status_code == 200
        assert asyncio.run(_count(state.url, state.workers)) > 0
        with pytest.raises(BadRequestError, match="BASTION_MODEL_TOKENIZER_URL"):
            asyncio.run(_count(state.url, []))  # smg itself counts no tokens without a tokenizer
        assert replicas[0] is not None
        os.killpg(replicas[0].pid, signal.SIGKILL)
        # Health checks every 2 s, out after 2 failures: later requests must land on the survivor.
        time.sleep(6)
        statuses = [ask().status_code for _ in range(4)]
        assert statuses == [200] * 4, statuses
        assert asyncio.run(_count(state.url, state.workers)) > 0, "the next replica tokenizes"
    finally:
        # Stopped as `bastion model gateway --stop` does: without knowing how many replicas it has.
        assert LocalGateway(LocalGatewayConfig(replica=replica, replicas=1, state_dir=tmp_path / "gw")).stop()
    assert running_gateway(tmp_path / "gw") is None
    assert all(s.status() is None for s in gateway.replica_servers())
    assert not gateway.stop()
