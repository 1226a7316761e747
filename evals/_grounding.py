"""The grounding suite: run the QA agent on Python's FAQ and score what needs no judge.

- verified: of the answers given, the share whose every citation is found at the cited span of its
  source file, read back from disk with Bastion's own loader (and whose quote, if any, lies inside it);
  an answer without citations does not count as verified;
- refusals: a third of the sampled questions have their FAQ section removed from the index; the agent
  should decline those, and answer the others (both shares are reported);
- answer length in words; and, with a judge, faithfulness to the cited passages and agreement with the
  FAQ's own answer.

Only the FAQ's answers are indexed — not the rest of the documentation, which may well answer a
withheld question and make a refusal wrong.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from agents import QAAgent, QAResult, content_words
from evals._context import EvalContext
from evals._corpora import Corpus, Query, python_faq_corpus
from evals._judge import judge
from evals._result import EvalResult, Metric, Series, now
from evals._retrieval import READER, index_corpus, sample_queries
from evals._stats import figure, mean_metric
from retrieval import load_documents
from serving import ChatClient, ConnectError, ServingError

WITHHELD_SHARE = 1 / 3


class Answered(BaseModel):
    """One question's outcome, kept in the result's details for audit."""

    id: str
    question: str
    withheld: bool
    refused: bool = False
    answer: str = ""
    words: int = 0
    citations: int = 0
    verified: bool = False
    cites_relevant: bool = False
    flags: list[str] = []
    reference_recall: float | None = None  # of the reference answer's lead facts, the share stated
    supported: bool = False  # no claim flagged as unsupported by its quote
    support: float | None = None  # the best support a claim found (for tuning the decline threshold)
    faithful: bool | None = None
    correct: bool | None = None
    error: str | None = None  # the model server failed this question (it is left out of the shares)


def split(queries: list[Query], seed: int) -> tuple[list[Query], list[Query]]:
    """(answerable, withheld): at least one withheld whenever there are two questions or more."""
    count = max(1 if len(queries) > 1 else 0, math.floor(len(queries) * WITHHELD_SHARE))
    withheld = random.Random(seed + 1).sample(queries, count)
    chosen = {q.id for q in withheld}
    return [q for q in queries if q.id not in chosen], withheld


REFERENCE_LEAD_WORDS = 40
FACTS_RIGHT_RECALL = 0.5
_FIRST_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def reference_recall(answer: str, reference: str) -> float:
    """The share of the reference answer's first sentence (at most 40 words: where the FAQ states its
    answer before elaborating) whose content words the answer states. 0.5 and above counts as the
    reference's facts contained: measured, not judged, so it needs no second model."""
    text = " ".join(reference.split())
    end = _FIRST_SENTENCE_END.search(text)
    lead = " ".join((text[: end.start()] if end else text).split()[:REFERENCE_LEAD_WORDS])
    wanted = content_words(lead)
    if not wanted:
        return 0.0
    return len(wanted & content_words(answer)) / len(wanted)


def verify(result: QAResult, texts: dict[str, str]) -> bool:
    """Every citation's text is exactly the source's text at its span, and its quote lies within it."""
    if not result.citations:
        return False
    for citation in result.citations:
        source = texts.get(citation.source)
        if source is None or source[citation.start : citation.end] != citation.text:
            return False
        if citation.quote is not None and citation.quote not in citation.text:
            return False
    return True


async def grounding(context: EvalContext) -> EvalResult:
    started = now()
    corpus = python_faq_corpus(context.cache_dir)
    faq = [q for q in corpus.queries if q.answer]
    queries = sample_queries(faq, context.limit, context.seed)
    answerable, withheld = split(queries, context.seed)
    hidden = {doc for q in withheld for doc in q.relevant}
    indexed = Corpus(
        name="python-faq",
        documents={k: v for k, v in corpus.documents.items() if k.startswith("faq/") and k not in hidden},
        queries=answerable,
        data=corpus.data,
    )
    with tempfile.TemporaryDirectory(prefix="bastion-eval-") as tmp:
        retriever, store, names = index_corpus(context, indexed, Path(tmp))
        try:
            loaded = load_documents([Path(tmp) / "docs"]).documents
            texts = {d.source: d.text for d in loaded}
            ids = {d.source: names[Path(d.source).as_posix()] for d in loaded}
            async with context.qa_agent(retriever) as agent:
                outcomes = await _ask_all(context, agent, answerable, withheld, texts, ids)
        finally:
            store.close()
    return _result(context, started, corpus, outcomes, len(indexed.documents))


async def _ask_all(
    context: EvalContext,
    agent: QAAgent,
    answerable: list[Query],
    withheld: list[Query],
    texts: dict[str, str],
    ids: dict[str, str],
) -> list[Answered]:
    gate = asyncio.Semaphore(max(1, context.concurrency))
    judge_client: ChatClient | None = None
    if context.judge_url:
        judge_client = ChatClient(context.judge_url, api_key=context.judge_api_key, model=context.judge_model)
    context.progress.start(
        f"grounding: {len(answerable)} answerable + {len(withheld)} withheld questions",
        len(answerable) + len(withheld),
    )

    async def one(query: Query, hidden: bool) -> Answered:
        async with gate:
            try:
                result = await agent.ask(query.text, READER, thread_id=f"eval-{uuid.uuid4().hex}")
            except ConnectError:
                raise  # the server is gone: no later question will fare better
            except ServingError as exc:
                context.progress.advance()
                error = f"{type(exc).__name__}: {exc}"
                return Answered(id=query.id, question=query.text, withheld=hidden, error=error)
            outcome = Answered(
                id=query.id,
                question=query.text,
                withheld=hidden,
                refused=result.refused,
                answer=result.answer,
                words=len(result.answer.split()),
                citations=len(result.citations),
                verified=verify(result, texts),
                cites_relevant=any(ids.get(c.source) in query.relevant for c in result.citations),
                flags=result.flags,
                supported=not result.refused and not any(f.startswith("unsupported") for f in result.flags),
                support=result.support,
                reference_recall=(
                    None
                    if hidden or not query.answer
                    else 0.0
                    if result.refused
                    else round(reference_recall(result.answer, query.answer), 4)
                ),
            )
            if judge_client is not None and not hidden and not result.refused and query.answer:
                verdict = await judge(
                    judge_client,
                    query.text,
                    result.answer,
                    [c.text for c in result.citations],
                    query.answer,
                )
                if verdict is not None:
                    outcome = outcome.model_copy(
                        update={"faithful": verdict.faithful, "correct": verdict.correct}
                    )
        context.progress.advance()
        return outcome

    try:
        return list(
            await asyncio.gather(*(one(q, False) for q in answerable), *(one(q, True) for q in withheld))
        )
    finally:
        if judge_client is not None:
            await judge_client.aclose()


THRESHOLDS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def declined_at(outcome: Answered, threshold: float) -> bool:
    """Would the agent have declined at this support threshold? Declines that do not depend on it
    (the model's verdicts, nothing retrieved) stay; the rest is decided by the recorded support."""
    if outcome.support is None:
        return outcome.refused
    if any(f.startswith(("model_refused", "verifier_declined")) for f in outcome.flags):
        return True
    return outcome.support < threshold


def decline_tradeoff(asked: list[Answered], hidden: list[Answered]) -> list[Series]:
    """How the support threshold (agents' `support_threshold`) trades withheld questions declined
    against answerable ones lost: the curve the default is chosen from."""
    return [
        Series(
            chart="Decline threshold",
            label=label,
            x=list(THRESHOLDS),
            y=[round(sum(declined_at(o, t) for o in group) / max(1, len(group)), 4) for t in THRESHOLDS],
            x_label="support threshold",
            y_label="share declined",
        )
        for label, group in (("withheld (should decline)", hidden), ("answerable (should answer)", asked))
    ]


def flag(outcomes: list[Answered], key: str) -> list[float]:
    return [1.0 if getattr(o, key) else 0.0 for o in outcomes]


def _result(
    context: EvalContext, started: datetime, corpus: Corpus, outcomes: list[Answered], indexed: int
) -> EvalResult:
    failed = [o for o in outcomes if o.error]
    asked = [o for o in outcomes if not o.withheld and not o.error]
    answered = [o for o in asked if not o.refused]
    hidden = [o for o in outcomes if o.withheld and not o.error]
    metrics: list[Metric] = [
        mean_metric("answered/verified_share", flag(answered, "verified")),
        mean_metric("answered/cites_relevant_share", flag(answered, "cites_relevant")),
        mean_metric("answerable/answered_share", [0.0 if o.refused else 1.0 for o in asked]),
        mean_metric("withheld/refusal_share", flag(hidden, "refused")),
        mean_metric("answerable/declined_share", flag(asked, "refused"), higher_is_better=False),
        mean_metric(
            "answerable/reference_facts_share",
            [1.0 if (o.reference_recall or 0.0) >= FACTS_RIGHT_RECALL else 0.0 for o in asked],
        ),
        mean_metric("answerable/reference_recall", [o.reference_recall or 0.0 for o in asked]),
        mean_metric("answered/supported_share", flag(answered, "supported")),
        mean_metric(
            "answered/words", [float(o.words) for o in answered], higher_is_better=None, unit="words"
        ),
        figure("all/errors", len(failed), higher_is_better=False),
    ]
    judged = [o for o in answered if o.faithful is not None]
    if context.judge_url:
        metrics += [
            mean_metric("judged/faithful_share", flag(judged, "faithful")),
            mean_metric("judged/correct_share", flag(judged, "correct")),
        ]
    series = [
        Series(
            chart="Outcomes",
            label=label,
            x=["answered", "verified", "cites its FAQ section", "refused"],
            y=[
                sum(not o.refused for o in group) / max(1, len(group)),
                sum(o.verified for o in group) / max(1, len(group)),
                sum(o.cites_relevant for o in group) / max(1, len(group)),
                sum(o.refused for o in group) / max(1, len(group)),
            ],
            y_label="share of questions",
            kind="bar",
        )
        for label, group in (("answerable", asked), ("withheld", hidden))
    ]
    series += decline_tradeoff(asked, hidden)
    notes = [
        f"{len(asked)} answerable and {len(hidden)} withheld questions from {len(corpus.queries)} FAQ "
        f"entries; {indexed} FAQ sections indexed (withheld ones removed).",
        "verified_share counts answers whose every citation matches its source span exactly; "
        "an answer without citations is not verified.",
    ]
    if context.judge_url:
        notes.append(
            f"Judged by {context.judge_model or 'the server default model'} at {context.judge_url}; "
            f"{len(judged)} of {len(answered)} answers got a usable verdict."
        )
    return context.result(
        "grounding",
        started,
        data=corpus.data,
        metrics=metrics,
        series=series,
        notes=notes,
        details={"outcomes": [o.model_dump() for o in outcomes]},
        judge_url=context.judge_url,
        judge_model=context.judge_model,
    )
