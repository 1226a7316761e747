"""`bastion eval tune`: the search choices measured on labelled questions, the best kept beside the
index, and `bastion search` using it without a flag (while an explicit setting still wins). Real CLI,
real embedding model, real Qdrant Edge index of the sample policies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evals._answers import policy_questions
from evals._tune import choose
from retrieval import MeasuredChoice
from tests.bastion.test_cli import CORPUS, bastion


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("tune-data")
    done = bastion("index", str(CORPUS), data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return data_dir


def _labels(folder: Path, lines: list[str]) -> Path:
    path = folder / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _policy_labels(folder: Path) -> Path:
    """The answerable sample questions, each labelled with the policy file that answers it, by paths
    relative to the labels file (as an operator would write them)."""
    relative = os.path.relpath(CORPUS, folder)
    lines = [
        json.dumps({"question": q.question, "relevant": [f"{relative}/{q.source}"]})
        for q in policy_questions()
        if q.answerable and q.source
    ]
    return _labels(folder, lines)


def _profile(data_dir: Path) -> Path:
    return data_dir / "index" / "search-bastion.json"


def _search_mode(data_dir: Path, env: dict[str, str] | None = None) -> str:
    done = bastion("search", "How long is CCTV footage kept?", "--json", data_dir=data_dir, env=env)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["mode"])


def test_tune_measures_every_choice_and_keeps_the_best(indexed: Path, tmp_path: Path) -> None:
    labels = _policy_labels(tmp_path)
    dry = bastion("eval", "tune", str(labels), "--dry-run", "--json", data_dir=indexed)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["saved"] is None and not _profile(indexed).exists()

    done = bastion("eval", "tune", str(labels), "--json", data_dir=indexed)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    profile = payload["profile"]
    assert payload["saved"] == str(_profile(indexed))
    assert json.loads(_profile(indexed).read_text()) == profile
    assert profile["labels"] == len(labels.read_text().splitlines()) >= 10
    measured = profile["measured"]
    assert [(m["mode"], m["fusion"]) for m in measured] == [
        ("hybrid", "dbsf"),
        ("hybrid", "rrf"),
        ("dense", "dbsf"),
        ("sparse", "dbsf"),
    ]
    # Six short policies: the right file should lead for most questions in every mode.
    assert all(0.5 < m["tune_ndcg"] <= 1 and 0.5 < m["check_ndcg"] <= 1 for m in measured)
    chosen = next(m for m in measured if (m["mode"], m["fusion"]) == (profile["mode"], profile["fusion"]))
    best = max(m["tune_ndcg"] for m in measured)
    # The best on the choosing half, unless it did worse than the default on the other half.
    assert chosen["tune_ndcg"] == best or (
        chosen is measured[0]
        and any(m["tune_ndcg"] == best and m["check_ndcg"] < chosen["check_ndcg"] for m in measured)
    )
    assert _search_mode(indexed) == profile["mode"]


def test_search_uses_the_stored_profile_unless_a_setting_says_otherwise(indexed: Path) -> None:
    stored = {"mode": "sparse", "fusion": "rrf", "labels": 12}
    _profile(indexed).write_text(json.dumps(stored), encoding="utf-8")
    assert _search_mode(indexed) == "sparse"
    assert _search_mode(indexed, {"BASTION_RETRIEVAL_MODE": "dense"}) == "dense"
    _profile(indexed).write_text('{"mode": "fastest"}', encoding="utf-8")
    broken = bastion("search", "CCTV", data_dir=indexed)
    assert (
        broken.returncode == 1 and "search profile" in broken.stderr and "bastion eval tune" in broken.stderr
    )
    _profile(indexed).unlink()
    assert _search_mode(indexed) == "hybrid"


def test_tune_refuses_a_collection_not_yet_chunked_as_the_settings_say(indexed: Path, tmp_path: Path) -> None:
    """A kept chunk size applies at the next `bastion index`; until then the collection's chunks are
    not what tune would label them, so measuring them as such would store a wrong comparison."""
    _profile(indexed).write_text(json.dumps({"chunk_tokens": 48}), encoding="utf-8")
    try:
        done = bastion("eval", "tune", str(_policy_labels(tmp_path)), "--dry-run", data_dir=indexed)
    finally:
        _profile(indexed).unlink()
    assert done.returncode == 2, done.stderr
    assert "chunked otherwise" in done.stderr and "bastion index" in done.stderr


def test_labels_naming_unindexed_files_are_a_usage_error(indexed: Path, tmp_path: Path) -> None:
    lines = [
        json.dumps({"question": f"Where is CCTV footage kept? ({n})", "relevant": ["nowhere.md"]})
        for n in range(10)
    ]
    done = bastion("eval", "tune", str(_labels(tmp_path, lines)), data_dir=indexed)
    assert done.returncode == 2, done.stderr
    assert "not indexed" in done.stderr and "nowhere.md" in done.stderr
    assert not _profile(indexed).exists()


def test_tune_compares_chunk_sizes_in_a_scratch_index_without_touching_the_collection(
    indexed: Path, tmp_path: Path
) -> None:
    labels = _policy_labels(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = bastion(
        "eval", "tune", str(labels), "--chunk-tokens", "48", "--dry-run", "--json",
        data_dir=indexed, env={"TMPDIR": str(scratch)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)["profile"]["measured"]
    profile = json.loads(done.stdout)["profile"]
    assert [m["chunk_tokens"] for m in measured] == [128] * 4 + [48] * 4, "the collection's size first"
    # 48-token chunks are a different index: at least one choice must rank differently.
    assert {(m["tune_ndcg"], m["check_ndcg"]) for m in measured[4:]} != {
        (m["tune_ndcg"], m["check_ndcg"]) for m in measured[:4]
    }
    expected = choose([MeasuredChoice.model_validate(m) for m in measured])  # its rules: tests/evals
    assert (profile["chunk_tokens"], profile["mode"], profile["fusion"]) == (
        expected.chunk_tokens,
        expected.mode,
        expected.fusion,
    )
    # The scratch index is gone and the collection is as it was: nothing to re-index.
    assert not list(scratch.glob("bastion-tune-*"))
    again = bastion("index", str(CORPUS), "--json", data_dir=indexed)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["documents_indexed"], report["documents_unchanged"]) == (0, 6)


def test_index_chunks_at_the_stored_size_unless_a_setting_says_otherwise(tmp_path: Path) -> None:
    def chunks(data_dir: Path, env: dict[str, str] | None = None) -> int:
        done = bastion("index", str(CORPUS), "--json", data_dir=data_dir, env=env)
        assert done.returncode == 0, done.stderr
        return int(json.loads(done.stdout)["chunks_written"])

    default = chunks(tmp_path / "default")
    for name, env in (("tuned", None), ("overridden", {"BASTION_RETRIEVAL_CHUNK_TOKENS": "128"})):
        data_dir = tmp_path / name
        _profile(data_dir).parent.mkdir(parents=True)
        _profile(data_dir).write_text(json.dumps({"chunk_tokens": 48}), encoding="utf-8")
        written = chunks(data_dir, env)
        assert (written > default) if name == "tuned" else (written == default), name
