"""Model-assisted search on a retrieval suite: each variant (expand, rerank, both) asks the same
queries as plain search over the same index, so its gain is a paired difference with its own
interval, reported with what the model calls cost (latency, prompt and completion tokens)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from agents import AssistOptions, SearchAssist
from evals._context import EvalContext
from evals._corpora import Query
from evals._errors import UsageError
from evals._result import Metric
from evals._stats import mean_metric
from retrieval import Principal, Retriever, SearchMode

VARIANTS: dict[str, AssistOptions] = {
    "expand": AssistOptions(expand=True),
    "rerank": AssistOptions(rerank=True),
    "expand+rerank": AssistOptions(expand=True, rerank=True),
}
# Per query, what the variant's model calls cost: (metric, unit).
_COSTS = (("latency_ms", "ms"), ("prompt_tokens", ""), ("completion_tokens", ""), ("fallback_share", ""))

Rank = Callable[[Query, list[Path]], dict[str, float]]


def check_variants(names: list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown --assist {unknown[0]!r}; choose from: {', '.join(VARIANTS)}")
    return tuple(dict.fromkeys(names))


async def assisted_metrics(
    context: EvalContext,
    retriever: Retriever,
    rank: Rank,
    queries: list[Query],
    plain: list[dict[str, float]],
    mode: SearchMode,
    *,
    reader: Principal,
    depth: int,
    corpus: str,
) -> list[Metric]:
    """`rank` scores a query's hit sources (best first) against its relevant documents; `plain`
    holds plain search's scores for the same queries, in order."""
    n = len(queries) if context.assist_limit is None else min(context.assist_limit, len(queries))
    metrics: list[Metric] = []
    async with context.chat_client() as client:
        for variant in context.assists:
            name = f"{mode}+{variant}"
            context.progress.start(f"{corpus}: {n} queries, {name}", n)
            assist = SearchAssist(client, retriever, VARIANTS[variant])
            gate = asyncio.Semaphore(context.concurrency)
            done = await asyncio.gather(
                *(_one(context, assist, gate, rank, q, mode, reader, depth) for q in queries[:n])
            )
            per_query = [s for s, _ in done]
            for metric in ("ndcg@10", "recall@10", "mrr"):
                metrics.append(mean_metric(f"{name}/{metric}", [s[metric] for s in per_query]))
            gains = [s["ndcg@10"] - p["ndcg@10"] for s, p in zip(per_query, plain[:n], strict=True)]
            metrics.append(mean_metric(f"{name}/ndcg@10_gain", gains, proportion=False))
            for i, (cost, unit) in enumerate(_COSTS):
                values = [c[i] for _, c in done]
                metrics.append(mean_metric(f"{name}/{cost}", values, higher_is_better=False, unit=unit))
    return metrics


async def _one(
    context: EvalContext,
    assist: SearchAssist,
    gate: asyncio.Semaphore,
    rank: Rank,
    query: Query,
    mode: SearchMode,
    reader: Principal,
    depth: int,
) -> tuple[dict[str, float], list[float]]:
    async with gate:
        found = await assist.search(query.text, reader, limit=depth, mode=mode)
    context.progress.advance()
    cost = [
        sum(s.latency_ms for s in found.steps),
        sum(s.usage.prompt_tokens for s in found.steps),
        sum(s.usage.completion_tokens for s in found.steps),
        float(bool(found.flags)),
    ]
    return rank(query, [Path(h.chunk.source) for h in found.hits]), cost
