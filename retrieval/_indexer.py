"""Indexing: documents → chunks → embeddings → store, idempotently and crash-safely.

Point ids are derived from (source, position, content hash, ACL), so a file whose chunks are all
stored already is skipped without embedding anything. A changed file is switched over in one store
operation that writes its new chunks and hides its old ones (they are deleted right after): a
reader sees the old version or the new one, never a mix, even if the process dies in between.
Embedding runs over batches that span documents (sentence-transformers sorts each batch by length,
so little compute goes to padding); each document is written, and reported, once its batch is done.
The work is overlapped where a GPU would otherwise wait: a large run chunks in worker processes,
and the next batch is embedded while this one's BM25 vectors are computed and written.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import repeat
from pathlib import Path
from typing import Literal

from retrieval._bm25 import document_vector
from retrieval._chunking import Measure, chunk_text
from retrieval._context import HEADER_TOKENS, context_header, document_title, indexed_text
from retrieval._embed import Embedder, SharesTokenCounter
from retrieval._loaders import MAX_DOCUMENT_CHARS, Document, LoadResult, load_documents
from retrieval._manifest import Manifest, ManifestEntry, now
from retrieval._store import EmbeddedChunk, VectorStore, point_id
from retrieval._types import (
    Chunk,
    Principal,
    document_acl,
)

# Bump when the same file would be cut into other chunks, titles, context headers or point ids: the
# manifest records it with every file, and a file indexed under another version is chunked again.
CHUNKING_VERSION = "1"
PARALLEL_PLANNING_CHARS = 2_000_000
"""Below this much text to chunk (about 2,000 chunks) the run chunks in this process: each worker
imports Bastion's retrieval package and reads the tokenizer first, which a small run would not win
back. A guess still to be measured on the GPU box, where chunking is what the GPU waits for."""


@dataclass(frozen=True)
class IndexEvent:
    kind: Literal["planned", "indexed", "unchanged", "pruned"]
    source: str = ""
    chunks: int = 0  # planned: chunks to embed in all; indexed: chunks written for this document


Progress = Callable[[IndexEvent], None]


@dataclass
class IndexReport:
    documents_indexed: int = 0
    documents_unchanged: int = 0
    documents_pruned: int = 0
    pruned_sources: list[str] = field(default_factory=list)  # what callers must forget elsewhere too
    chunks_written: int = 0
    chunks_deleted: int = 0
    skipped_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    document: Document
    acl: list[str]
    chunks: list[Chunk]
    new: list[Chunk]  # wanted, not stored yet: to embed and write
    hide: list[str]  # live now, not wanted: hidden in the same operation that writes `new`
    purge: list[str]  # already hidden by an interrupted run: only to delete

    @property
    def unchanged(self) -> bool:
        return not (self.new or self.hide or self.purge)


def plan_chunks(
    document: Document, *, acl: list[str], budget: int = 500, measure: Measure = len
) -> list[Chunk]:
    chunks = []
    spans = chunk_text(document.text, budget=budget, measure=measure, sections=document.sections or None)
    title = document_title(document.text, document.source, document.doc_type)
    for position, span in enumerate(spans):
        text = document.text[span.start : span.end]
        sha = hashlib.sha256(text.encode()).hexdigest()
        header = context_header(title, span.title, span.page, span.summary)
        chunks.append(
            Chunk(
                chunk_id=point_id(document.source, position, sha, acl, header),
                source=document.source,
                start=span.start,
                end=span.end,
                text=text,
                title=span.title,
                context=header,
                position=position,
                content_sha256=sha,
                acl=acl,
                doc_type=document.doc_type,
                modified_at=document.modified_at,
                page=span.page,
                media=document.media,
            )
        )
    return chunks


DEFAULT_CHUNK_TOKENS = 128
"""Chunk size in embedding tokens unless a collection's tuning chose another (224 gained nothing on
the CWE suite: docs/evaluation.md)."""


class Indexer:
    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        *,
        manifest: Manifest | None = None,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        batch_size: int = 256,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
        planning_workers: int | None = None,
    ) -> None:
        self.embedder = embedder
        self.planning_workers = planning_workers or min(8, os.cpu_count() or 1)
        self.max_document_chars = max_document_chars
        self.store = store
        self.manifest = manifest
        # Chunks are measured with the embedding model's own tokenizer and, with their header, never
        # exceed what it reads.
        self.budget = min(chunk_tokens, max(embedder.max_tokens - HEADER_TOKENS, embedder.max_tokens // 2))
        self.batch_size = batch_size

    @property
    def plan_key(self) -> str:
        """How this indexer cuts a file into chunks; a file recorded with the same key, bytes and ACL
        would give the same chunks, so it is not chunked again."""
        return f"{CHUNKING_VERSION}:{self.budget}:{self.embedder.name}"

    def index(
        self,
        paths: list[Path],
        *,
        owner: str,
        groups: frozenset[str] = frozenset(),
        prune: bool = False,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index files and folders. Raises LoaderError, before writing anything, if any input is bad."""
        loaded = load_documents(paths, allow_empty_folders=prune, max_chars=self.max_document_chars)
        prune_under = [p for p in paths if p.is_dir()] if prune else []
        return self.index_loaded(
            loaded, owner=owner, groups=groups, prune_under=prune_under, progress=progress
        )

    def index_loaded(
        self,
        loaded: LoadResult,
        *,
        owner: str,
        groups: frozenset[str] = frozenset(),
        prune_under: list[Path] | None = None,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index documents read by `load_documents`, so callers can validate before loading any model.

        With `prune_under`, documents indexed from those folders whose files are gone are removed.
        """
        Principal(user=owner, groups=groups)  # validates the names before anything is written
        emit = progress or (lambda _event: None)
        report = IndexReport(skipped_files=loaded.skipped)
        recorded = {e.source: e for e in self.manifest.entries()} if self.manifest is not None else {}
        kept, to_plan = [], []
        for document in loaded.documents:
            acl = document_acl(owner=owner, groups=document.groups or groups)
            entry = recorded.get(document.source)
            if entry is not None and self._still_indexed(document, acl, entry):
                kept.append((document, entry))
            else:
                to_plan.append((document, acl))
        chunked = self._chunk_all(to_plan)
        plans = [self._plan(d, acl, chunks) for (d, acl), chunks in zip(to_plan, chunked, strict=True)]
        emit(IndexEvent("planned", chunks=sum(len(p.new) for p in plans)))
        for document, entry in kept:
            if self.manifest is not None and entry.modified_at != document.modified_at:
                self.manifest.record(replace(entry, modified_at=document.modified_at))
            report.documents_unchanged += 1
            emit(IndexEvent("unchanged", document.source))
        batches: list[list[_Plan]] = [[]]
        for plan in plans:
            if plan.unchanged:
                self._record(plan)
                report.documents_unchanged += 1
                emit(IndexEvent("unchanged", plan.document.source))
                continue
            if sum(len(p.new) for p in batches[-1]) >= self.batch_size:
                batches.append([])
            batches[-1].append(plan)
        self._write_all([b for b in batches if b], report, emit)
        for folder in prune_under or []:
            self._prune(folder, report, emit)
        return report

    def _still_indexed(self, document: Document, acl: list[str], entry: ManifestEntry) -> bool:
        """Whether the file is indexed as it is now, known without chunking it: the same bytes, ACL
        and chunking as recorded, and the store still holds exactly that many live chunks of it (a
        run cut short, or points deleted behind the manifest's back, are planned and repaired)."""
        if (entry.sha256, entry.acl, entry.doc_type, entry.plan) != (
            document.sha256,
            acl,
            document.doc_type,
            self.plan_key,
        ):
            return False
        stored = self.store.source_points(document.source)
        return len(stored) == entry.chunks and all(stored.values())

    def _chunk_all(self, work: list[tuple[Document, list[str]]]) -> list[list[Chunk]]:
        """Every document's chunks. Chunking counts tokens again and again and holds the GIL, so a
        large run spreads it over worker processes, each reading the tokenizer file itself (a GPU
        embeds faster than one core chunks); a small run, or an embedder that counts only with its
        loaded model, chunks here."""
        counter = self.embedder.token_counter() if isinstance(self.embedder, SharesTokenCounter) else None
        workers = min(self.planning_workers, len(work))
        size = sum(len(document.text) for document, _ in work)
        if counter is None or workers < 2 or size < PARALLEL_PLANNING_CHARS:
            measure = self.embedder.count_tokens
            return [plan_chunks(d, acl=acl, budget=self.budget, measure=measure) for d, acl in work]
        # spawn, not fork: the parent may already run PyTorch's or ONNX Runtime's threads.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(
                pool.map(
                    _chunks_of,
                    work,
                    repeat(self.budget),
                    repeat(counter),
                    chunksize=max(1, len(work) // (8 * workers)),
                )
            )

    def _plan(self, document: Document, acl: list[str], chunks: list[Chunk]) -> _Plan:
        stored = self.store.source_points(document.source)
        live = {pid for pid, is_live in stored.items() if is_live}
        wanted = {c.chunk_id for c in chunks}
        return _Plan(
            document=document,
            acl=acl,
            chunks=chunks,
            new=[c for c in chunks if c.chunk_id not in live],
            hide=sorted(live - wanted),
            purge=sorted(pid for pid, is_live in stored.items() if not is_live),
        )

    def _write_all(self, batches: list[list[_Plan]], report: IndexReport, emit: Progress) -> None:
        """Embed batch k+1 in a worker thread while batch k's BM25 vectors are computed and written.
        The model runs outside the GIL (CUDA kernels, ONNX Runtime, PyTorch's CPU kernels), so on a
        GPU the CPU-side work hides behind it rather than adding to it. Writes stay in this thread and
        in order, so what a crash leaves behind is as before: whole documents, each reported once."""
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-embed") as pool:
            embedding = pool.submit(self._embed, batches[0])
            for k, batch in enumerate(batches):
                vectors = embedding.result()
                if k + 1 < len(batches):
                    embedding = pool.submit(self._embed, batches[k + 1])
                self._write(batch, vectors, report, emit)

    def _embed(self, plans: list[_Plan]) -> list[list[float]]:
        return self.embedder.embed_documents([indexed_text(c) for p in plans for c in p.new])

    def _write(
        self, plans: list[_Plan], dense: list[list[float]], report: IndexReport, emit: Progress
    ) -> None:
        vectors = iter(dense)
        for plan in plans:
            items = [EmbeddedChunk(c, next(vectors), document_vector(indexed_text(c))) for c in plan.new]
            self.store.replace(items, plan.hide)
            self.store.delete(plan.hide + plan.purge)
            self._record(plan)
            report.documents_indexed += 1
            report.chunks_written += len(items)
            report.chunks_deleted += len(plan.hide) + len(plan.purge)
            emit(IndexEvent("indexed", plan.document.source, len(items)))

    def _record(self, plan: _Plan) -> None:
        if self.manifest is not None:
            d = plan.document
            self.manifest.record(
                ManifestEntry(
                    d.source,
                    d.sha256,
                    plan.acl,
                    d.doc_type,
                    len(plan.chunks),
                    d.modified_at,
                    now(),
                    self.plan_key,
                )
            )

    def _prune(self, folder: Path, report: IndexReport, emit: Progress) -> None:
        prefix = str(folder.resolve()).rstrip("/") + "/"
        known = {s for s in self.store.sources() if s.startswith(prefix)}
        if self.manifest is not None:
            known |= {e.source for e in self.manifest.entries(under=prefix)}
        for source in sorted(known):
            if Path(source).exists():
                continue
            self.store.delete_source(source)
            if self.manifest is not None:
                self.manifest.forget(source)
            report.documents_pruned += 1
            report.pruned_sources.append(source)
            emit(IndexEvent("pruned", source))


def _chunks_of(item: tuple[Document, list[str]], budget: int, measure: Measure) -> list[Chunk]:
    """A worker process's share of `Indexer._chunk_all`."""
    document, acl = item
    return plan_chunks(document, acl=acl, budget=budget, measure=measure)
