"""The chat agent: streamed tokens and node events, threads that persist across processes (SQLite
and a real PostgreSQL), append-only history without reasoning text, and cache reuse."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agents import ChatAgent, ChatEvent, QuestionError, ThreadAccessError
from agents._chat import SYSTEM
from retrieval import Principal
from serving import ChatClient

ME = Principal(user="ann")
# Unique per run, so the server's cache holds nothing of this conversation from an earlier run.
OPENING = f"Say hello to the compliance team of unit {uuid.uuid4().hex[:8]}."


async def _turn(
    agent: ChatAgent, text: str, thread: str | None = None, who: Principal = ME
) -> list[ChatEvent]:
    return [event async for event in agent.stream(text, who, thread_id=thread)]


@pytest.mark.llm
async def test_a_turn_streams_node_events_and_tokens_and_threads_resume_in_a_new_process(
    tmp_path: Path, llm_url: str
) -> None:
    db = str(tmp_path / "threads.sqlite")
    async with ChatClient(llm_url) as client, AsyncSqliteSaver.from_conn_string(db) as saver:
        events = await _turn(ChatAgent(client, checkpointer=saver), OPENING)
    kinds = [e.kind for e in events]
    assert kinds[0] == "node" and events[0].node == "route" and events[0].effort == "none"
    assert "token" in kinds and kinds[-1] == "done"
    nodes = [e.node for e in events if e.kind == "node"]
    assert nodes == ["route", "respond", "finish"]
    assert kinds.index("token") < kinds.index("node", 1)  # tokens arrive before the respond node ends
    done = events[-1]
    assert done.thread_id and done.usage and done.usage.prompt_tokens > 0
    streamed = "".join(e.text for e in events if e.kind == "token").strip()
    first_prompt = done.usage.prompt_tokens
    assert first_prompt > 0

    # Another connection, as another process would open: the thread and its history are there.
    async with ChatClient(llm_url) as client, AsyncSqliteSaver.from_conn_string(db) as saver:
        agent = ChatAgent(client, checkpointer=saver)
        second = await _turn(agent, "Now say it in one word.", done.thread_id)
        third = await _turn(agent, "Thank you.", done.thread_id)
        history = await agent.history(done.thread_id, ME)
        system_tokens = await client.count_tokens(SYSTEM)
        with pytest.raises(ThreadAccessError):
            await _turn(agent, "let me in", done.thread_id, Principal(user="mallory"))
    assert history[0] == (OPENING, streamed)
    assert [user for user, _ in history] == [
        OPENING,
        "Now say it in one word.",
        "Thank you.",
    ]
    # Each turn's system message starts with the previous turn's: the cached prefix only grows.
    cached = [e.usage.cached_tokens for e in (second[-1], third[-1]) if e.usage]
    assert cached[0] is not None and cached[1] is not None
    assert system_tokens <= cached[0] < cached[1] and cached[1] >= first_prompt - 20


@pytest.mark.llm
async def _leave_after_first_token(agent: ChatAgent, text: str, thread: str) -> None:
    """What an API client that disconnects mid-reply does to the stream."""
    events = agent.stream(text, ME, thread_id=thread)
    async for event in events:
        if event.kind == "token":
            break
    await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.llm
async def test_a_reply_cut_short_is_not_stored(tmp_path: Path, llm_url: str) -> None:
    # The caller goes away after the first token (an API client disconnecting): the turn is not kept,
    # and the conversation goes on from its last whole turn.
    db = str(tmp_path / "threads.sqlite")
    async with ChatClient(llm_url) as client, AsyncSqliteSaver.from_conn_string(db) as saver:
        agent = ChatAgent(client, checkpointer=saver)
        done = (await _turn(agent, "Hello there."))[-1]
        thread = done.thread_id or ""
        await _leave_after_first_token(agent, "Tell me a long story about a lighthouse.", thread)
        assert [user for user, _ in await agent.history(thread, ME)] == ["Hello there."]
        await _leave_after_first_token(agent, "Another story, please.", "fresh")
        assert await agent.history("fresh", ME) == []
        assert (await agent.graph.aget_state({"configurable": {"thread_id": "fresh"}})).values == {}


async def test_threads_persist_in_postgres(llm_url: str, postgres_url: str) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with ChatClient(llm_url) as client, AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
        await saver.setup()
        done = (await _turn(ChatAgent(client, checkpointer=saver), "Hello from replica one."))[-1]
    async with ChatClient(llm_url) as client, AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
        agent = ChatAgent(client, checkpointer=saver)
        await _turn(agent, "And hello from replica two.", done.thread_id)
        history = await agent.history(done.thread_id or "", ME)
    assert [user for user, _ in history] == ["Hello from replica one.", "And hello from replica two."]


@pytest.mark.llm
async def test_a_cut_turn_is_undone_in_postgres_too(llm_url: str, postgres_url: str) -> None:
    # Postgres keeps channel values apart from checkpoints (blobs): putting the last good checkpoint
    # back must write them again, or the next turn would find an empty history.
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with ChatClient(llm_url) as client, AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
        await saver.setup()
        agent = ChatAgent(client, checkpointer=saver)
        thread = (await _turn(agent, "First, hello."))[-1].thread_id or ""
        await _leave_after_first_token(agent, "Tell me a long story about a lighthouse.", thread)
        assert [user for user, _ in await agent.history(thread, ME)] == ["First, hello."]
        await _turn(agent, "Then, goodbye.", thread)
        assert [user for user, _ in await agent.history(thread, ME)] == ["First, hello.", "Then, goodbye."]


def _sglang_stream(seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """SGLang's streamed shape with Mistral's reasoning parser: reasoning_content deltas, then content."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        deltas = [{"reasoning_content": "The user greets; "}, {"reasoning_content": "reply briefly."}]
        deltas += [{"content": "Hello"}, {"content": " there."}]
        chunks = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 40,
                    "completion_tokens": 9,
                    "prompt_tokens_details": {"cached_tokens": 0},
                },
            }
        )
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


async def test_reasoning_is_streamed_but_never_stored_or_sent_back(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    db = str(tmp_path / "t.sqlite")
    async with (
        ChatClient("http://sglang:30000/v1", transport=_sglang_stream(seen)) as client,
        AsyncSqliteSaver.from_conn_string(db) as saver,
    ):
        agent = ChatAgent(client, checkpointer=saver)
        events = await _turn(agent, "Hi!", "r1")
        await _turn(agent, "Again.", "r1")
        history = await agent.history("r1", ME)
    assert "".join(e.text for e in events if e.kind == "reasoning") == "The user greets; reply briefly."
    assert history == [("Hi!", "Hello there."), ("Again.", "Hello there.")]
    second_prompt = json.dumps(seen[1]["messages"])
    assert "Hello there." in second_prompt and "reply briefly" not in second_prompt
    assert seen[0]["reasoning_effort"] == "none"


async def test_an_empty_message_is_refused() -> None:
    async with ChatClient("http://127.0.0.1:9/v1") as client:
        with pytest.raises(QuestionError, match="empty"):
            await _turn(ChatAgent(client), "   ")
