"""Right answers, on the capable local model: the answer-quality set over the sample policies.

This is the test that fails when Bastion's answers go wrong — a prompt change that stops the model
declining, quotes cut into fragments, a check that rejects right answers — not only when the
machinery breaks. Qwen2.5-Coder-1.5B at temperature 0; the floors sit a little under what it
measured here (docs/answer-quality.md), so they hold on a loaded machine and fail on a regression.
"""

from __future__ import annotations

import asyncio

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents import QAAgent
from evals._answers import Scored, ask_all, has_facts, policy_questions
from evals._retrieval import READER
from retrieval import EdgeStore, Indexer, Retriever, SentenceTransformerEmbedder
from serving import ChatClient
from tests.conftest import CORPUS

# Asking the whole set takes about 4 minutes on an idle 2-core machine; a loaded CI machine is slower.
pytestmark = [pytest.mark.capable_llm, pytest.mark.timeout(1800)]


def test_the_question_set_is_sound() -> None:
    questions = policy_questions()
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 10 and len(questions) - len(answerable) >= 5
    texts = {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.md")}
    for q in answerable:
        assert q.facts and q.source in texts, q.id
        assert has_facts(texts[q.source], q.facts), f"{q.id}: a fact is not in {q.source}"
        others = [name for name, text in texts.items() if name != q.source and has_facts(text, q.facts)]
        assert not others, f"{q.id}: its facts also stand in {others}"
    for q in questions:
        if not q.answerable:
            assert not q.facts and q.source is None


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, capable_llm_url: str, embedder: SentenceTransformerEmbedder
) -> list[Scored]:
    """The whole set, asked once for the module's tests (about 6 minutes on 2 cores)."""
    store = EdgeStore(tmp_path_factory.mktemp("answers") / "index", dimension=embedder.dimension)
    Indexer(embedder, store).index([CORPUS], owner=READER.user)

    async def ask() -> list[Scored]:
        async with ChatClient(capable_llm_url) as client:
            agent = QAAgent(client, Retriever(embedder, store), checkpointer=InMemorySaver())
            return await ask_all(agent, policy_questions())

    try:
        return asyncio.run(ask())
    finally:
        store.close()


def _report(outcomes: list[Scored]) -> str:
    return "\n".join(
        f"{o.id} right={o.facts_right} cited={o.cites_source} declined={o.refused} {o.flags}: {o.answer[:99]}"
        for o in outcomes
    )


def test_answerable_questions_get_the_facts_from_the_right_file(outcomes: list[Scored]) -> None:
    asked = [o for o in outcomes if o.answerable]
    assert not any(o.error for o in outcomes), _report(outcomes)
    right = sum(o.facts_right for o in asked)
    cited = sum(o.cites_source for o in asked if not o.refused)
    assert right >= 0.6 * len(asked), _report(outcomes)
    assert cited >= 0.75 * len(asked), _report(outcomes)
    assert sum(o.refused for o in asked) <= 0.2 * len(asked), _report(outcomes)


def test_questions_no_document_answers_are_declined(outcomes: list[Scored]) -> None:
    hidden = [o for o in outcomes if not o.answerable]
    assert sum(o.refused for o in hidden) >= len(hidden) / 3, _report(outcomes)
