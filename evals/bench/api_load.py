"""The HTTP API under load: requests/s and p50/p95 latency for `/v1/search` and for chat, with 1, 4
and 16 concurrent clients, and the API's own overhead per request — in one run.

    python -m evals.bench.api_load --url http://127.0.0.1:PORT/v1 [--requests 48] [--chat-requests 16]

Starts `bastion api` on a throw-away data dir (the sample corpus indexed, one key made) against the
given model server. Overhead: for search, the API's latency minus the same search run in-process;
for chat (`bastion-qa`), the API's latency minus the agent's own total time reported in the
response. With one llama-server slot pair on `-t 1`, chat throughput is the model's, not the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from evals.bench._common import emit, indexed_corpus, log, percentiles
from retrieval import Principal

ROOT = Path(__file__).resolve().parents[2]
BASTION = str(Path(sys.executable).with_name("bastion"))
QUERIES = [
    "How long is CCTV footage kept?",
    "minimum password length",
    "Who approves a stay abroad?",
    "SEV2 incident response time",
    "annual leave carry over",
    "Which AI tools may receive confidential data?",
]


def _run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([BASTION, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _load(
    http: httpx.AsyncClient, clients: int, total: int, send: Any
) -> tuple[list[float], float, list[dict[str, Any]]]:
    latencies: list[float] = []
    bodies: list[dict[str, Any]] = []
    queue = list(range(total))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            started = time.perf_counter()
            body = await send(http, i)
            latencies.append((time.perf_counter() - started) * 1000)
            bodies.append(body)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - started, bodies


def measure(url: str, requests: int, chat_requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "BASTION_DATA_DIR": folder, "BASTION_MODEL_URL": url}
        log("indexing the sample corpus and creating a key…")
        _run("index", str(ROOT / "examples" / "corpus"), "--groups", "staff", env=env)
        key = json.loads(_run("keys", "create", "--user", "bench", "--groups", "staff", "--json", env=env))[
            "key"
        ]
        port = _free_port()
        server = subprocess.Popen(
            [BASTION, "api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        api = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            report = asyncio.run(_drive(api, key, requests, chat_requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
        report["search_in_process_p50_ms"] = _in_process_search()
        report["search_api_overhead_p50_ms"] = round(
            report["search"]["1"]["p50_ms"] - report["search_in_process_p50_ms"], 2
        )
    return report


async def _drive(api: str, key: str, requests: int, chat_requests: int) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "api_load", "search": {}, "chat": {}}

    async def search(h: httpx.AsyncClient, i: int) -> dict[str, Any]:
        r = await h.post("/v1/search", json={"query": QUERIES[i % len(QUERIES)], "limit": 3})
        r.raise_for_status()
        assert r.json()["results"], "the bench user must read the corpus"
        return dict(r.json())

    async def chat(h: httpx.AsyncClient, i: int) -> dict[str, Any]:
        question = QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" (request {i})")
        messages = [{"role": "user", "content": question}]
        r = await h.post("/v1/chat/completions", json={"model": "bastion-qa", "messages": messages})
        r.raise_for_status()
        assert r.json()["bastion"]["steps"], "every chat request must reach the model"
        return dict(r.json())

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=600) as http:
        await search(http, 0)  # warm the embedder's query path
        for clients in (1, 4, 16):
            log(f"search, {clients} clients…")
            latencies, seconds, _ = await _load(http, clients, requests, search)
            report["search"][str(clients)] = {
                **percentiles(latencies),
                "requests_per_s": round(requests / seconds, 1),
            }
        for clients in (1, 4, 16):
            log(f"chat (bastion-qa), {clients} clients…")
            latencies, seconds, bodies = await _load(http, clients, chat_requests, chat)
            overheads = [
                lat - b["bastion"]["timings"]["total_ms"] for lat, b in zip(latencies, bodies, strict=True)
            ]
            report["chat"][str(clients)] = {
                **percentiles(latencies),
                "requests_per_s": round(chat_requests / seconds, 2),
                "api_overhead_p50_ms": round(statistics.median(overheads), 2),
            }
    return report


def _in_process_search() -> float:
    """The same searches without HTTP, on an identical Qdrant Edge index of the corpus."""
    with indexed_corpus(ROOT / "examples" / "corpus") as (retriever, _):
        reader = Principal(user="bench")
        assert retriever.search(QUERIES[0], reader, limit=3), "the bench user must read the corpus"
        times = []
        for i in range(48):
            started = time.perf_counter()
            retriever.search(QUERIES[i % len(QUERIES)], reader, limit=3)
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the model server's OpenAI-compatible base URL")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--chat-requests", type=int, default=16)
    args = parser.parse_args(argv)
    emit(measure(args.url, args.requests, args.chat_requests))


if __name__ == "__main__":
    main()
