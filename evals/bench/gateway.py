"""SGLang's gateway (smg) in front of local llama-server replicas: cache-aware versus round-robin
routing of concurrent coding-assistant sessions, then one replica killed mid-run.

    python -m evals.bench.gateway [--replicas 2] [--sessions 8] [--turns 6] [--model smollm2]

Each phase starts fresh replicas (cold caches) behind a fresh gateway. Every session is Bastion's
CodeAgent over its own small repository (two of Bastion's modules, a different pair per session), so
sessions share the agent's instructions and nothing else; the sessions run concurrently, each turn
streamed, and the gateway's `x-smg-routed-worker-id` header says which replica served each call.

- `cache_aware`, `round_robin`: share of follow-up prompt tokens served from cache, follow-up time to
  first token, and how many sessions stayed on one replica.
- `failover` (cache_aware): after turn `--kill-after`, the next turn starts and one replica is killed
  with SIGKILL while it runs. Every call must complete or fail with a typed error; the later turns
  must all complete, on the survivor.

Compare seconds only within one run; the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langgraph.checkpoint.memory import InMemorySaver

from agents import CodeAgent, CodeOptions
from evals.bench._common import emit, log
from evals.bench.cache_reuse import CODE_TURNS, ME, ROOT, TimedClient
from serving import (
    GatewayPolicy,
    LocalGateway,
    LocalGatewayConfig,
    LocalServerConfig,
    ServingError,
    ensure_llama_server,
    ensure_model,
    local_model,
)

# Modules of Bastion's own, two per session: small enough that a session's packed repository
# (~2-4k tokens) leaves every replica room for its share of the sessions' prefixes.
MODULES = [
    "agents/_router.py",
    "agents/_citations.py",
    "agents/_prompts.py",
    "serving/_errors.py",
    "serving/_fit.py",
    "retrieval/_types.py",
    "retrieval/_errors.py",
    "agents/_errors.py",
    "evals/_stats.py",
    "serving/_wire.py",
    "retrieval/_bm25.py",
    "agents/_quotes.py",
    "evals/_errors.py",
    "retrieval/_profile.py",
    "bastion/errors.py",
    "evals/_format.py",
]
ROUTED = "x-smg-routed-worker-id"


class _RoutedTransport(httpx.AsyncHTTPTransport):
    """Records which replica the gateway routed each chat call to."""

    def __init__(self) -> None:
        super().__init__()
        self.routed: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path.endswith("/chat/completions"):
            self.routed.append(response.headers.get(ROUTED, "?"))
        return response


@dataclass
class _Session:
    number: int
    repo: Path
    turns: list[dict[str, Any]] = field(default_factory=list)


def _repo(folder: Path, number: int) -> Path:
    repo = folder / f"session-{number}"
    for name in (MODULES[(2 * number) % len(MODULES)], MODULES[(2 * number + 1) % len(MODULES)]):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, repo / name)
    return repo


class _Client(TimedClient):
    def __init__(self, url: str, *, model: str, tokenizers: list[str], timeout_s: float) -> None:
        self.routed_transport = _RoutedTransport()
        super().__init__(
            url, model=model, tokenizer_urls=tokenizers, transport=self.routed_transport, timeout_s=timeout_s
        )


async def _turn(agent: CodeAgent, client: _Client, session: _Session, question: str, thread: str) -> None:
    transport = client.routed_transport
    client.calls.clear()
    before = len(transport.routed)
    started = time.perf_counter()
    record: dict[str, Any] = {"turn": len(session.turns) + 1}
    try:
        await agent.ask(question, session.repo, ME, thread_id=thread)
        usage, ttft = client.calls[-1]
        record |= {
            "ok": True,
            "prompt_tokens": usage.prompt_tokens,
            "cached_tokens": usage.cached_tokens or 0,
            "ttft_ms": round(ttft, 1),
        }
    except ServingError as exc:  # typed: what Bastion tells the user
        record |= {"ok": False, "error": type(exc).__name__, "message": str(exc)[:300]}
    record["seconds"] = round(time.perf_counter() - started, 2)
    record["replicas"] = transport.routed[before:]
    session.turns.append(record)


async def _run_sessions(
    url: str,
    model: str,
    workers: list[str],
    sessions: list[_Session],
    turns: int,
    max_tokens: int,
    timeout_s: float,
    kill: tuple[int, int] | None = None,
) -> None:
    """Every session's turns, concurrently; `kill=(after_turn, pid)` SIGKILLs pid once every session
    has finished `after_turn` turns and the next turn has started."""
    # The killer waits at the barrier too: it fires once every session has finished `after_turn`.
    barrier = asyncio.Barrier(len(sessions) + 1) if kill else None

    async def one(session: _Session) -> None:
        async with _Client(url, model=model, tokenizers=workers, timeout_s=timeout_s) as client:
            agent = CodeAgent(
                client, options=CodeOptions(max_tokens=max_tokens), checkpointer=InMemorySaver()
            )
            thread = uuid.uuid4().hex
            for i in range(turns):
                if kill and barrier and i == kill[0]:
                    await barrier.wait()
                await _turn(agent, client, session, CODE_TURNS[i % len(CODE_TURNS)], thread)

    async def killer() -> None:
        assert kill is not None and barrier is not None
        await barrier.wait()
        await asyncio.sleep(0.5)  # the next turn's calls are in flight
        log(f"killing replica pid {kill[1]} mid-turn")
        os.killpg(kill[1], signal.SIGKILL)

    await asyncio.gather(*(one(s) for s in sessions), *([killer()] if kill else []))


def _summary(sessions: list[_Session], *, after: int = 1) -> dict[str, Any]:
    follow = [t for s in sessions for t in s.turns[after:] if t.get("ok")]
    prompt = sum(t["prompt_tokens"] for t in follow)
    cached = sum(t["cached_tokens"] for t in follow)
    served = {r for s in sessions for t in s.turns for r in t["replicas"]}
    return {
        "follow_up_turns": len(follow),
        "follow_up_prompt_tokens": prompt,
        "follow_up_cached_tokens": cached,
        "follow_up_cached_share": round(cached / prompt, 4) if prompt else None,
        "follow_up_median_ttft_ms": round(statistics.median(t["ttft_ms"] for t in follow), 1)
        if follow
        else None,
        "first_turn_median_ttft_ms": round(
            statistics.median(s.turns[0]["ttft_ms"] for s in sessions if s.turns[0].get("ok")), 1
        )
        if any(s.turns[0].get("ok") for s in sessions)
        else None,
        "sessions_on_one_replica": sum(
            1 for s in sessions if len({r for t in s.turns for r in t["replicas"]}) == 1
        ),
        "calls_per_replica": {
            r: sum(t["replicas"].count(r) for s in sessions for t in s.turns) for r in sorted(served)
        },
        "failed_turns": sum(1 for s in sessions for t in s.turns if not t.get("ok")),
    }


def _gateway(args: argparse.Namespace, state_dir: Path, policy: GatewayPolicy) -> LocalGateway:
    binary = ensure_llama_server(args.cache_dir, log=log)
    model = ensure_model(args.cache_dir, args.model, log=log)
    replica = LocalServerConfig(
        binary=binary,
        model=model,
        state_dir=state_dir / "unused",
        threads=max(1, (os.cpu_count() or 1) // args.replicas),
        # Room for every session's prefix on one replica: the comparison is about routing, not eviction.
        ctx_size=local_model(args.model).context * args.slots,
        parallel=args.slots,
        alias=local_model(args.model).alias,
    )
    return LocalGateway(
        LocalGatewayConfig(replica=replica, replicas=args.replicas, state_dir=state_dir, policy=policy)
    )


def _phase(args: argparse.Namespace, policy: GatewayPolicy, *, failover: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bastion-gw-") as tmp:
        folder = Path(tmp)
        gateway = _gateway(args, folder / "gateway", policy)
        state = gateway.start()
        try:
            sessions = [_Session(n, _repo(folder, n)) for n in range(args.sessions)]
            victim = gateway.replica_servers()[0].status()
            kill = (args.kill_after, victim.pid) if failover and victim else None
            log(
                f"{policy}{' + failover' if failover else ''}: {args.sessions} sessions x {args.turns} turns…"
            )
            started = time.perf_counter()
            asyncio.run(
                _run_sessions(
                    state.url,
                    state.model,
                    state.workers,
                    sessions,
                    args.turns,
                    args.max_tokens,
                    args.timeout,
                    kill,
                )
            )
            result: dict[str, Any] = {
                "policy": policy,
                "seconds": round(time.perf_counter() - started, 1),
                **_summary(sessions),
            }
            if failover and victim is not None:
                dead = f"http://{victim.host}:{victim.port}"
                at, later = args.kill_after, args.kill_after + 1
                result["killed_replica"] = dead
                result["turn_during_kill"] = [s.turns[at] for s in sessions]
                result["later_turns_ok"] = all(t.get("ok") for s in sessions for t in s.turns[later:])
                result["later_turns_on_dead_replica"] = sum(
                    t["replicas"].count(dead) for s in sessions for t in s.turns[later:]
                )
            result["sessions"] = [{"session": s.number, "turns": s.turns} for s in sessions]
            return result
        finally:
            gateway.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--slots", type=int, default=4, help="llama-server --parallel per replica")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=48,
        help="answer length: routing and caching are about prompts; long answers only cost time",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="the client's read timeout (BASTION_MODEL_TIMEOUT_S's default): after a kill the survivor "
        "queues every session on its slots, and on a shared CPU that can take longer",
    )
    parser.add_argument("--kill-after", type=int, default=3, help="turns done before the kill")
    parser.add_argument("--model", choices=["smollm2", "qwen2.5-1.5b"], default="smollm2")
    parser.add_argument("--phases", nargs="+", default=["cache_aware", "round_robin", "failover"])
    cache = Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion")
    parser.add_argument("--cache-dir", type=Path, default=cache)
    args = parser.parse_args(argv)
    # Stopped from outside, still stop the replicas and gateways (the phases' `finally`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases = {}
    for phase in args.phases:
        policy: GatewayPolicy = "cache_aware" if phase == "failover" else phase
        phases[phase] = _phase(args, policy, failover=phase == "failover")
    emit(
        {
            "benchmark": "gateway",
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "phases": phases,
        }
    )


if __name__ == "__main__":
    main()
