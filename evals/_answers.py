"""The answers suite: is the answer right? Asked of the QA agent over the sample policies.

`evals/data/policy_questions.jsonl` holds questions an employee would ask of `examples/corpus/`,
phrased unlike the documents, each with the facts a right answer must state (any one of a few
spellings: "14 characters", "fourteen characters") and the file that says them, plus questions that
no document answers, which must be declined. Each question is asked in its own thread.

Scored per question: every fact in the answer; the right file cited; declined or not. This is the
set the CI's answer-quality test runs on the capable local model; the grounding suite does the same
on the Python FAQ, at scale.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import tempfile
import uuid
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agents import QAAgent, QAResult
from evals._context import EvalContext
from evals._result import DataVersion, EvalResult, Metric, Series, now
from evals._retrieval import READER
from evals._stats import figure, mean_metric
from retrieval import EdgeStore, Indexer, Retriever
from serving import ConnectError, ServingError

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "examples" / "corpus"


class PolicyQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str
    answerable: bool
    facts: list[list[str]]  # every fact must appear, in any one of its spellings
    source: str | None  # the file name that states them


class Scored(BaseModel):
    """One question's outcome, kept in the result's details."""

    id: str
    question: str
    answerable: bool
    answer: str = ""
    refused: bool = False
    facts_right: bool = False
    cites_source: bool = False
    supported: bool = False  # no claim flagged as unsupported by its quote
    words: int = 0
    support: float | None = None  # the best support a claim found (for tuning the decline threshold)
    flags: list[str] = []
    error: str | None = None


@cache
def policy_questions() -> list[PolicyQuestion]:
    text = resources.files("evals").joinpath("data", "policy_questions.jsonl").read_text(encoding="utf-8")
    return [PolicyQuestion.model_validate_json(line) for line in text.splitlines() if line.strip()]


def limited(questions: list[PolicyQuestion], limit: int | None, seed: int) -> list[PolicyQuestion]:
    """A limited run keeps both kinds: unanswerable questions in proportion, at least one of them."""
    if limit is None or limit >= len(questions):
        return questions
    hidden = [q for q in questions if not q.answerable]
    answerable = [q for q in questions if q.answerable]
    take = min(len(hidden), max(1, round(limit * len(hidden) / len(questions))))
    rng = random.Random(seed)
    chosen = rng.sample(answerable, max(0, limit - take)) + rng.sample(hidden, take)
    return sorted(chosen, key=lambda q: q.id)


def has_facts(answer: str, facts: list[list[str]]) -> bool:
    folded = " ".join(answer.casefold().split())
    return all(any(spelling.casefold() in folded for spelling in fact) for fact in facts)


def score(question: PolicyQuestion, result: QAResult) -> Scored:
    return Scored(
        id=question.id,
        question=question.question,
        answerable=question.answerable,
        answer=result.answer,
        refused=result.refused,
        facts_right=not result.refused and has_facts(result.answer, question.facts),
        cites_source=any(Path(c.source).name == question.source for c in result.citations),
        supported=not result.refused and not any(f.startswith("unsupported") for f in result.flags),
        words=len(result.answer.split()),
        support=result.support,
        flags=result.flags,
    )


async def ask_all(
    agent: QAAgent, questions: list[PolicyQuestion], *, concurrency: int = 1, on_done: object = None
) -> list[Scored]:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(question: PolicyQuestion) -> Scored:
        async with gate:
            try:
                result = await agent.ask(question.question, READER, thread_id=f"eval-{uuid.uuid4().hex}")
            except ConnectError:
                raise
            except ServingError as exc:
                error = f"{type(exc).__name__}: {exc}"
                return Scored(
                    id=question.id, question=question.question, answerable=question.answerable, error=error
                )
        if callable(on_done):
            on_done()
        return score(question, result)

    return list(await asyncio.gather(*(one(q) for q in questions)))


def index_sample_corpus(context: EvalContext, root: Path) -> tuple[Retriever, EdgeStore]:
    store = EdgeStore(root / "index", dimension=context.embedder.dimension)
    Indexer(context.embedder, store, chunk_tokens=context.chunk_tokens).index(
        [SAMPLE_CORPUS], owner=READER.user
    )
    return Retriever(context.embedder, store, fusion=context.fusion), store


async def answers(context: EvalContext) -> EvalResult:
    started = now()
    questions = limited(policy_questions(), context.limit, context.seed)
    context.progress.start(f"answers: {len(questions)} questions on the sample policies", len(questions))
    with tempfile.TemporaryDirectory(prefix="bastion-eval-") as tmp:
        retriever, store = index_sample_corpus(context, Path(tmp))
        try:
            async with context.qa_agent(retriever) as agent:
                outcomes = await ask_all(
                    agent, questions, concurrency=context.concurrency, on_done=context.progress.advance
                )
        finally:
            store.close()
    return _result(context, started, outcomes)


def answer_metrics(outcomes: list[Scored]) -> list[Metric]:
    """The answer figures shared by this suite and grounding: right, cited, declined when they should be."""
    asked = [o for o in outcomes if o.answerable and not o.error]
    hidden = [o for o in outcomes if not o.answerable and not o.error]
    answered = [o for o in asked if not o.refused]
    return [
        mean_metric("answerable/facts_right_share", [float(o.facts_right) for o in asked]),
        mean_metric("answerable/cites_source_share", [float(o.cites_source) for o in asked]),
        mean_metric("answerable/declined_share", [float(o.refused) for o in asked], higher_is_better=False),
        mean_metric("unanswerable/declined_share", [float(o.refused) for o in hidden]),
        mean_metric("answered/supported_share", [float(o.supported) for o in answered]),
        mean_metric(
            "answered/words", [float(o.words) for o in answered], higher_is_better=None, unit="words"
        ),
        figure("all/errors", sum(1 for o in outcomes if o.error), higher_is_better=False),
    ]


def _result(context: EvalContext, started: datetime, outcomes: list[Scored]) -> EvalResult:
    asked = [o for o in outcomes if o.answerable and not o.error]
    hidden = [o for o in outcomes if not o.answerable and not o.error]
    series = [
        Series(
            chart="Answers",
            label=label,
            x=["facts right", "cites the right file", "declined"],
            y=[
                sum(o.facts_right for o in group) / max(1, len(group)),
                sum(o.cites_source for o in group) / max(1, len(group)),
                sum(o.refused for o in group) / max(1, len(group)),
            ],
            y_label="share of questions",
            kind="bar",
        )
        for label, group in (("answerable", asked), ("unanswerable", hidden))
    ]
    data = DataVersion(
        name="bastion-policy-questions",
        version="1",
        source="repository",
        sha256=_fingerprint(),
        detail="evals/data/policy_questions.jsonl over examples/corpus/ (written for Bastion)",
    )
    return context.result(
        "answers",
        started,
        data=[data],
        metrics=answer_metrics(outcomes),
        series=series,
        notes=[
            f"{len(asked)} answerable and {len(hidden)} unanswerable questions over the sample policies.",
            "facts_right: every expected fact in the answer (any listed spelling); declined answers score 0.",
        ],
        details={"outcomes": [o.model_dump() for o in outcomes]},
    )


def _fingerprint() -> str:
    """Of the questions and the corpus together: a changed document changes the right answers."""
    lines = [json.dumps(q.model_dump(), sort_keys=True) for q in policy_questions()]
    corpus = sorted(p.name + p.read_text(encoding="utf-8") for p in SAMPLE_CORPUS.glob("*.md"))
    return hashlib.sha256("\n".join(lines + corpus).encode()).hexdigest()
