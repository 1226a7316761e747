"""Qdrant Edge: the real Qdrant engine, in-process, in one directory. The default store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe
from filelock import FileLock, Timeout

from retrieval._errors import StoreError
from retrieval._store import (
    DENSE,
    FLOAT_FIELDS,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SPARSE,
    Condition,
    EmbeddedChunk,
    MatchAny,
    StoreQuery,
    document_conditions,
    from_payload,
    in_document_order,
    placeholder_vector,
    prefetch_depth,
    search_conditions,
    to_payload,
    tombstone_payload,
)
from retrieval._types import Chunk, Principal, SearchFilters, SearchHit

FORMAT = "2"  # bump when the shard's vectors or payload layout change
_SCROLL_PAGE = 1024
_RRF_K = 60


class EdgeStore:
    def __init__(self, path: Path, *, dimension: int, lock_timeout_s: float = 60.0) -> None:
        self.path = path
        self.dimension = dimension
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
            self._shard = self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> qe.EdgeShard:
        marker = self.path.parent / f"{self.path.name}.format"
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self.dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            if any(self.path.iterdir()):
                found = marker.read_text().strip() if marker.exists() else "1"
                if found != FORMAT:
                    raise StoreError(
                        f"The index at {self.path} was written by an older Bastion (format {found}, this one "
                        f"reads {FORMAT}). Delete that folder and index your documents again."
                    )
                return qe.EdgeShard.load(str(self.path), config)
            shard = qe.EdgeShard.create(str(self.path), config)
            for fields, schema in (
                (KEYWORD_FIELDS, qe.PayloadSchemaType.Keyword),
                (INTEGER_FIELDS, qe.PayloadSchemaType.Integer),
                (FLOAT_FIELDS, qe.PayloadSchemaType.Float),
            ):
                for field in fields:
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
            shard.flush()
            marker.write_text(FORMAT)
            return shard
        except StoreError:
            raise
        except Exception as exc:  # the binding raises bare Exception subclasses for engine errors
            raise StoreError(f"Could not open the Qdrant Edge index at {self.path}: {exc}") from exc

    def replace(self, items: Sequence[EmbeddedChunk], hide: Sequence[str]) -> None:
        if not items and not hide:
            return
        points = [
            qe.Point(
                i.chunk.chunk_id,
                {DENSE: i.dense, SPARSE: qe.SparseVector(i.sparse.indices, i.sparse.values)},
                to_payload(i.chunk),
            )
            for i in items
        ]
        if hide:
            source = items[0].chunk.source if items else self._source_of(hide[0])
            placeholder: dict[str, list[float] | qe.SparseVector | list[list[float]]] = {
                DENSE: placeholder_vector(self.dimension),
                SPARSE: qe.SparseVector([], []),
            }
            points += [qe.Point(pid, placeholder, tombstone_payload(source)) for pid in hide]
        # One operation, one WAL record: after a crash it replays whole or not at all.
        self._shard.update(qe.UpdateOperation.upsert_points(points))
        self._shard.flush()

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        self._shard.update(qe.UpdateOperation.delete_points(list(chunk_ids)))
        self._shard.flush()

    def delete_source(self, source: str) -> None:
        self._shard.update(
            qe.UpdateOperation.delete_points_by_filter(_filter([MatchAny("source", [source])]))
        )
        self._shard.flush()

    def source_points(self, source: str) -> dict[str, bool]:
        records = self._scroll(_filter([MatchAny("source", [source])]), with_payload=["live"])
        return {str(r.id): (r.payload or {}).get("live") == 1 for r in records}

    def sources(self) -> set[str]:
        records = self._scroll(_filter([MatchAny("live", [1])]), with_payload=["source"])
        return {str((r.payload or {})["source"]) for r in records}

    def readable(self, chunk_ids: Sequence[str], principal: Principal) -> set[str]:
        if not chunk_ids:
            return set()
        flt = _filter(search_conditions(principal, None), ids=chunk_ids)
        return {str(r.id) for r in self._scroll(flt, with_payload=False)}

    def document(
        self, source: str, principal: Principal, *, limit: int, positions: tuple[int, int] | None = None
    ) -> list[Chunk] | None:
        flt = _filter(document_conditions(source, principal, positions))
        records = self._scroll(flt, with_payload=True, limit=limit + 1)
        return in_document_order([(r.id, r.payload) for r in records], limit)

    def search(
        self, query: StoreQuery, principal: Principal, *, limit: int, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        flt = _filter(search_conditions(principal, filters))
        stages = []
        if query.dense is not None:
            stages.append(qe.Query.Nearest(query.dense, using=DENSE))
        if query.sparse is not None and query.sparse.indices:
            stages.append(
                qe.Query.Nearest(qe.SparseVector(query.sparse.indices, query.sparse.values), using=SPARSE)
            )
        if not stages:
            return []
        if len(stages) == 1:
            request = qe.QueryRequest(limit=limit, query=stages[0], filter=flt, with_payload=True)
        else:
            # The ACL goes into every prefetch as well as the fused query: a candidate the principal
            # may not read must never take a place in either ranked list.
            depth = prefetch_depth(limit)
            fusion = qe.Fusion.Dbsf() if query.fusion == "dbsf" else qe.Fusion.Rrf(k=_RRF_K)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[qe.Prefetch(limit=depth, query=stage, filter=flt) for stage in stages],
                query=fusion,  # type: ignore[arg-type]  # the 0.9.0 stubs omit Rrf and Dbsf
                filter=flt,
                with_payload=True,
            )
        return [
            SearchHit(chunk=from_payload(p.id, p.payload), score=p.score) for p in self._shard.query(request)
        ]

    def count(self) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True, filter=_filter([MatchAny("live", [1])]))))

    def optimize(self) -> None:
        """Build the HNSW index (Edge has no background optimiser); call after large ingests."""
        self._shard.optimize()
        self._optimized_marker.write_text(str(self.count()))

    def unoptimized(self) -> int:
        # Edge's own counters cannot tell: sparse vectors count as indexed from the start. So the
        # live count at the last build is kept beside the shard.
        try:
            built = int(self._optimized_marker.read_text())
        except (OSError, ValueError):
            built = 0
        return max(0, self.count() - built)

    @property
    def _optimized_marker(self) -> Path:
        return self.path.parent / f"{self.path.name}.optimized"

    def close(self) -> None:
        if self._lock.is_locked:
            try:
                self._shard.flush()
                self._shard.close()
            finally:
                self._lock.release()

    def _source_of(self, point_id: str) -> str:
        records = self._shard.retrieve([point_id], ["source"], False)
        if not records:
            raise StoreError(f"point {point_id} to hide does not exist")
        return str((records[0].payload or {})["source"])

    def _scroll(
        self, flt: qe.Filter | None, *, with_payload: bool | list[str], limit: int | None = None
    ) -> list[qe.Record]:
        """Every record `flt` matches, or the first `limit` of them (in the engine's id order)."""
        records: list[qe.Record] = []
        offset = None
        while True:
            page_size = _SCROLL_PAGE if limit is None else min(_SCROLL_PAGE, limit - len(records))
            page, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=page_size, filter=flt, with_payload=with_payload)
            )
            records += page
            if offset is None or (limit is not None and len(records) >= limit):
                return records


def _filter(conditions: list[Condition], *, ids: Sequence[str] = ()) -> qe.Filter:
    must: list[qe.ConditionType] = [qe.HasIdCondition(set(ids))] if ids else []
    for c in conditions:
        if isinstance(c, MatchAny):
            must.append(qe.FieldCondition(c.key, match=qe.MatchAny(c.values)))
        else:
            must.append(qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte)))
    return qe.Filter(must=must)
