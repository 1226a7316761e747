"""What a QA agent is told (its options) and what it returns for a turn: the agent's boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents._citations import Citation
from agents._quotes import SUPPORT_THRESHOLD
from agents._router import StepRecord
from agents._search_assist import AssistOptions
from retrieval import SearchMode
from serving import Effort, Usage

REFUSAL = "Not found in the documents you can access."


class QAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = 5
    mode: SearchMode = "hybrid"
    min_score: float = 0.25  # dense mode only: fused hybrid scores are not similarities
    max_tokens: int = 320
    temperature: float = 0.0
    history_turns: int = 12
    escalate: bool = False  # retry once with "high" when a "none" answer fails its checks
    # Ask the model whether the checked answer's quotes answer the question. Off by default: with the
    # 1.5B local model it declined none of 65 answers (docs/answer-quality.md); on for a stronger model.
    verify: bool = False
    support_threshold: float = SUPPORT_THRESHOLD  # below it a claim is unsupported (agents/_quotes.py)
    # Whole documents a thread may pin into its cached prefix, in estimated tokens (agents/_pin.py);
    # 0 shows retrieved passages only.
    pin_tokens: int = Field(default=0, ge=0)
    # Each hit widened with its neighbours from the same section up to this many estimated tokens
    # (agents/_sections.py); 0 shows the hit alone.
    section_tokens: int = Field(default=0, ge=0)
    # Model-assisted search (agents/_search_assist.py): off unless the suites showed it pays.
    assist: AssistOptions = AssistOptions()


class QAResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    thread_id: str
    question: str
    search_query: str
    answer: str
    citations: list[Citation]
    retrieved_chunk_ids: list[str]  # everything retrieval returned this turn, cited or not (for audit)
    refused: bool
    flags: list[str]
    support: float | None = None  # the best support a claim's quote gave (None: the model declined)
    reasoning_effort: Effort
    effort_reason: str
    escalated: bool
    steps: list[StepRecord]
    usage: Usage
    timings: dict[str, float]
