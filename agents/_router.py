"""The reasoning-effort router: one decision per model call, recorded with its reason.

Three strategies share one signature, `(text) -> RouteDecision`: the rules below (hard steps
synthesise, compare, explain or calculate, or ask several things at once), the learned classifier
in `_learned_router`, and `start_easy` for escalation, where the agent retries once with "high"
when the "none" answer fails its checks. Steps that are easy by nature (query rewriting) are
decided by `decide` without asking the strategy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serving import Effort, Usage

_HARD_MARKERS = re.compile(
    r"\b(compare|comparison|differen\w*|why|explain\w*|analy[sz]\w*|conflict\w*|contradict\w*|"
    r"combine\w*|calculat\w*|in total|altogether|sum of|trade-?offs?|implications?|justify|"
    r"step by step|both)\b",
    re.IGNORECASE,
)
LONG_QUESTION_WORDS = 30


class RouteDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    effort: Effort
    reason: str


def route_effort(question: str) -> RouteDecision:
    marker = _HARD_MARKERS.search(question)
    if marker:
        return RouteDecision(
            effort="high", reason=f"asks to {marker.group(0).lower()!r}: multi-step reasoning"
        )
    if question.count("?") > 1:
        return RouteDecision(effort="high", reason="several questions at once")
    words = len(question.split())
    if words > LONG_QUESTION_WORDS:
        return RouteDecision(effort="high", reason=f"long question ({words} words)")
    return RouteDecision(effort="none", reason="single-fact look-up")


Router = Callable[[str], RouteDecision]
Step = Literal["rewrite", "expand", "rerank", "answer", "verify", "code", "chat"]

_EASY_STEPS: dict[Step, str] = {
    "rewrite": "query rewriting is an easy step",
    "expand": "writing a search passage is an easy step",
    "rerank": "ordering a few passages is an easy step",
    "verify": "a yes/no check of an answer against its quotes is an easy step",
}


def decide(router: Router, step: Step, text: str) -> RouteDecision:
    """The effort for one model call: fixed for steps that are easy by nature, else the strategy's."""
    if step in _EASY_STEPS:
        return RouteDecision(effort="none", reason=_EASY_STEPS[step])
    return router(text)


def start_easy(text: str) -> RouteDecision:
    """The escalation strategy's first decision for every step."""
    return RouteDecision(effort="none", reason="escalation: start with none, retry with high if checks fail")


class StepRecord(BaseModel):
    """One model call of a turn: which step, the effort decision and why, and what it cost."""

    model_config = ConfigDict(frozen=True)

    step: Step
    effort: Effort
    reason: str
    usage: Usage
    latency_ms: float


def total_usage(records: list[StepRecord]) -> Usage:
    """The turn's usage over all its model calls; cached tokens stay unknown if any call did not say."""
    cached = [r.usage.cached_tokens for r in records]
    return Usage(
        prompt_tokens=sum(r.usage.prompt_tokens for r in records),
        completion_tokens=sum(r.usage.completion_tokens for r in records),
        cached_tokens=None if None in cached else sum(c or 0 for c in cached),
        reasoning_tokens=sum(r.usage.reasoning_tokens or 0 for r in records) or None,
    )
