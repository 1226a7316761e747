"""Prefix-cache reuse over 10-turn sessions: Bastion's prompt layout versus a naive one, in one run.

    python -m evals.bench.cache_reuse --url http://127.0.0.1:PORT/v1 [--corpus examples/corpus] [--turns 10]
        [--pin-tokens 6000] [--sessions qa code]

Two sessions against the same server:
- compliance QA over the corpus, three ways: Bastion's QAAgent showing retrieved passages (one
  growing system message: instructions, then per turn its new passages, question and answer); the
  same agent pinning the documents its searches reach whole into that message (`--pin-tokens`,
  agents/_pin.py); and the layout several chat front ends use — this turn's retrieved passages in
  the system prompt, then the conversation as messages;
- the coding assistant over a small repository (a few of Bastion's own modules copied to a
  temporary folder; one file changes half-way): Bastion's CodeAgent (packed repository, appended
  deltas) versus the naive layout with this turn's most relevant files in the system prompt.

Every model call is streamed, so each turn reports prompt and cached tokens as the server counted
them and the time to first token. The figure of merit is the share of prompt tokens served from
cache on follow-up turns (target ≥ 0.9 for Bastion); compare seconds only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from agents import CodeAgent, QAAgent, QAOptions, answer_schema
from evals.bench._common import emit, indexed_corpus, log
from retrieval import Principal, Retriever
from serving import ChatClient, ChatRequest, ChatResult, JsonSchema, Message, StreamEvent, Usage

ROOT = Path(__file__).resolve().parents[2]
ME = Principal(user="bench")

QA_TURNS = [
    "How many days per year may staff work from abroad?",
    "Who has to approve a stay abroad?",
    "What is the minimum password length?",
    "How often must passwords be changed?",
    "How long is CCTV footage kept?",
    "How soon must response begin for a SEV2 incident?",
    "Who must be told about a data breach?",
    "How many days of annual leave do staff get?",
    "Can unused leave be carried over?",
    "Which documents are confidential?",
]
CODE_FILES = ["agents/_router.py", "agents/_citations.py", "agents/_prompts.py", "serving/_errors.py"]
CODE_TURNS = [
    "Which function decides the reasoning effort for a question?",
    "What makes a question hard according to the rules?",
    "Which error is raised when a prompt is too long for the context?",
    "How are prompt templates rendered, and what happens when a variable is missing?",
    "What does a Citation record?",
    "Which step types are easy by nature?",
    "How is the usage of a turn added up?",
    "What does start_easy return?",
    "Which errors does the serving layer define?",
    "Where is LONG_QUESTION_WORDS used?",
]
CHANGE_AT = 5  # the code session edits a file before this turn
DEFAULT_PIN_TOKENS = 6000  # the sample policies are about 5,800 estimated tokens: all of them fit


class TimedClient(ChatClient):
    """Streams every completion to time its first token; records (usage, ttft_ms) per call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[Usage, float]] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage, finish = Usage(), None
        events: AsyncIterator[StreamEvent] = self.stream(request)
        async for event in events:
            if event.content:
                first = first or time.perf_counter()
                parts.append(event.content)
            usage = event.usage or usage
            finish = event.finish_reason or finish
        ended = time.perf_counter()
        self.calls.append((usage, ((first or ended) - started) * 1000))
        return ChatResult(
            content="".join(parts), finish_reason=finish, usage=usage, latency_ms=(ended - started) * 1000
        )


def _turn(usage: Usage, ttft_ms: float) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "ttft_ms": round(ttft_ms, 1),
    }


def _summary(turns: list[dict[str, Any]]) -> dict[str, Any]:
    follow = turns[1:]
    prompt = sum(t["prompt_tokens"] for t in follow)
    cached = sum(t["cached_tokens"] or 0 for t in follow)
    extra: dict[str, Any] = {}
    if follow and "all_calls_prompt_tokens" in follow[0]:
        sent = sum(t["all_calls_prompt_tokens"] for t in follow)
        reused = sum(t["all_calls_cached_tokens"] for t in follow)
        extra["follow_up_all_calls_cached_share"] = round(reused / sent, 4) if sent else None
    return {
        "turns": turns,
        **extra,
        "follow_up_prompt_tokens": prompt,
        "follow_up_cached_tokens": cached,
        "follow_up_cached_share": round(cached / prompt, 4) if prompt else None,
        "follow_up_median_ttft_ms": round(statistics.median(t["ttft_ms"] for t in follow), 1)
        if follow
        else None,
    }


async def _qa_bastion(
    client: TimedClient, retriever: Retriever, questions: list[str], *, pin_tokens: int = 0
) -> list[dict[str, Any]]:
    options = QAOptions(pin_tokens=pin_tokens)
    agent = QAAgent(client, retriever, options=options, checkpointer=InMemorySaver())
    thread = uuid.uuid4().hex
    turns = []
    for question in questions:
        client.calls.clear()
        result = await agent.ask(question, ME, thread_id=thread)
        usage, ttft = client.calls[-1]  # the answer call (a follow-up's rewrite comes first)
        turns.append(
            {
                **_turn(usage, ttft),
                "answer": result.answer,
                "refused": result.refused,
                "cited": sorted({Path(c.source).name for c in result.citations}),
                "model_calls": len(client.calls),
                # Every prompt token the turn sent, the rewrite's included.
                "all_calls_prompt_tokens": sum(u.prompt_tokens for u, _ in client.calls),
                "all_calls_cached_tokens": sum(u.cached_tokens or 0 for u, _ in client.calls),
            }
        )
    return turns


async def _qa_naive(client: TimedClient, retriever: Retriever, questions: list[str]) -> list[dict[str, Any]]:
    history: list[Message] = []
    turns = []
    for question in questions:
        # As many passages as the agent shows (it showed 3 when this layout was first measured).
        hits = await asyncio.to_thread(retriever.search, question, ME, limit=QAOptions().top_k)
        passages = {n: h.chunk for n, h in enumerate(hits, start=1)}
        block = "\n\n".join(f"[{n}] {c.title}\n{c.text}" for n, c in passages.items())
        system = f"You answer questions only from these numbered passages.\n\n{block}"
        schema = answer_schema(passages) if passages else None
        turns.append(await _naive_turn(client, system, history, question, schema))
    return turns


async def _naive_turn(
    client: TimedClient, system: str, history: list[Message], question: str, schema: JsonSchema | None
) -> dict[str, Any]:
    """One turn of a naive layout: this turn's context in the system prompt, the conversation after
    it. Appends the exchange to `history`."""
    request = ChatRequest(
        messages=[Message(role="system", content=system), *history, Message(role="user", content=question)],
        max_tokens=320,
        temperature=0.0,
        response_format=schema,
    )
    client.calls.clear()
    result = await client.complete(request)
    history.extend(
        [Message(role="user", content=question), Message(role="assistant", content=result.content)]
    )
    return _turn(*client.calls[-1])


def _copy_repo(target: Path) -> Path:
    for name in CODE_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target / name)
    return target


def _edit(repo: Path) -> None:
    path = repo / CODE_FILES[0]
    path.write_text(path.read_text() + "\n\nBENCH_MARKER = 1  # an edit between turns\n")


async def _code_bastion(client: TimedClient, repo: Path, questions: list[str]) -> list[dict[str, Any]]:
    agent = CodeAgent(client, checkpointer=InMemorySaver())
    thread = uuid.uuid4().hex
    turns = []
    for i, question in enumerate(questions):
        if i == CHANGE_AT:
            _edit(repo)
        client.calls.clear()
        result = await agent.ask(question, repo, ME, thread_id=thread)
        turns.append({**_turn(*client.calls[-1]), "mode": result.mode, "repacked": result.repacked})
    return turns


async def _code_naive(client: TimedClient, repo: Path, questions: list[str]) -> list[dict[str, Any]]:
    history: list[Message] = []
    turns = []
    for i, question in enumerate(questions):
        if i == CHANGE_AT:
            _edit(repo)
        words = set(re.findall(r"[a-z_]{3,}", question.lower()))
        texts = {name: (repo / name).read_text() for name in CODE_FILES}
        ranked = sorted(texts, key=lambda n: -sum(texts[n].lower().count(w) for w in words))
        files = "\n\n".join(f"=== {n} ===\n{texts[n]}" for n in ranked[:3])
        system = f"You are a coding assistant. Answer from these files.\n\n{files}"
        turns.append(await _naive_turn(client, system, history, question, None))
    return turns


async def measure(
    url: str,
    corpus: Path,
    turns: int = 10,
    *,
    pin_tokens: int = DEFAULT_PIN_TOKENS,
    sessions: tuple[str, ...] = ("qa", "code"),
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "cache_reuse",
        "turns_per_session": turns,
        "pin_tokens": pin_tokens,
        "code": {},
    }
    async with TimedClient(url) as client:
        if "qa" in sessions:
            questions = QA_TURNS[:turns]
            with indexed_corpus(corpus) as (retriever, _):
                log("QA session, Bastion layout (retrieved passages)…")
                bastion = _summary(await _qa_bastion(client, retriever, questions))
                log(f"QA session, Bastion layout (documents pinned, budget {pin_tokens} tokens)…")
                pinned = _summary(await _qa_bastion(client, retriever, questions, pin_tokens=pin_tokens))
                log("QA session, naive layout…")
                naive = _summary(await _qa_naive(client, retriever, questions))
            report["qa"] = {"bastion": bastion, "pinned": pinned, "naive": naive}
        for layout, run in (("bastion", _code_bastion), ("naive", _code_naive)):
            if "code" not in sessions:
                break
            log(f"code session, {layout} layout…")
            with tempfile.TemporaryDirectory() as folder:
                summary = _summary(await run(client, _copy_repo(Path(folder)), CODE_TURNS[:turns]))
            report["code"][layout] = summary
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--pin-tokens",
        type=int,
        default=DEFAULT_PIN_TOKENS,
        help="the pinned layout's budget (estimated tokens)",
    )
    parser.add_argument("--sessions", nargs="+", choices=["qa", "code"], default=["qa", "code"])
    args = parser.parse_args(argv)
    emit(
        asyncio.run(
            measure(
                args.url, args.corpus, args.turns, pin_tokens=args.pin_tokens, sessions=tuple(args.sessions)
            )
        )
    )


if __name__ == "__main__":
    main()
