"""Indexing with the real MiniLM model into the real Qdrant Edge engine."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from retrieval import (
    EdgeStore,
    Indexer,
    LoaderError,
    Manifest,
    Principal,
    Retriever,
    SentenceTransformerEmbedder,
)
from retrieval import _indexer as indexer_module
from tests.conftest import CORPUS

OPERATOR = Principal(user="local")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    opened = EdgeStore(tmp_path / "index", dimension=384)
    yield opened
    opened.close()


@pytest.fixture
def manifest(tmp_path: Path) -> Iterator[Manifest]:
    opened = Manifest(tmp_path / "manifest.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


def _live(store: EdgeStore) -> dict[str, set[str]]:
    return {s: {p for p, live in store.source_points(s).items() if live} for s in store.sources()}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_spans_point_at_the_exact_source_text(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path, mode: str
) -> None:
    Indexer(embedder, store).index([corpus], owner="local")
    hits = Retriever(embedder, store).search("How long is CCTV footage kept?", OPERATOR, limit=5, mode=mode)  # type: ignore[arg-type]
    assert hits and any(Path(h.chunk.source).name == "data-retention.md" for h in hits[:2])
    for hit in hits:
        source_text = Path(hit.chunk.source).read_text(encoding="utf-8")
        assert source_text[hit.chunk.start : hit.chunk.end] == hit.chunk.text


def test_hybrid_finds_exact_terms_that_dense_misses(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    Indexer(embedder, store).index([corpus], owner="local")
    retriever = Retriever(embedder, store)
    for mode in ("sparse", "hybrid"):
        top = retriever.search("CCTV footage", OPERATOR, limit=3, mode=mode)  # type: ignore[arg-type]
        assert any("CCTV footage" in h.chunk.text for h in top), mode


def test_reindexing_unchanged_files_writes_nothing(
    embedder: SentenceTransformerEmbedder,
    store: EdgeStore,
    manifest: Manifest,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = Indexer(embedder, store, manifest=manifest).index([corpus], owner="local")
    assert first.documents_indexed == 6 and first.chunks_written == store.count() > 0
    assert len(list(manifest.entries())) == 6
    before = _live(store)

    def no_embedding(texts: list[str]) -> list[list[float]]:
        raise AssertionError(f"unchanged files must not be embedded again ({len(texts)} texts)")

    monkeypatch.setattr(embedder, "embed_documents", no_embedding)
    second = Indexer(embedder, store, manifest=manifest).index([corpus], owner="local")
    assert (second.documents_indexed, second.documents_unchanged, second.chunks_written) == (0, 6, 0)
    assert _live(store) == before


def test_an_unchanged_file_is_not_chunked_again_unless_its_record_or_the_chunking_says_so(
    embedder: SentenceTransformerEmbedder,
    store: EdgeStore,
    manifest: Manifest,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Indexer(embedder, store, manifest=manifest).index([corpus], owner="local")
    before = _live(store)
    chunked: list[str] = []
    real = indexer_module.plan_chunks

    def counting(document: Any, **kwargs: Any) -> Any:
        chunked.append(Path(document.source).name)
        return real(document, **kwargs)

    monkeypatch.setattr(indexer_module, "plan_chunks", counting)

    def again(**kwargs: Any) -> tuple[int, int]:
        chunked.clear()
        report = Indexer(embedder, store, manifest=manifest, **kwargs).index([corpus], owner="local")
        return report.documents_unchanged, report.documents_indexed

    # Same bytes, ACL and chunking: known unchanged from the manifest, nothing read by the tokenizer.
    target = corpus / "data-retention.md"
    os.utime(target, (1_000_000, 1_000_000))  # touched, not changed
    assert again() == (6, 0) and chunked == []
    assert _live(store) == before
    source = str(target.resolve())
    assert next(e for e in manifest.entries() if e.source == source).modified_at == 1_000_000
    # Points gone behind the manifest's back (a damaged or replaced index): planned and repaired.
    store.delete(sorted(before[source])[:1])
    assert again() == (5, 1) and chunked == ["data-retention.md"]
    assert _live(store) == before
    # Another ACL, or another chunk size, chunks every file again.
    chunked.clear()
    report = Indexer(embedder, store, manifest=manifest).index(
        [corpus], owner="local", groups=frozenset({"hr"})
    )
    assert report.documents_indexed == 6 and len(chunked) == 6
    assert again(chunk_tokens=64)[1] == 6 and len(chunked) == 6


def test_a_manifest_from_before_plans_were_recorded_is_migrated_and_planned_once(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, tmp_path: Path, corpus: Path
) -> None:
    path = tmp_path / "old-manifest.sqlite"
    with sqlite3.connect(path) as db:  # the first schema, as a Bastion before this change wrote it
        db.execute(
            "CREATE TABLE documents (source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, acl TEXT NOT NULL, "
            "doc_type TEXT NOT NULL, chunks INTEGER NOT NULL, modified_at REAL NOT NULL, "
            "indexed_at REAL NOT NULL)"
        )
        db.execute("PRAGMA user_version = 1")
    manifest = Manifest(path)
    try:
        Indexer(embedder, store, manifest=manifest).index([corpus], owner="local")
        manifest.record(replace(next(manifest.entries()), plan=""))  # a row kept from before
        report = Indexer(embedder, store, manifest=manifest).index([corpus], owner="local")
        assert (report.documents_unchanged, report.chunks_written) == (6, 0)
        assert all(e.plan for e in manifest.entries()), "planned once, then recorded with its plan"
    finally:
        manifest.close()


def test_a_changed_file_replaces_exactly_its_old_chunks(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    indexer = Indexer(embedder, store)
    indexer.index([corpus], owner="local")
    target = corpus / "data-retention.md"
    source = str(target.resolve())
    others = {s: ids for s, ids in _live(store).items() if s != source}
    old_ids = _live(store)[source]
    target.write_text(target.read_text().replace("30 days", "31 days", 1))
    report = indexer.index([corpus], owner="local")
    assert report.documents_indexed == 1 and report.documents_unchanged == 5
    new_ids = _live(store)[source]
    assert 0 < report.chunks_written < len(new_ids), "only the edited chunk is rewritten"
    assert report.chunks_deleted == len(old_ids - new_ids) == report.chunks_written
    assert store.source_points(source) == dict.fromkeys(new_ids, True), "no hidden leftovers"
    assert {s: ids for s, ids in _live(store).items() if s != source} == others
    texts = [h.chunk.text for h in Retriever(embedder, store).search("CCTV footage", OPERATOR, limit=10)]
    assert any("31 days" in t for t in texts) and not any("30 days" in t and "CCTV" in t for t in texts)


def test_prune_removes_documents_whose_files_are_gone(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, manifest: Manifest, corpus: Path
) -> None:
    indexer = Indexer(embedder, store, manifest=manifest)
    indexer.index([corpus], owner="local")
    (corpus / "acceptable-use.md").unlink()
    kept = indexer.index([corpus], owner="local")
    assert kept.documents_pruned == 0 and len(store.sources()) == 6, "without --prune nothing is removed"
    pruned = indexer.index([corpus], owner="local", prune=True)
    assert pruned.documents_pruned == 1
    assert {Path(s).name for s in store.sources()} == {p.name for p in corpus.iterdir()}
    assert {Path(e.source).name for e in manifest.entries()} == {p.name for p in corpus.iterdir()}
    for f in corpus.iterdir():
        f.unlink()
    assert indexer.index([corpus], owner="local", prune=True).documents_pruned == 5
    assert store.count() == 0


def test_embedding_runs_in_batches_across_documents(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = embedder.embed_documents

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "embed_documents", counting)
    report = Indexer(embedder, store, batch_size=40).index([corpus], owner="local")
    assert sum(calls) == report.chunks_written
    assert len(calls) < report.documents_indexed, "chunks of several documents share one encode call"
    assert all(n >= 40 for n in calls[:-1])


def test_the_next_batch_is_embedded_while_this_one_is_written(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model (a GPU's, or ONNX Runtime's) runs beside the CPU-side writes rather than between
    them. The first write waits until the second batch's embedding has begun: in a pipeline that
    embedded and wrote in turn it would wait in vain."""
    second_started = threading.Event()
    waited: list[bool] = []
    calls: list[int] = []
    real_embed, real_replace = embedder.embed_documents, store.replace

    def embedding(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        if len(calls) == 2:
            second_started.set()
        return real_embed(texts)

    def replacing(items: Any, hide: Any) -> None:
        if not waited:
            waited.append(second_started.wait(timeout=60))
        real_replace(items, hide)

    monkeypatch.setattr(embedder, "embed_documents", embedding)
    monkeypatch.setattr(store, "replace", replacing)
    report = Indexer(embedder, store, batch_size=40).index([corpus], owner="local")
    assert len(calls) >= 2 and waited == [True]
    assert report.chunks_written == sum(calls) == store.count()


def test_chunking_in_worker_processes_gives_the_same_chunks_as_in_this_one(
    embedder: SentenceTransformerEmbedder, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point ids come from the chunks: a run chunked by the pool must write exactly the points a
    run chunked here does, or every re-index would re-embed everything."""
    pools: list[int] = []
    real_pool = indexer_module.ProcessPoolExecutor

    def counted_pool(workers: int, **kwargs: Any) -> Any:
        pools.append(workers)
        return real_pool(workers, **kwargs)

    monkeypatch.setattr(indexer_module, "ProcessPoolExecutor", counted_pool)
    monkeypatch.setattr(indexer_module, "PARALLEL_PLANNING_CHARS", 0)
    stores = {}
    for workers in (1, 2):
        store = EdgeStore(tmp_path / f"index-{workers}", dimension=384)
        Indexer(embedder, store, batch_size=40, planning_workers=workers).index([corpus], owner="local")
        stores[workers] = {source: sorted(store.source_points(source)) for source in sorted(store.sources())}
        store.close()
    assert pools == [2], "only the second run chunks in worker processes"
    assert stores[2] == stores[1] and len(stores[1]) > 2


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


def test_query_embeddings_are_cached(
    embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = embedder.embed_query("how long is cctv kept")
    monkeypatch.setattr(embedder, "embed_documents", lambda texts: pytest.fail("query was embedded again"))
    assert embedder.embed_query("how long is cctv kept") == first


def test_every_format_is_indexed_and_found_with_its_structure(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, tmp_path: Path
) -> None:
    from tests.retrieval.fixtures import HTML, PYTHON, make_docx, make_pdf, make_png

    folder = tmp_path / "mixed"
    folder.mkdir()
    make_pdf(
        folder / "retention.pdf",
        [["Claims files are kept for 12 years."], ["Daily backups are kept 35 days."]],
    )
    make_docx(folder / "travel.docx")
    (folder / "visitors.html").write_text(HTML)
    (folder / "vault.py").write_text(PYTHON)
    make_png(folder / "floor-plan.png", 40, 30)
    report = Indexer(embedder, store).index([folder], owner="local")
    assert report.documents_indexed == 5
    retriever = Retriever(embedder, store)

    def top(query: str):  # type: ignore[no-untyped-def]
        return retriever.search(query, OPERATOR, limit=1)[0].chunk

    backups = top("How long are daily backups kept?")
    assert (Path(backups.source).name, backups.page, backups.doc_type) == ("retention.pdf", 2, "pdf")
    assert top("daily allowance abroad per diem").title == "Travel Policy > Per Diem"
    assert top("lost badges cost").doc_type == "html"
    assert top("lock the password vault").title == "class Vault"
    image = top("floor plan")
    assert image.doc_type == "image"
    assert {k: image.media[k] for k in ("width", "height", "format")} == {
        "width": 40,
        "height": 30,
        "format": "PNG",
    }
    assert image.media["sha256"] == hashlib.sha256(Path(image.source).read_bytes()).hexdigest()


def test_a_groups_file_beside_a_document_sets_who_may_read_it(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    (corpus / "leave-and-absence.md.groups").write_text("hr, payroll\n")
    report = Indexer(embedder, store).index([corpus], owner="local", groups=frozenset({"staff"}))
    assert report.documents_indexed == 6 and not report.skipped_files
    retriever = Retriever(embedder, store)
    staff = Principal(user="s", groups=frozenset({"staff"}))
    payroll = Principal(user="p", groups=frozenset({"payroll"}))
    leave = "How many days of annual leave do employees get?"
    assert all(
        Path(h.chunk.source).name != "leave-and-absence.md" for h in retriever.search(leave, staff, limit=10)
    )
    assert {Path(h.chunk.source).name for h in retriever.search(leave, payroll, limit=10)} == {
        "leave-and-absence.md"
    }


def test_a_bad_groups_file_is_reported(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    (corpus / "acceptable-use.md.groups").write_text("hr, not a group!")
    with pytest.raises(LoaderError, match=r"groups file acceptable-use\.md\.groups"):
        Indexer(embedder, store).index([corpus], owner="local")
    assert store.count() == 0


def test_documents_rank_by_their_best_passage_plus_a_decayed_share_of_the_rest() -> None:
    from retrieval._retriever import DOCUMENT_DECAY, document_score

    assert document_score([0.9]) == 0.9
    assert document_score([0.5, 0.9]) == pytest.approx(0.9 + 0.5 * DOCUMENT_DECAY)
    # Two good passages beat one slightly better one; many weak ones cannot beat a strong one.
    assert document_score([0.8, 0.8]) > document_score([0.85])
    assert document_score([0.3] * 50) < document_score([0.5])


def test_search_by_document_gives_each_document_once_with_its_best_exact_passages(
    embedder: SentenceTransformerEmbedder, store: EdgeStore, corpus: Path
) -> None:
    Indexer(embedder, store).index([corpus], owner="local")
    retriever = Retriever(embedder, store)
    documents = retriever.search_documents("How long is CCTV footage kept?", OPERATOR, limit=4, passages=2)
    sources = [d.source for d in documents]
    assert len(sources) == len(set(sources)) == 4
    assert Path(sources[0]).name == "data-retention.md"
    assert [d.score for d in documents] == sorted((d.score for d in documents), reverse=True)
    for document in documents:
        assert 1 <= len(document.passages) <= 2
        for hit in document.passages:
            assert hit.chunk.source == document.source
            assert Path(document.source).read_text()[hit.chunk.start : hit.chunk.end] == hit.chunk.text
