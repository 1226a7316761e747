"""Framework overhead: the time the QA graph spends outside the model and retrieval, per question.

    python -m evals.bench.agent_overhead --url http://127.0.0.1:PORT/v1 [--questions 20]

Each answer records its retrieval time and the time of all its model calls; the rest of its wall
time is Bastion's own work (LangGraph's scheduling and checkpointing to SQLite, prompt rendering,
JSON parsing, claim checks). Reports p50/p95 of that overhead and its share of the whole.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agents import QAAgent
from evals.bench._common import emit, indexed_corpus, log, percentiles, quiet_models
from retrieval import Principal
from serving import ChatClient

QUESTIONS = [
    "How many days per year may staff work from abroad?",
    "What is the minimum password length?",
    "How long is CCTV footage kept?",
    "How soon must response begin for a SEV2 incident?",
    "Which AI tool may receive Confidential data?",
]


async def measure(url: str, corpus: Path, questions: int) -> dict[str, object]:
    with indexed_corpus(corpus) as (retriever, tmp):
        async with (
            ChatClient(url) as client,
            AsyncSqliteSaver.from_conn_string(str(tmp / "threads.sqlite")) as saver,
        ):
            agent = QAAgent(client, retriever, checkpointer=saver)
            await agent.ask(QUESTIONS[0], Principal(user="bench"))  # warm up
            overheads, shares = [], []
            for i in range(questions):
                result = await agent.ask(
                    QUESTIONS[i % len(QUESTIONS)], Principal(user="bench"), thread_id=f"t{i}"
                )
                t = result.timings
                overhead = t["total_ms"] - t["retrieve_ms"] - t["model_ms"]
                overheads.append(overhead)
                shares.append(overhead / t["total_ms"])
    return {
        "benchmark": "agent_overhead",
        "questions": questions,
        "overhead": percentiles(overheads),
        "overhead_share_mean": round(sum(shares) / len(shares), 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "examples" / "corpus"
    )
    args = parser.parse_args(argv)
    quiet_models()
    log(f"{args.questions} questions against {args.url}…")
    emit(asyncio.run(measure(args.url, args.corpus, args.questions)))


if __name__ == "__main__":
    main()
