"""Prefix-cache reuse of the QA agent's prompt layout over a scripted conversation.

    python -m evals.bench.cache_reuse --url http://127.0.0.1:PORT/v1 [--corpus examples/corpus]

Prints one JSON object: per turn the prompt and cached tokens the server reported, and the share of
prompt tokens served from cache over the follow-up turns. Compare runs by that share, not by seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from agents import QAAgent
from evals.bench._common import indexed_corpus
from retrieval import Principal
from serving import ChatClient

TURNS = [
    "How many days per year may staff work from abroad?",
    "Who has to approve a stay abroad?",
    "What is the minimum password length?",
    "How long is CCTV footage kept?",
    "How soon must response begin for a SEV2 incident?",
]


async def measure(url: str, corpus: Path) -> dict[str, object]:
    with indexed_corpus(corpus) as (retriever, _):
        async with ChatClient(url) as client:
            agent = QAAgent(client, retriever, checkpointer=InMemorySaver())
            thread = uuid.uuid4().hex
            results = [await agent.ask(q, Principal(user="bench"), thread_id=thread) for q in TURNS]
    turns = [
        {
            "question": r.question,
            "prompt_tokens": r.usage.prompt_tokens,
            "cached_tokens": r.usage.cached_tokens,
        }
        for r in results
    ]
    follow_prompt = sum(r.usage.prompt_tokens for r in results[1:])
    follow_cached = sum(r.usage.cached_tokens or 0 for r in results[1:])
    return {
        "benchmark": "cache_reuse",
        "turns": turns,
        "follow_up_prompt_tokens": follow_prompt,
        "follow_up_cached_tokens": follow_cached,
        "follow_up_cached_share": round(follow_cached / follow_prompt, 4) if follow_prompt else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "examples" / "corpus"
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.url, args.corpus)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
