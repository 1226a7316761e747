"""Qdrant Edge: the real Qdrant engine, in-process, in one directory. The default store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe
from filelock import FileLock, Timeout

from retrieval._errors import StoreError
from retrieval._store import DENSE, INDEXED_KEYWORDS, EmbeddedChunk, from_payload, to_payload
from retrieval._types import Principal, SearchHit

_SCROLL_PAGE = 1024


class EdgeStore:
    def __init__(self, path: Path, *, dimension: int, lock_timeout_s: float = 60.0) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        # Edge refuses a second open of a directory, and an unflushed first one can then corrupt its
        # own journal (see shared/reference): serialise whole processes on our own lock instead.
        self._lock = FileLock(str(path.parent / f"{path.name}.lock"))
        try:
            self._lock.acquire(timeout=lock_timeout_s)
        except Timeout as exc:
            raise StoreError(
                f"The index at {path} is in use by another Bastion process for over {lock_timeout_s:.0f}s. "
                "Wait for it to finish, or use another BASTION_DATA_DIR."
            ) from exc
        try:
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)}
            )
            if any(path.iterdir()):
                self._shard = qe.EdgeShard.load(str(path), config)
            else:
                self._shard = qe.EdgeShard.create(str(path), config)
                for field in INDEXED_KEYWORDS:
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                    )
                self._shard.flush()
        except Exception as exc:  # the binding raises bare Exception subclasses for engine errors
            self._lock.release()
            raise StoreError(f"Could not open the Qdrant Edge index at {path}: {exc}") from exc

    def upsert(self, items: Sequence[EmbeddedChunk]) -> None:
        if not items:
            return
        points = [
            qe.Point(item.chunk.chunk_id, {DENSE: item.vector}, to_payload(item.chunk)) for item in items
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(points))
        self._shard.flush()

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        self._shard.update(qe.UpdateOperation.delete_points(list(chunk_ids)))
        self._shard.flush()

    def ids_for_source(self, source: str) -> set[str]:
        flt = qe.Filter(must=[qe.FieldCondition("source", match=qe.MatchValue(source))])
        return {str(r.id) for r in self._scroll(flt, with_payload=False)}

    def sources(self) -> set[str]:
        return {str((r.payload or {})["source"]) for r in self._scroll(None, with_payload=["source"])}

    def search(self, vector: list[float], principal: Principal, *, limit: int) -> list[SearchHit]:
        acl = qe.Filter(must=[qe.FieldCondition("acl", match=qe.MatchAny(principal.acl_tokens()))])
        request = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(vector, using=DENSE), filter=acl, with_payload=True
        )
        return [
            SearchHit(chunk=from_payload(p.id, p.payload), score=p.score) for p in self._shard.query(request)
        ]

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True)))

    def close(self) -> None:
        if self._lock.is_locked:
            try:
                self._shard.flush()
                self._shard.close()
            finally:
                self._lock.release()

    def _scroll(self, flt: qe.Filter | None, *, with_payload: bool | list[str]) -> list[qe.Record]:
        records: list[qe.Record] = []
        offset = None
        while True:
            page, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=flt, with_payload=with_payload)
            )
            records += page
            if offset is None:
                return records
