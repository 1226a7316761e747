"""Model-assisted search: the chat model writes what an answer would look like in the documents' own
words, searched together with the question (HyDE-style expansion), and orders the top candidates
(listwise reranking).

Each costs one model call per search, which `StepRecord`s report with its tokens and latency. They
pay where users ask in lay terms against formal text, and cost where the question already uses the
documents' words: `bastion eval <retrieval suite> --assist …` measures both, and `QAOptions` turns
them on for the QA agent only where the suites showed a gain (docs/evaluation.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents._prompts import render
from agents._router import StepRecord, decide, route_effort
from retrieval import Principal, Retriever, SearchHit, SearchMode
from serving import (
    ChatClient,
    ChatRequest,
    ChatResult,
    JsonSchema,
    Message,
    ResponseError,
    ServerError,
    TimeoutError,
    Usage,
)

# A step that fails this way leaves the plain search in place (flagged): the assist is an improvement,
# never a reason for a search to fail. A server that cannot be reached, or a request it rejects, is
# still raised: those are the operator's to fix, and the answer step would meet them next anyway.
_STEP_FAILURES = (TimeoutError, ServerError, ResponseError)

Assist = Literal["expand", "rerank"]


class AssistOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expand: bool = False
    rerank: bool = False
    candidates: int = Field(default=10, ge=2, le=30)  # the top hits the model orders
    passage_chars: int = Field(default=360, ge=80)  # each candidate as the model sees it: its head is enough
    expansion_tokens: int = Field(default=96, ge=16, le=512)


class AssistedHits(BaseModel):
    model_config = ConfigDict(frozen=True)

    hits: list[SearchHit]
    query: str  # what was searched: the question, then the model's passage when expanded
    steps: list[StepRecord]
    flags: list[str]  # "expand_failed", "rerank_failed": that step fell back to the plain search


def rerank_schema(candidates: int) -> JsonSchema:
    return JsonSchema(
        name="ranking",
        schema={
            "type": "object",
            "properties": {
                "ranking": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": candidates},
                    "maxItems": candidates,
                }
            },
            "required": ["ranking"],
            "additionalProperties": False,
        },
    )


def reorder(hits: list[SearchHit], ranking: list[int]) -> list[SearchHit]:
    """The hits the model named (1-based, first mention wins, out-of-range ignored) in its order,
    then the rest in their search order: nothing is lost or repeated whatever the model says."""
    named = [n - 1 for n in dict.fromkeys(ranking) if 1 <= n <= len(hits)]
    rest = [i for i in range(len(hits)) if i not in set(named)]
    return [hits[i] for i in named + rest]


class SearchAssist:
    def __init__(self, client: ChatClient, retriever: Retriever, options: AssistOptions) -> None:
        self.client = client
        self.retriever = retriever
        self.options = options

    async def search(
        self,
        question: str,
        principal: Principal,
        *,
        limit: int,
        mode: SearchMode | None = None,
        cache_salt: str | None = None,
    ) -> AssistedHits:
        steps: list[StepRecord] = []
        flags: list[str] = []
        query = question
        if self.options.expand:
            passage, step = await self.expand(question, cache_salt=cache_salt)
            steps.append(step)
            if passage:
                query = f"{question}\n{passage}"
            else:
                flags.append("expand_failed")
        depth = max(limit, self.options.candidates) if self.options.rerank else limit
        hits = await asyncio.to_thread(self.retriever.search, query, principal, limit=depth, mode=mode)
        if self.options.rerank and len(hits) > 1:
            hits, step, ok = await self.rerank(question, hits, cache_salt=cache_salt)
            steps.append(step)
            flags += [] if ok else ["rerank_failed"]
        return AssistedHits(hits=hits[:limit], query=query, steps=steps, flags=flags)

    async def expand(self, question: str, *, cache_salt: str | None = None) -> tuple[str, StepRecord]:
        """A short passage in the documents' vocabulary that would answer `question` ("" if none, or
        if the model timed out or failed)."""
        started = time.perf_counter()
        try:
            result = await self.client.complete(
                ChatRequest(
                    messages=[Message(role="user", content=render("search_expand", question=question))],
                    reasoning_effort="none",
                    max_tokens=self.options.expansion_tokens,
                    temperature=0.0,
                    cache_salt=cache_salt,
                )
            )
        except _STEP_FAILURES:
            return "", _step("expand", None, started)
        return " ".join(result.content.split()), _step("expand", result, started)

    async def rerank(
        self, question: str, hits: list[SearchHit], *, cache_salt: str | None = None
    ) -> tuple[list[SearchHit], StepRecord, bool]:
        """`hits` with the top candidates in the model's order; unchanged, with ok=False, when its
        reply is not a ranking or the model timed out or failed."""
        top = hits[: self.options.candidates]
        passages = "\n\n".join(
            f"[{n}] {h.chunk.title or 'untitled'}: {_head(h.chunk.text, self.options.passage_chars)}"
            for n, h in enumerate(top, start=1)
        )
        started = time.perf_counter()
        try:
            result = await self.client.complete(
                ChatRequest(
                    messages=[
                        Message(
                            role="user",
                            content=render("search_rerank", question=question, passages=passages),
                        )
                    ],
                    reasoning_effort="none",
                    max_tokens=12 + 5 * len(top),  # digits, commas and spaces
                    temperature=0.0,
                    response_format=rerank_schema(len(top)),
                    cache_salt=cache_salt,
                )
            )
        except _STEP_FAILURES:
            return hits, _step("rerank", None, started), False
        try:
            ranking = [int(n) for n in json.loads(result.content)["ranking"]]
        except (ValueError, KeyError, TypeError):
            return hits, _step("rerank", result, started), False
        return reorder(top, ranking) + hits[len(top) :], _step("rerank", result, started), True


def _head(text: str, chars: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[:chars].rsplit(" ", 1)[0] + " …"


def _step(step: Literal["expand", "rerank"], result: ChatResult | None, started: float) -> StepRecord:
    """The step's record; a failed call (`result` None) cost its wall time and no tokens we know of."""
    decision = decide(route_effort, step, "")
    return StepRecord(
        step=step,
        effort=decision.effort,
        reason=decision.reason,
        usage=result.usage if result else Usage(),
        latency_ms=result.latency_ms if result else (time.perf_counter() - started) * 1000,
    )
