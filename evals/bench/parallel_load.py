"""Parallel load on the local llama-server: N concurrent sessions against a server with N slots.

    python -m evals.bench.parallel_load [--sessions 1 2 4] [--requests 6] [--tokens 32]

For each N a fresh llama-server starts with `--parallel N` (continuous batching, `-t 1`), N sessions
send their requests concurrently through `serving.ChatClient`, and the server is stopped. Reports
completion tokens/s, requests/s and p50/p95 request latency per N, measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from evals.bench._common import emit, log, percentiles
from serving import (
    ChatClient,
    ChatRequest,
    LocalServer,
    LocalServerConfig,
    Message,
    ensure_llama_server,
    ensure_model,
)


async def _load(url: str, sessions: int, requests: int, tokens: int) -> dict[str, object]:
    latencies: list[float] = []
    produced = 0

    async def session(n: int, client: ChatClient) -> None:
        nonlocal produced
        for i in range(requests):
            request = ChatRequest(
                messages=[
                    Message(role="user", content=f"Session {n}, item {i}: describe a harbour at dawn.")
                ],
                max_tokens=tokens,
                temperature=0.0,
            )
            started = time.perf_counter()
            result = await client.complete(request)
            latencies.append((time.perf_counter() - started) * 1000)
            produced += result.usage.completion_tokens

    async with ChatClient(url) as client:
        started = time.perf_counter()
        await asyncio.gather(*(session(n, client) for n in range(sessions)))
        seconds = time.perf_counter() - started
    return {
        "sessions": sessions,
        "requests": sessions * requests,
        "seconds": round(seconds, 2),
        "completion_tokens_per_s": round(produced / seconds, 1),
        "requests_per_s": round(sessions * requests / seconds, 2),
        "latency": percentiles(latencies),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=6, help="per session")
    parser.add_argument("--tokens", type=int, default=32, help="completion tokens per request")
    cache = Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion")
    parser.add_argument("--cache-dir", type=Path, default=cache)
    args = parser.parse_args(argv)
    binary, model = ensure_llama_server(args.cache_dir, log=log), ensure_model(args.cache_dir, log=log)
    runs = []
    for sessions in args.sessions:
        with tempfile.TemporaryDirectory() as tmp:
            server = LocalServer(
                LocalServerConfig(binary=binary, model=model, state_dir=Path(tmp), parallel=sessions)
            )
            state = server.start()
            try:
                log(f"{sessions} session(s) on --parallel {sessions}…")
                runs.append(asyncio.run(_load(state.url, sessions, args.requests, args.tokens)))
            finally:
                server.stop()
    base = runs[0]["completion_tokens_per_s"]
    assert isinstance(base, float)
    for run in runs:
        rate = run["completion_tokens_per_s"]
        assert isinstance(rate, float)
        run["throughput_vs_first"] = round(rate / base, 2) if base else None
    emit({"benchmark": "parallel_load", "threads": 1, "runs": runs})


if __name__ == "__main__":
    main()
