"""The reasoning-effort router: accuracy on held-out labels, share sent to "high", and what routing
saves in completion tokens against always-"high" on the same session.

    python -m evals.bench.router [--labels FILE] [--url http://127.0.0.1:PORT/v1 --corpus examples/corpus]

Offline part: the shipped labelled set (or --labels) is split 75/25 with a fixed seed; the rules and
a learned router trained on the 75 % are scored on the 25 %. With --url, one QA session (the
questions below: look-ups and syntheses mixed) runs twice through the QA agent against the server —
routed by the rules, then with every step forced to "high" — and the completion and reasoning tokens
are summed. SmolLM2 ignores reasoning_effort, so locally both totals come out alike; on Mistral
Small 4 the "high" steps add the reasoning tokens, which is what the routed total avoids.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from agents import (
    LabelledStep,
    LearnedRouter,
    QAAgent,
    RouteDecision,
    Router,
    default_labels,
    read_labels,
    route_effort,
    train,
)
from evals.bench._common import emit, indexed_corpus, log, quiet_models
from retrieval import Principal, SentenceTransformerEmbedder, default_model_path
from serving import ChatClient

ROOT = Path(__file__).resolve().parents[2]
SESSION = [
    "What is the minimum password length?",
    "Compare the rules for remote work abroad with the travel approval rules.",
    "How long is CCTV footage kept?",
    "Why might a SEV1 incident need a different response than a SEV2 incident? Explain.",
    "Who approves a stay abroad?",
    "Combine the leave and remote-work policies: how many days in total may someone be away?",
]


def always_high(text: str) -> RouteDecision:
    return RouteDecision(effort="high", reason="baseline: every step high")


def _score(router: Router, steps: list[Any]) -> dict[str, float]:
    decisions = [router(s.text).effort for s in steps]
    correct = sum(d == s.effort for d, s in zip(decisions, steps, strict=True))
    return {
        "accuracy": round(correct / len(steps), 3),
        "share_high": round(decisions.count("high") / len(steps), 3),
    }


async def session_tokens(
    url: str, corpus: Path, router: Router, questions: list[str] = SESSION
) -> dict[str, int]:
    """One QA session through the agent, routed by `router`: model calls and tokens, summed."""
    with indexed_corpus(corpus) as (retriever, _):
        async with ChatClient(url) as client:
            agent = QAAgent(client, retriever, checkpointer=InMemorySaver(), router=router)
            thread = uuid.uuid4().hex
            results = [await agent.ask(q, Principal(user="bench"), thread_id=thread) for q in questions]
    steps = [s for r in results for s in r.steps]
    return {
        "model_calls": len(steps),
        "high_calls": sum(s.effort == "high" for s in steps),
        "completion_tokens": sum(s.usage.completion_tokens for s in steps),
        "reasoning_tokens": sum(s.usage.reasoning_tokens or 0 for s in steps),
    }


def heldout_split(steps: list[LabelledStep], seed: int = 0) -> tuple[list[LabelledStep], list[LabelledStep]]:
    """(train, held out): a seeded 75/25 split of the labelled steps."""
    shuffled = steps[:]
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * 0.75)
    return shuffled[:cut], shuffled[cut:]


def measure(labels: Path, url: str | None, corpus: Path) -> dict[str, object]:
    quiet_models()
    steps = read_labels(labels)
    train_set, test_set = heldout_split(steps)
    embedder = SentenceTransformerEmbedder(default_model_path())
    learned = LearnedRouter(train(train_set, embedder, heldout=0), embedder)
    report: dict[str, object] = {
        "benchmark": "router",
        "labelled": len(steps),
        "train": len(train_set),
        "heldout": len(test_set),
        "heldout_share_high_true": round(sum(s.effort == "high" for s in test_set) / len(test_set), 3),
        "rules": _score(route_effort, test_set),
        "learned": _score(learned, test_set),
    }
    if url:
        log("QA session routed by the rules…")
        routed = asyncio.run(session_tokens(url, corpus, route_effort))
        log("the same session with every step high…")
        high = asyncio.run(session_tokens(url, corpus, always_high))
        report["session"] = {
            "questions": len(SESSION),
            "routed": routed,
            "always_high": high,
            "completion_tokens_ratio_routed_to_high": round(
                routed["completion_tokens"] / max(1, high["completion_tokens"]), 3
            ),
        }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", type=Path, default=default_labels())
    parser.add_argument("--url", help="also run the routed vs always-high session against this server")
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus")
    args = parser.parse_args(argv)
    emit(measure(args.labels, args.url, args.corpus))


if __name__ == "__main__":
    main()
