"""What Bastion's client costs over raw httpx, against the same server, in one run.

    python -m evals.bench.client_overhead --url http://127.0.0.1:PORT/v1 [--requests 30]

Pairs of requests of the same shape (short prompts, 8 tokens out, temperature 0) go once through
`serving.ChatClient` and once as a raw httpx POST, alternating which goes first; the two prompts of a
pair differ in one letter, so neither finds its whole prompt cached by the other. Reports median
latency of each and their ratio (target: within 5%), and time to first token through
`ChatClient.stream` versus a raw streamed POST.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from evals.bench._common import emit, log
from serving import KEEPALIVE_EXPIRY_S, ChatClient, ChatRequest, Message

PROMPT = "Name one colour of the rainbow. Request {i}{side}."


async def _raw(http: httpx.AsyncClient, url: str, i: int) -> float:
    body = {
        "messages": [{"role": "user", "content": PROMPT.format(i=i, side="A")}],
        "max_tokens": 8,
        "temperature": 0,
    }
    started = time.perf_counter()
    response = await http.post(f"{url}/chat/completions", json=body)
    response.raise_for_status()
    response.json()
    return (time.perf_counter() - started) * 1000


async def _ours(client: ChatClient, i: int) -> float:
    request = ChatRequest(
        messages=[Message(role="user", content=PROMPT.format(i=i, side="B"))], max_tokens=8, temperature=0
    )
    started = time.perf_counter()
    await client.complete(request)
    return (time.perf_counter() - started) * 1000


async def _raw_ttft(http: httpx.AsyncClient, url: str, i: int) -> float:
    body = {
        "messages": [{"role": "user", "content": PROMPT.format(i=i, side="A")}],
        "max_tokens": 8,
        "stream": True,
    }
    started = time.perf_counter()
    first = None
    async with http.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and json.loads(line[6:])["choices"]:
                delta = json.loads(line[6:])["choices"][0].get("delta", {})
                if delta.get("content"):
                    first = time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000


async def _ours_ttft(client: ChatClient, i: int) -> float:
    request = ChatRequest(messages=[Message(role="user", content=PROMPT.format(i=i, side="B"))], max_tokens=8)
    started = time.perf_counter()
    first = None
    async for event in client.stream(request):
        if first is None and event.content:
            first = time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000


async def measure(url: str, requests: int) -> dict[str, object]:
    raw, ours, raw_ttft, ours_ttft = [], [], [], []
    # The same keep-alive expiry as ChatClient's: a fair comparison, and no request sent down a
    # socket the server is closing (httpx's default of 5 s races the servers' own 5 s).
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http, ChatClient(url) as client:
        await _raw(http, url, -1)  # warm the connection pools and the server
        await _ours(client, -1)
        for i in range(requests):
            if i % 2:
                raw.append(await _raw(http, url, i))
                ours.append(await _ours(client, i))
                raw_ttft.append(await _raw_ttft(http, url, 10_000 + i))
                ours_ttft.append(await _ours_ttft(client, 10_000 + i))
            else:
                ours.append(await _ours(client, i))
                raw.append(await _raw(http, url, i))
                ours_ttft.append(await _ours_ttft(client, 10_000 + i))
                raw_ttft.append(await _raw_ttft(http, url, 10_000 + i))
    median = statistics.median
    return {
        "benchmark": "client_overhead",
        "requests": requests,
        "raw_httpx_median_ms": round(median(raw), 2),
        "bastion_client_median_ms": round(median(ours), 2),
        "ratio_bastion_to_raw": round(median(ours) / median(raw), 3),
        "target_ratio_at_most": 1.05,
        "raw_stream_ttft_median_ms": round(median(raw_ttft), 2),
        "bastion_stream_ttft_median_ms": round(median(ours_ttft), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    log(f"{args.requests} request pairs against {args.url}…")
    emit(asyncio.run(measure(args.url, args.requests)))


if __name__ == "__main__":
    main()
