"""The tuning's own rules: how labels are read and split, and what is refused before any search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals import UsageError, load_labels, tune
from evals._tune import RECHUNK_MARGIN, Label, choose, split
from retrieval import EdgeStore, MeasuredChoice, Principal, SentenceTransformerEmbedder


def _write(folder: Path, lines: list[str]) -> Path:
    path = folder / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_relative_paths_are_read_from_the_labels_folder(tmp_path: Path) -> None:
    line = json.dumps({"question": "q?", "relevant": ["docs/a.md", "/abs/b.md"]})
    (label,) = load_labels(_write(tmp_path, ["", line, ""]))
    assert label.relevant == [str((tmp_path / "docs" / "a.md").resolve()), "/abs/b.md"]


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ('{"question": ""}', "labels.jsonl:2: question"),
        ('{"question": "q?", "relevant": []}', "labels.jsonl:2: relevant"),
        ('{"question": "q?", "relevant": ["a.md"], "answer": "x"}', "labels.jsonl:2: answer"),
        ("not json", "labels.jsonl:2"),
    ],
)
def test_a_bad_line_is_named_by_its_number(tmp_path: Path, bad: str, shown: str) -> None:
    good = json.dumps({"question": "q?", "relevant": ["a.md"]})
    with pytest.raises(UsageError, match=shown.replace(".", r"\.")):
        load_labels(_write(tmp_path, [good, bad]))


def test_an_unreadable_labels_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the labels"):
        load_labels(tmp_path / "missing.jsonl")


@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=40, unique=True), st.randoms())
def test_the_split_is_balanced_and_ignores_the_files_order(questions: list[str], rng: object) -> None:
    labels = [Label(question=q, relevant=["a.md"]) for q in questions]
    tune_half, check_half = split(labels)
    assert abs(len(tune_half) - len(check_half)) <= 1
    assert {lb.question for lb in tune_half} | {lb.question for lb in check_half} == set(questions)
    shuffled = list(labels)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert split(shuffled) == (tune_half, check_half)


def test_too_few_labels_or_unindexed_files_are_refused_before_any_search(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=embedder.dimension)
    try:
        few = [Label(question=f"q{n}?", relevant=["/docs/a.md"]) for n in range(3)]
        with pytest.raises(UsageError, match="too few"):
            tune(embedder, {128: store}, few, Principal(user="u"), indexed=["/docs/a.md"])
        enough = [Label(question=f"q{n}?", relevant=[f"/docs/{n}.md"]) for n in range(12)]
        with pytest.raises(UsageError, match=r"not indexed: /docs/0\.md.* and 7 more"):
            tune(embedder, {128: store}, enough, Principal(user="u"), indexed=["/docs/a.md"])
    finally:
        store.close()


def _m(size: int, mode: str, tune_ndcg: float, check_ndcg: float) -> MeasuredChoice:
    fields = {"chunk_tokens": size, "mode": mode, "fusion": "dbsf"}
    return MeasuredChoice.model_validate({**fields, "tune_ndcg": tune_ndcg, "check_ndcg": check_ndcg})


def test_the_choice_keeps_the_default_unless_the_winner_holds_and_a_new_size_must_win_clearly() -> None:
    default = _m(128, "hybrid", 0.40, 0.40)
    # The best on the choosing half that also holds on the checking half is kept.
    assert choose([default, _m(128, "dense", 0.45, 0.41)]).mode == "dense"
    # One that loses on the checking half is a lucky half: the default stays.
    assert choose([default, _m(128, "dense", 0.45, 0.39)]) is default
    # Another chunk size means re-indexing everything: a tie is not enough…
    tie = [default, _m(128, "dense", 0.42, 0.405), _m(256, "hybrid", 0.46, 0.40 + RECHUNK_MARGIN / 2)]
    assert (choose(tie).chunk_tokens, choose(tie).mode) == (128, "dense")  # the best at today's size
    # …a clear win is.
    clear = [default, _m(256, "hybrid", 0.46, 0.40 + 2 * RECHUNK_MARGIN)]
    assert (choose(clear).chunk_tokens, choose(clear).mode) == (256, "hybrid")
