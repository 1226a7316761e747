"""The QA graph on real parts: MiniLM, Qdrant Edge, LangGraph's SQLite checkpointer, llama-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agents import REFUSAL, QAAgent, ThreadAccessError
from agents._qa import _parse_answer, _reply
from retrieval import EdgeStore, Indexer, Principal, Retriever, SentenceTransformerEmbedder
from serving import ChatClient
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


async def test_answer_cites_retrieved_passages_verbatim(agent: QAAgent) -> None:
    result = await agent.ask("How many days per year may staff work from abroad?", OPERATOR)
    assert not result.refused and result.answer
    assert result.citations, result.flags
    for citation in result.citations:
        assert Path(citation.source).read_text()[citation.start : citation.end] == citation.text
    assert any("20 days" in c.text for c in result.citations)
    assert result.reasoning_effort == "none"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert {"retrieve_ms", "generate_ms", "total_ms"} <= result.timings.keys()


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
    # The second prompt starts with the system text and the first question: the server reuses them.
    assert second.usage.cached_tokens > 20


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


def test_malformed_model_output_is_recovered_and_flagged() -> None:
    assert _parse_answer('{"answer": "14 characters", "citations": [1]}') == ("14 characters", [1], [])
    answer, numbers, flags = _parse_answer('{"answer": "14 chara')
    assert (answer, numbers, flags) == ("14 chara", [], ["malformed_output"])
    assert _reply("a", [1]) == '{"answer": "a", "citations": [1]}'
