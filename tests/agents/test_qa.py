"""The QA graph on real parts: MiniLM, Qdrant Edge, LangGraph's SQLite checkpointer, llama-server."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agents import REFUSAL, QAAgent, QAOptions, ThreadAccessError, forget_sources, start_easy
from agents._claims import normalise
from retrieval import EdgeStore, Indexer, Principal, Retriever, SentenceTransformerEmbedder
from serving import ChatClient, ContextLengthError
from tests.conftest import CORPUS

pytestmark = pytest.mark.llm
OPERATOR = Principal(user="local")


@pytest.fixture
async def agent(
    tmp_path: Path, llm_url: str, embedder: SentenceTransformerEmbedder
) -> AsyncIterator[QAAgent]:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([CORPUS], owner="local")
    async with (
        ChatClient(llm_url) as client,
        AsyncSqliteSaver.from_conn_string(str(tmp_path / "t.sqlite")) as saver,
    ):
        yield QAAgent(client, Retriever(embedder, store), checkpointer=saver)
    store.close()


@pytest.fixture
async def capable_agent(
    tmp_path: Path, capable_llm_url: str, embedder: SentenceTransformerEmbedder
) -> AsyncIterator[QAAgent]:
    """The same agent on the capable model: for tests that need an answer its checks accept."""
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([CORPUS], owner="local")
    async with ChatClient(capable_llm_url) as client:
        options = QAOptions(verify=True)  # the verdict's call too, on a real server
        yield QAAgent(client, Retriever(embedder, store), options=options, checkpointer=InMemorySaver())
    store.close()


@pytest.mark.capable_llm
async def test_answer_cites_retrieved_passages_verbatim(capable_agent: QAAgent) -> None:
    agent = capable_agent
    result = await agent.ask("How many days per year may staff work from abroad?", OPERATOR)
    assert not result.refused and result.answer
    assert result.citations, result.flags
    for citation in result.citations:
        assert Path(citation.source).read_text()[citation.start : citation.end] == citation.text
        assert citation.quote is None or normalise(citation.quote) in normalise(citation.text)
    assert result.reasoning_effort == "none"
    assert [s.step for s in result.steps] == ["answer", "verify"]
    # The verdict's call reuses the answer's whole prompt but its last message: cached by the server.
    answer, verify = result.steps
    assert (
        verify.usage.cached_tokens is not None
        and verify.usage.cached_tokens >= 0.8 * answer.usage.prompt_tokens
    )
    assert "20 days" in result.answer and Path(result.citations[0].source).name == "remote-work-policy.md"
    assert {c.chunk_id for c in result.citations} <= set(result.retrieved_chunk_ids)
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert {"retrieve_ms", "generate_ms", "model_ms", "total_ms"} <= result.timings.keys()
    assert result.timings["model_ms"] == pytest.approx(sum(s.latency_ms for s in result.steps))


async def test_a_user_without_access_is_refused_without_calling_the_model(agent: QAAgent) -> None:
    result = await agent.ask("What is the minimum password length?", Principal(user="visitor"))
    assert result.refused and result.answer == REFUSAL
    assert result.citations == []
    assert result.usage.prompt_tokens == 0


async def test_threads_continue_and_reuse_the_prefix_cache(agent: QAAgent) -> None:
    first = await agent.ask("How many days per year may staff work from abroad?", OPERATOR, thread_id="t1")
    second = await agent.ask("Who has to approve a stay abroad?", OPERATOR, thread_id="t1")
    state = await agent.graph.aget_state({"configurable": {"thread_id": "t1"}})
    assert [t["question"] for t in state.values["history"]] == [first.question, second.question]
    # A follow-up is rewritten before retrieval, with the same prefix as the answer that follows.
    rewrite, answer = second.steps[:2]  # then the verdict, if the checks kept an answer
    assert (rewrite.step, rewrite.effort, answer.step) == ("rewrite", "none", "answer")
    assert second.search_query
    # Turn 1's whole system message (instructions and passages) opens turn 2's prompts: cached.
    first_prompt = next(s for s in first.steps if s.step == "answer").usage.prompt_tokens
    assert rewrite.usage.cached_tokens is not None and answer.usage.cached_tokens is not None
    assert rewrite.usage.cached_tokens >= 0.8 * first_prompt
    assert answer.usage.cached_tokens >= rewrite.usage.cached_tokens


def _rows(db: Path) -> bytes:
    """Every stored byte of the checkpointer's tables, as LangGraph wrote them."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT checkpoint, metadata FROM checkpoints").fetchall()
        rows += conn.execute("SELECT value, CAST(channel AS BLOB) FROM writes").fetchall()
    return b"".join(bytes(v) for row in rows for v in row if v is not None)


async def test_a_failed_turn_leaves_nothing_behind(agent: QAAgent, tmp_path: Path) -> None:
    def thread(name: str) -> Any:
        return {"configurable": {"thread_id": name}}

    await agent.ask("How many days per year may staff work from abroad?", OPERATOR, thread_id="t1")
    before = (await agent.graph.aget_state(thread("t1"))).values
    marker = "zqxmarkerzqx"
    # ~500 KB: the client refuses it before sending, after the graph has saved the turn's first steps.
    huge = "How long is CCTV footage kept? " + f"{marker} " * 40_000
    with pytest.raises(ContextLengthError):
        await agent.ask(huge, OPERATOR, thread_id="t1")
    assert (await agent.graph.aget_state(thread("t1"))).values == before
    with pytest.raises(ContextLengthError):
        await agent.ask(huge, OPERATOR, thread_id="t2")
    assert (await agent.graph.aget_state(thread("t2"))).values == {}  # a new thread is not even created
    assert marker.encode() not in _rows(tmp_path / "t.sqlite")
    # The conversation goes on from its last good turn.
    await agent.ask("Who has to approve a stay abroad?", OPERATOR, thread_id="t1")
    history = (await agent.graph.aget_state(thread("t1"))).values["history"]
    assert [t["question"] for t in history] == [
        "How many days per year may staff work from abroad?",
        "Who has to approve a stay abroad?",
    ]


async def test_the_router_decides_each_steps_effort(agent: QAAgent) -> None:
    from agents import RouteDecision

    agent.router = lambda question: RouteDecision(
        effort="high", reason=f"test router saw {len(question)} chars"
    )
    result = await agent.ask("How long is CCTV footage kept?", OPERATOR)
    assert (result.reasoning_effort, result.effort_reason) == ("high", "test router saw 30 chars")


async def test_another_user_cannot_continue_a_thread(agent: QAAgent) -> None:
    await agent.ask("How long is CCTV footage kept?", OPERATOR, thread_id="private")
    with pytest.raises(ThreadAccessError):
        await agent.ask("And backups?", Principal(user="mallory"), thread_id="private")


UNSURE = {"answerable": False, "claims": []}


def _escalation_server(seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """Answers "none" requests with "not answerable", "high" ones with a claim the passages back, in
    llama-server's recorded response shape."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["response_format"]["json_schema"]["name"] == "verdict":
            draft: dict[str, Any] = {"answers_question": True}
        elif body["reasoning_effort"] == "high":
            claim = {"text": "CCTV footage is kept for 30 days, then overwritten.", "citations": [1]}
            draft = {"answerable": True, "claims": [claim]}
        else:
            draft = UNSURE
        message = {"role": "assistant", "content": json.dumps(draft)}
        usage = {
            "prompt_tokens": 500,
            "completion_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 450},
        }
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    return httpx.MockTransport(handler)


async def test_escalation_retries_once_with_high_when_the_none_answer_fails_its_checks(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([CORPUS], owner="local")
    seen: list[dict[str, Any]] = []
    async with ChatClient("http://recorded/v1", transport=_escalation_server(seen)) as client:
        options = QAOptions(escalate=True, verify=True)
        agent = QAAgent(client, Retriever(embedder, store), options=options, router=start_easy)
        result = await agent.ask("How long is CCTV footage kept?", OPERATOR)
    store.close()
    # none answer, high answer, then the verdict on it (an easy step: none).
    assert [body["reasoning_effort"] for body in seen] == ["none", "high", "none"]
    assert [(s.step, s.effort) for s in result.steps] == [
        ("answer", "none"),
        ("answer", "high"),
        ("verify", "none"),
    ]
    assert result.escalated and result.reasoning_effort == "high"
    assert result.flags[0].startswith("escalated:") and "model_refused" in result.flags[0]
    assert not result.refused and result.citations and result.citations[0].quote
    # Without escalation the unsure, unsupported answer is a refusal from one model call.
    seen.clear()
    store = EdgeStore(tmp_path / "index", dimension=384)
    async with ChatClient("http://recorded/v1", transport=_escalation_server(seen)) as client:
        agent = QAAgent(client, Retriever(embedder, store), router=start_easy)
        result = await agent.ask("How long is CCTV footage kept?", OPERATOR)
    store.close()
    assert len(seen) == 1 and result.refused and not result.escalated
    assert result.flags == ["model_refused"]


class _Recording(httpx.AsyncHTTPTransport):
    """The real server, with every request body kept: what the model was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return await super().handle_async_request(request)


@pytest.mark.parametrize(
    "shown",
    [{}, {"pin_tokens": 2000}, {"section_tokens": 600}],
    ids=["passages", "pinned-documents", "sections"],
)
async def test_each_turn_rechecks_earlier_passages_against_the_asker_and_the_live_index(
    tmp_path: Path, llm_url: str, embedder: SentenceTransformerEmbedder, shown: dict[str, int]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parental.md").write_text(
        "# Parental leave\n\nParents get 16 weeks of paid parental leave; apply with form HR-7.\n"
    )
    (docs / "bonus.md").write_text("# Sales bonus\n\nSales staff earn a 5% bonus on every closed deal.\n")
    store = EdgeStore(tmp_path / "index", dimension=384)
    indexer = Indexer(embedder, store)
    indexer.index([docs / "parental.md"], owner="admin", groups=frozenset({"hr"}))
    indexer.index([docs / "bonus.md"], owner="admin", groups=frozenset({"sales"}))
    secret = ("16 weeks", "HR-7")
    recording = _Recording()
    async with (
        ChatClient(llm_url, transport=recording) as client,
        AsyncSqliteSaver.from_conn_string(str(tmp_path / "t.sqlite")) as saver,
    ):
        options = QAOptions(**shown)
        agent = QAAgent(client, Retriever(embedder, store), options=options, checkpointer=saver)
        hr = Principal(user="bob", groups=frozenset({"hr"}))
        await agent.ask("How many weeks of parental leave do parents get?", hr, thread_id="t")
        assert any(s in json.dumps(recording.bodies) for s in secret)  # shown while bob was in hr

        # Same user name, new key with other groups: the hr passage and the answer drawn on it are gone.
        recording.bodies.clear()
        moved = Principal(user="bob", groups=frozenset({"sales"}))
        after_move = await agent.ask(
            "And how many weeks was it, and what bonus do I get?", moved, thread_id="t"
        )
        assert recording.bodies, "the sales passage is readable, so the model is asked"
        assert not any(s in json.dumps(recording.bodies) for s in secret)
        assert "passages_withdrawn" in after_move.flags
        assert all(Path(c.source).name != "parental.md" for c in after_move.citations)

        # Back in hr, but the document was deleted: it stays gone from the conversation.
        store.delete_source(str((docs / "parental.md").resolve()))
        recording.bodies.clear()
        after_delete = await agent.ask("Remind me: how many weeks?", hr, thread_id="t")
        assert not any(s in json.dumps(recording.bodies) for s in secret)
        assert after_delete.citations == [] and "passages_withdrawn" in after_delete.flags

        # Deleting the document also deletes the conversations that hold its text.
        await agent.ask("What bonus do sales staff earn?", moved, thread_id="unrelated")
        gone = await forget_sources(saver, [str((docs / "parental.md").resolve())])
        assert gone == ["t"]
        assert (await agent.graph.aget_state({"configurable": {"thread_id": "t"}})).values == {}
        assert (await agent.graph.aget_state({"configurable": {"thread_id": "unrelated"}})).values
    store.close()


async def test_pinned_documents_are_shown_whole_once_and_follow_ups_reuse_them(
    tmp_path: Path, llm_url: str, embedder: SentenceTransformerEmbedder
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([CORPUS], owner="local")
    recording = _Recording()
    async with ChatClient(llm_url, transport=recording) as client:
        options = QAOptions(pin_tokens=2000)
        agent = QAAgent(client, Retriever(embedder, store), options=options, checkpointer=InMemorySaver())
        first = await agent.ask("How many days per year may staff work from abroad?", OPERATOR, thread_id="p")
        values = (await agent.graph.aget_state({"configurable": {"thread_id": "p"}})).values
        evidence = values["evidence"]
        by_source: dict[str, list[str]] = {}
        for c in evidence:
            by_source.setdefault(c["source"], []).append(c["chunk_id"])
        top = next(c for c in evidence if c["chunk_id"] == first.retrieved_chunk_ids[0])
        whole = store.document(top["source"], OPERATOR, limit=100)
        assert whole is not None and len(whole) > 1
        assert by_source[top["source"]] == [c.chunk_id for c in whole]  # the whole document, in order
        assert set(first.retrieved_chunk_ids) <= {c["chunk_id"] for c in evidence}
        # The answer call names the search's best passages after the question, outside the prefix.
        answer_body = recording.bodies[-1]
        assert "The search ranked these passages first" in answer_body["messages"][-1]["content"]
        assert "The search ranked" not in answer_body["messages"][0]["content"]

        second = await agent.ask("Who has to approve a stay abroad?", OPERATOR, thread_id="p")
        values = (await agent.graph.aget_state({"configurable": {"thread_id": "p"}})).values
        pinned = {cid for ids in by_source.values() for cid in ids}
        new = [c for c in values["evidence"][len(evidence) :]]
        # Nothing already pinned is shown again; a new document comes whole or as its hits alone.
        assert not pinned & {c["chunk_id"] for c in new}
        assert {c["chunk_id"] for c in new} | pinned >= set(second.retrieved_chunk_ids)
        first_prompt = next(s for s in first.steps if s.step == "answer").usage.prompt_tokens
        answer = next(s for s in second.steps if s.step == "answer")
        assert answer.usage.cached_tokens is not None and answer.usage.cached_tokens >= 0.8 * first_prompt
    store.close()


async def test_sections_show_each_hit_with_its_neighbours_under_the_same_heading(
    tmp_path: Path, llm_url: str, embedder: SentenceTransformerEmbedder
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store, chunk_tokens=32).index([CORPUS], owner="local")
    recording = _Recording()
    async with ChatClient(llm_url, transport=recording) as client:
        agent = QAAgent(
            client,
            Retriever(embedder, store),
            options=QAOptions(top_k=2, section_tokens=400),
            checkpointer=InMemorySaver(),
        )
        question = "How many days per year may staff work from abroad?"
        result = await agent.ask(question, OPERATOR, thread_id="s")
        evidence = (await agent.graph.aget_state({"configurable": {"thread_id": "s"}})).values["evidence"]
    store.close()
    ids = [c["chunk_id"] for c in evidence]
    assert len(ids) == len(set(ids)) and set(result.retrieved_chunk_ids) <= set(ids)
    assert len(ids) > len(result.retrieved_chunk_ids), "no hit was widened"
    for hit_id in result.retrieved_chunk_ids:
        hit = next(c for c in evidence if c["chunk_id"] == hit_id)
        section = [c for c in evidence if c["source"] == hit["source"] and c["context"] == hit["context"]]
        positions = sorted(c["position"] for c in section)
        assert positions == list(range(positions[0], positions[-1] + 1)), "a section is contiguous"
    assert {c["context"] for c in evidence} == {
        next(c for c in evidence if c["chunk_id"] == h)["context"] for h in result.retrieved_chunk_ids
    }, "a neighbour from another section was shown"
    assert "The search ranked these passages first" in recording.bodies[-1]["messages"][-1]["content"]
