"""The reasoning-effort router: one decision per model call, recorded with its reason.

Rules for now (a later strategy learns them): hard steps are those that synthesise, compare,
explain or calculate, or that ask several things at once; everything else is easy.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from serving import Effort

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
