"""The learned effort router, trained for real on MiniLM embeddings of the shipped labelled set."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import AgentError, LabelledStep, LearnedRouter, default_labels, read_labels, train
from retrieval import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def router(embedder: SentenceTransformerEmbedder) -> LearnedRouter:
    return LearnedRouter(train(read_labels(default_labels()), embedder), embedder)


def test_it_generalises_to_steps_it_was_not_trained_on(router: LearnedRouter) -> None:
    assert router.model.heldout_accuracy is not None and router.model.heldout_accuracy >= 0.8
    unseen_easy = ["How many vacation days do new staff get?", "What port does the VPN use?", "ok, thanks"]
    unseen_hard = [
        "Compare the two policies on data deletion and explain which one wins when they disagree.",
        "Why does the cache hit rate fall after the fourth turn, and which modules cause it?",
    ]
    assert [router(q).effort for q in unseen_easy] == ["none"] * 3
    assert [router(q).effort for q in unseen_hard] == ["high"] * 2
    assert router(unseen_hard[0]).reason.startswith("learned router: p(high)=")


def test_a_saved_router_loads_and_decides_the_same(
    router: LearnedRouter, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    router.save(tmp_path / "router.json")
    again = LearnedRouter.load(tmp_path / "router.json", embedder)
    question = "Explain how the retention rules interact with legal holds."
    assert again(question) == router(question)


def test_bad_labels_and_mismatched_models_are_clear_errors(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "effort": "none"}\n{"text": "b", "effort": "medium"}\n')
    with pytest.raises(AgentError, match=r"bad\.jsonl:2"):
        read_labels(bad)
    one_class = tmp_path / "one.jsonl"
    one_class.write_text('{"text": "a", "effort": "none"}\n')
    with pytest.raises(AgentError, match="both efforts"):
        read_labels(one_class)
    model = train(
        [LabelledStep(text="a", effort="none"), LabelledStep(text="b", effort="high")], embedder, heldout=0
    )
    with pytest.raises(AgentError, match="retrain"):
        LearnedRouter(model.model_copy(update={"weights": model.weights[:10]}), embedder)
    with pytest.raises(AgentError, match="bastion router train"):
        LearnedRouter.load(tmp_path / "missing.json", embedder)
