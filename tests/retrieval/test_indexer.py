"""Indexing with the real MiniLM model into the real Qdrant Edge engine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval import EdgeStore, Indexer, LoaderError, Principal, Retriever, SentenceTransformerEmbedder
from tests.conftest import CORPUS

OPERATOR = Principal(user="local")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    opened = EdgeStore(tmp_path / "index", dimension=384)
    yield opened
    opened.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


def test_spans_point_at_the_exact_source_text(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    Indexer(embedder, store).index([corpus], owner="local")
    hits = Retriever(embedder, store).search("How long is CCTV footage kept?", OPERATOR, limit=5)
    assert hits and Path(hits[0].chunk.source).name == "data-retention.md"
    for hit in hits:
        source_text = Path(hit.chunk.source).read_text(encoding="utf-8")
        assert source_text[hit.chunk.start : hit.chunk.end] == hit.chunk.text


def test_reindexing_unchanged_files_writes_nothing(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Indexer(embedder, store).index([corpus], owner="local")
    assert first.documents_indexed == 6 and first.chunks_written == store.count() > 0
    before = {s: store.ids_for_source(s) for s in store.sources()}

    def no_embedding(texts: list[str]) -> list[list[float]]:
        raise AssertionError(f"unchanged files must not be embedded again ({len(texts)} texts)")

    monkeypatch.setattr(embedder, "embed_documents", no_embedding)
    second = Indexer(embedder, store).index([corpus], owner="local")
    assert (second.documents_indexed, second.documents_unchanged, second.chunks_written) == (0, 6, 0)
    assert {s: store.ids_for_source(s) for s in store.sources()} == before


def test_a_changed_file_replaces_exactly_its_old_chunks(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    indexer = Indexer(embedder, store)
    indexer.index([corpus], owner="local")
    target = corpus / "data-retention.md"
    others = {s: store.ids_for_source(s) for s in store.sources() if s != str(target.resolve())}
    old_ids = store.ids_for_source(str(target.resolve()))
    text = target.read_text()
    target.write_text(text.replace("30 days", "31 days", 1))
    report = indexer.index([corpus], owner="local")
    assert report.documents_indexed == 1 and report.documents_unchanged == 5
    new_ids = store.ids_for_source(str(target.resolve()))
    assert 0 < report.chunks_written < len(new_ids), "only the edited chunk is rewritten"
    assert report.chunks_deleted == len(old_ids - new_ids) == report.chunks_written
    assert {s: store.ids_for_source(s) for s in others} == others
    hits = Retriever(embedder, store).search("How long is CCTV footage kept?", OPERATOR, limit=10)
    texts = [h.chunk.text for h in hits if h.chunk.source == str(target.resolve())]
    assert any("31 days" in t for t in texts) and not any("30 days" in t for t in texts)


def test_bad_input_writes_nothing(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    (corpus / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(LoaderError, match="binary"):
        Indexer(embedder, store).index([corpus], owner="local")
    assert store.count() == 0


def test_groups_decide_who_finds_a_document(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    indexer = Indexer(embedder, store)
    indexer.index([corpus / "leave-and-absence.md"], owner="local", groups=frozenset({"hr"}))
    retriever = Retriever(embedder, store)
    assert retriever.search("annual leave days", OPERATOR, limit=3) == []
    hr = Principal(user="alice", groups=frozenset({"hr", "staff"}))
    assert retriever.search("annual leave days", hr, limit=3)
    # Re-indexing with other groups rewrites the points: the old permission must not linger.
    indexer.index([corpus / "leave-and-absence.md"], owner="local", groups=frozenset({"legal"}))
    assert retriever.search("annual leave days", hr, limit=3) == []
