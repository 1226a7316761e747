"""Model-assisted search on real parts (MiniLM, Qdrant Edge, llama-server): whatever the model
replies, search returns the same candidates, each once, and says what the model calls cost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from agents import AssistOptions, QAAgent, QAOptions, SearchAssist
from agents._search_assist import reorder
from retrieval import Chunk, EdgeStore, Indexer, Principal, Retriever, SearchHit, SentenceTransformerEmbedder
from serving import ChatClient
from tests.conftest import CORPUS

OPERATOR = Principal(user="local")
QUESTION = "someone copied our customer database, who do we tell?"


def _hits(n: int) -> list[SearchHit]:
    return [
        SearchHit(
            chunk=Chunk(
                chunk_id=f"c{i}",
                source="/docs/a.md",
                start=i,
                end=i + 1,
                text="x",
                position=i,
                content_sha256="0" * 64,
                acl=[],
            ),
            score=1.0 - i / 100,
        )
        for i in range(n)
    ]


@given(n=st.integers(0, 12), ranking=st.lists(st.integers(-3, 15), max_size=20))
def test_reorder_keeps_every_hit_once_and_puts_the_named_ones_first(n: int, ranking: list[int]) -> None:
    hits = _hits(n)
    ordered = reorder(hits, ranking)
    assert sorted(h.chunk.chunk_id for h in ordered) == sorted(h.chunk.chunk_id for h in hits)
    named = [k for k in dict.fromkeys(ranking) if 1 <= k <= n]
    assert [h.chunk.chunk_id for h in ordered[: len(named)]] == [f"c{k - 1}" for k in named]
    rest = [h.chunk.chunk_id for h in ordered[len(named) :]]
    assert rest == sorted(rest, key=lambda c: int(c[1:]))  # the others keep their search order


@pytest.fixture(scope="module")
def retriever(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Retriever]:
    store = EdgeStore(tmp_path_factory.mktemp("assist") / "index", dimension=384)
    Indexer(embedder, store).index([CORPUS], owner=OPERATOR.user)
    yield Retriever(embedder, store)
    store.close()


@pytest.fixture
async def client(llm_url: str) -> AsyncIterator[ChatClient]:
    async with ChatClient(llm_url) as c:
        yield c


@pytest.mark.llm
async def test_rerank_orders_the_same_candidates_and_reports_its_cost(
    client: ChatClient, retriever: Retriever
) -> None:
    plain = retriever.search(QUESTION, OPERATOR, limit=6)
    assisted = await SearchAssist(client, retriever, AssistOptions(rerank=True, candidates=6)).search(
        QUESTION, OPERATOR, limit=6
    )
    assert len(plain) == 6
    assert sorted(h.chunk.chunk_id for h in assisted.hits) == sorted(h.chunk.chunk_id for h in plain)
    assert assisted.query == QUESTION
    [step] = assisted.steps
    assert step.step == "rerank" and step.effort == "none"
    assert step.usage.prompt_tokens > 100 and step.latency_ms > 0
    assert assisted.flags in ([], ["rerank_failed"])


@pytest.mark.llm
async def test_expansion_searches_the_question_with_the_models_passage(
    client: ChatClient, retriever: Retriever
) -> None:
    assisted = await SearchAssist(client, retriever, AssistOptions(expand=True)).search(
        QUESTION, OPERATOR, limit=3
    )
    assert [s.step for s in assisted.steps] == ["expand"]
    assert assisted.steps[0].usage.completion_tokens > 0
    assert assisted.query.startswith(QUESTION + "\n") and len(assisted.query) > len(QUESTION) + 10
    assert len(assisted.hits) == 3 and not assisted.flags
    # A reader without access gets nothing, however the query was widened.
    outsider = await SearchAssist(client, retriever, AssistOptions(expand=True, rerank=True)).search(
        QUESTION, Principal(user="visitor"), limit=3
    )
    assert outsider.hits == [] and [s.step for s in outsider.steps] == ["expand"]


@pytest.mark.llm
async def test_the_qa_agent_records_the_assisting_calls_before_its_answer(
    client: ChatClient, retriever: Retriever
) -> None:
    options = QAOptions(top_k=3, assist=AssistOptions(expand=True, rerank=True, candidates=6))
    agent = QAAgent(client, retriever, options=options, checkpointer=InMemorySaver())
    result = await agent.ask("How long is CCTV footage kept?", OPERATOR)
    assert [s.step for s in result.steps][:3] == ["expand", "rerank", "answer"]
    assert len(result.retrieved_chunk_ids) == 3
    assert result.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in result.steps)
    assert result.timings["model_ms"] == pytest.approx(sum(s.latency_ms for s in result.steps))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="candidates"):
        AssistOptions(rerank=True, candidates=1)


async def test_a_model_that_does_not_answer_in_time_leaves_the_plain_search(retriever: Retriever) -> None:
    # A server that accepts the request and never replies: the fault a loaded model server shows.
    release = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ChatClient(f"http://127.0.0.1:{port}/v1", timeout_s=0.3) as slow:
            options = AssistOptions(expand=True, rerank=True, candidates=4)
            assisted = await SearchAssist(slow, retriever, options).search(QUESTION, OPERATOR, limit=4)
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    plain = retriever.search(QUESTION, OPERATOR, limit=4)
    assert [h.chunk.chunk_id for h in assisted.hits] == [h.chunk.chunk_id for h in plain]
    assert assisted.query == QUESTION
    assert assisted.flags == ["expand_failed", "rerank_failed"]
    assert [s.step for s in assisted.steps] == ["expand", "rerank"]
    assert all(s.usage.prompt_tokens == 0 and s.latency_ms >= 250 for s in assisted.steps)
