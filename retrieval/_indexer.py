"""Indexing: documents → chunks → embeddings → store, idempotently.

Point ids are derived from (source, position, content hash, ACL), so a file whose chunks are all
already stored is skipped without embedding anything, and a changed file gets exactly its new
chunks written and its old ones deleted: new points land before old ones go, so a reader never
sees the document missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval._chunking import chunk_text
from retrieval._embed import Embedder
from retrieval._loaders import Document, LoadResult, load_documents
from retrieval._store import EmbeddedChunk, VectorStore, point_id
from retrieval._types import Chunk, Principal, SearchHit, document_acl

Progress = Callable[[int], None]  # called with the number of documents just finished


@dataclass
class IndexReport:
    documents_indexed: int = 0
    documents_unchanged: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    skipped_files: list[str] = field(default_factory=list)


def plan_chunks(document: Document, *, acl: list[str], max_chars: int) -> list[Chunk]:
    chunks = []
    for position, span in enumerate(chunk_text(document.text, max_chars=max_chars)):
        text = document.text[span.start : span.end]
        sha = hashlib.sha256(text.encode()).hexdigest()
        chunks.append(
            Chunk(
                chunk_id=point_id(document.source, position, sha, acl),
                source=document.source,
                start=span.start,
                end=span.end,
                text=text,
                title=span.title,
                position=position,
                content_sha256=sha,
                acl=acl,
            )
        )
    return chunks


class Indexer:
    def __init__(self, embedder: Embedder, store: VectorStore, *, max_chars: int = 500) -> None:
        self.embedder = embedder
        self.store = store
        self.max_chars = max_chars

    def index(
        self,
        paths: list[Path],
        *,
        owner: str,
        groups: frozenset[str] = frozenset(),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index files and folders. Raises LoaderError, before writing anything, if any input is bad."""
        return self.index_loaded(load_documents(paths), owner=owner, groups=groups, progress=progress)

    def index_loaded(
        self,
        loaded: LoadResult,
        *,
        owner: str,
        groups: frozenset[str] = frozenset(),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index documents read by `load_documents`, so callers can validate before loading any model."""
        Principal(user=owner, groups=groups)  # validates the names before anything is written
        acl = document_acl(owner=owner, groups=groups)
        report = IndexReport(skipped_files=loaded.skipped)
        for document in loaded.documents:
            chunks = plan_chunks(document, acl=acl, max_chars=self.max_chars)
            existing = self.store.ids_for_source(document.source)
            wanted = {c.chunk_id for c in chunks}
            new = [c for c in chunks if c.chunk_id not in existing]
            stale = sorted(existing - wanted)
            if not new and not stale:
                report.documents_unchanged += 1
            else:
                vectors = self.embedder.embed_documents([c.text for c in new])
                self.store.upsert([EmbeddedChunk(c, v) for c, v in zip(new, vectors, strict=True)])
                self.store.delete(stale)
                report.documents_indexed += 1
                report.chunks_written += len(new)
                report.chunks_deleted += len(stale)
            if progress:
                progress(1)
        return report


class Retriever:
    """Similarity search for one principal at a time; the ACL filter runs inside the store's query."""

    def __init__(self, embedder: Embedder, store: VectorStore) -> None:
        self.embedder = embedder
        self.store = store

    def search(self, query: str, principal: Principal, *, limit: int = 5) -> list[SearchHit]:
        if not query.strip():
            raise ValueError("the search query is empty")
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        return self.store.search(self.embedder.embed_query(query), principal, limit=limit)
