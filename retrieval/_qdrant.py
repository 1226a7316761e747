"""qdrant-client: `:memory:` in tests and light use, a Qdrant server or cluster by URL in production."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc  # type: ignore[import-untyped]
import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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

_SCROLL_PAGE = 1024
_RRF_K = 60
T = TypeVar("T")


class QdrantStore:
    def __init__(
        self, client: QdrantClient, *, collection: str, dimension: int, where: str = "Qdrant"
    ) -> None:
        self._client = client
        self.collection = collection
        self.dimension = dimension
        self.where = where
        self._call(self._ensure_collection)

    @classmethod
    def in_memory(cls, *, dimension: int, collection: str = "bastion") -> QdrantStore:
        return cls(
            QdrantClient(location=":memory:"), collection=collection, dimension=dimension, where=":memory:"
        )

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        dimension: int,
        collection: str,
        api_key: str | None = None,
        prefer_grpc: bool = False,
    ) -> QdrantStore:
        # The version check only warns (and, with the server down, before our own clearer error).
        client = QdrantClient(
            url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=30, check_compatibility=False
        )
        return cls(client, collection=collection, dimension=dimension, where=url)

    def _ensure_collection(self) -> None:
        if self._client.collection_exists(self.collection):
            return
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            # Local mode says payload indexes have no effect there; a server uses them.
            warnings.simplefilter("ignore", UserWarning)
            for fields, schema in (
                (KEYWORD_FIELDS, models.PayloadSchemaType.KEYWORD),
                (INTEGER_FIELDS, models.PayloadSchemaType.INTEGER),
                (FLOAT_FIELDS, models.PayloadSchemaType.FLOAT),
            ):
                for field in fields:
                    self._client.create_payload_index(self.collection, field, schema)

    def replace(self, items: Sequence[EmbeddedChunk], hide: Sequence[str]) -> None:
        if not items and not hide:
            return
        points = [
            models.PointStruct(
                id=i.chunk.chunk_id,
                vector={
                    DENSE: i.dense,
                    SPARSE: models.SparseVector(indices=i.sparse.indices, values=i.sparse.values),
                },
                payload=to_payload(i.chunk),
            )
            for i in items
        ]
        if hide:
            source = items[0].chunk.source if items else self._source_of(hide[0])
            points += [
                models.PointStruct(
                    id=pid,
                    vector={
                        DENSE: placeholder_vector(self.dimension),
                        SPARSE: models.SparseVector(indices=[], values=[]),
                    },
                    payload=tombstone_payload(source),
                )
                for pid in hide
            ]
        # One request: a server applies it as one WAL entry.
        self._call(lambda: self._client.upsert(self.collection, points=points, wait=True))

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        selector = models.PointIdsList(points=list(chunk_ids))
        self._call(lambda: self._client.delete(self.collection, points_selector=selector, wait=True))

    def delete_source(self, source: str) -> None:
        selector = models.FilterSelector(filter=_filter([MatchAny("source", [source])]))
        self._call(lambda: self._client.delete(self.collection, points_selector=selector, wait=True))

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
        stages: list[tuple[list[float] | models.SparseVector, str]] = []
        if query.dense is not None:
            stages.append((query.dense, DENSE))
        if query.sparse is not None and query.sparse.indices:
            stages.append(
                (models.SparseVector(indices=query.sparse.indices, values=query.sparse.values), SPARSE)
            )
        if not stages:
            return []
        if len(stages) == 1:
            vector, using = stages[0]
            response = self._call(
                lambda: self._client.query_points(
                    self.collection,
                    query=vector,
                    using=using,
                    query_filter=flt,
                    limit=limit,
                    with_payload=True,
                )
            )
        else:
            depth = prefetch_depth(limit)
            fused = (
                models.FusionQuery(fusion=models.Fusion.DBSF)
                if query.fusion == "dbsf"
                else models.RrfQuery(rrf=models.Rrf(k=_RRF_K))
            )
            prefetch = [models.Prefetch(query=v, using=u, filter=flt, limit=depth) for v, u in stages]
            response = self._call(
                lambda: self._client.query_points(
                    self.collection,
                    prefetch=prefetch,
                    query=fused,
                    query_filter=flt,
                    limit=limit,
                    with_payload=True,
                )
            )
        return [SearchHit(chunk=from_payload(p.id, p.payload), score=p.score) for p in response.points]

    def count(self) -> int:
        flt = _filter([MatchAny("live", [1])])
        return int(
            self._call(lambda: self._client.count(self.collection, count_filter=flt, exact=True)).count
        )

    def optimize(self) -> None:
        pass  # a Qdrant server (and local mode) optimises in the background / not at all

    def unoptimized(self) -> int:
        return 0

    def close(self) -> None:
        self._client.close()

    def _source_of(self, point_id: str) -> str:
        records = self._call(
            lambda: self._client.retrieve(self.collection, [point_id], with_payload=["source"])
        )
        if not records:
            raise StoreError(f"point {point_id} to hide does not exist")
        return str((records[0].payload or {})["source"])

    def _scroll(
        self, flt: models.Filter | None, *, with_payload: bool | list[str], limit: int | None = None
    ) -> list[models.Record]:
        """Every record `flt` matches, or the first `limit` of them (in the engine's id order)."""
        records: list[models.Record] = []
        offset = None
        while True:
            page_size = _SCROLL_PAGE if limit is None else min(_SCROLL_PAGE, limit - len(records))
            start = offset
            page, offset = self._call(
                lambda: self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=page_size,  # noqa: B023 - called at once, inside this iteration
                    offset=start,  # noqa: B023 - called at once, inside this iteration
                    with_payload=with_payload,
                )
            )
            records += page
            if offset is None or (limit is not None and len(records) >= limit):
                return records

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (UnexpectedResponse, ResponseHandlingException, httpx.HTTPError, grpc.RpcError) as exc:
            raise StoreError(
                f"Qdrant at {self.where} failed on collection {self.collection!r}: {exc}. "
                "Check that the server is running and reachable, and BASTION_RETRIEVAL_QDRANT_URL/_API_KEY."
            ) from exc


def _filter(conditions: list[Condition], *, ids: Sequence[str] = ()) -> models.Filter:
    must: list[models.Condition] = [models.HasIdCondition(has_id=list(ids))] if ids else []
    for c in conditions:
        if isinstance(c, MatchAny):
            must.append(models.FieldCondition(key=c.key, match=models.MatchAny(any=c.values)))
        else:
            must.append(models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, lte=c.lte)))
    return models.Filter(must=must)
