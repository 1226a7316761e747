"""The tuning's own rules: how labels are read and split, and what is refused before any search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals import UsageError, load_labels, tune
from evals._tune import Label, split
from retrieval import EdgeStore, Principal, SentenceTransformerEmbedder


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
