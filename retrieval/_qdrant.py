"""qdrant-client: `:memory:` in tests and light use, a Qdrant server or cluster by URL in production."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval._errors import StoreError
from retrieval._store import DENSE, INDEXED_KEYWORDS, EmbeddedChunk, from_payload, to_payload
from retrieval._types import Principal, SearchHit

_SCROLL_PAGE = 1024

T = TypeVar("T")


class QdrantStore:
    def __init__(self, client: QdrantClient, *, collection: str, dimension: int) -> None:
        self._client = client
        self.collection = collection
        try:
            if not client.collection_exists(collection):
                client.create_collection(
                    collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                    },
                )
                with warnings.catch_warnings():
                    # Local mode says payload indexes have no effect there; a server uses them.
                    warnings.simplefilter("ignore", UserWarning)
                    for field in INDEXED_KEYWORDS:
                        client.create_payload_index(collection, field, models.PayloadSchemaType.KEYWORD)
        except (UnexpectedResponse, ResponseHandlingException) as exc:
            raise StoreError(f"Could not open the Qdrant collection {collection!r}: {exc}") from exc

    @classmethod
    def in_memory(cls, *, dimension: int, collection: str = "bastion") -> QdrantStore:
        return cls(QdrantClient(location=":memory:"), collection=collection, dimension=dimension)

    def upsert(self, items: Sequence[EmbeddedChunk]) -> None:
        if not items:
            return
        points = [
            models.PointStruct(id=i.chunk.chunk_id, vector={DENSE: i.vector}, payload=to_payload(i.chunk))
            for i in items
        ]
        self._call(lambda: self._client.upsert(self.collection, points=points, wait=True))

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        selector = models.PointIdsList(points=list(chunk_ids))
        self._call(lambda: self._client.delete(self.collection, points_selector=selector, wait=True))

    def ids_for_source(self, source: str) -> set[str]:
        flt = models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))])
        return {str(r.id) for r in self._scroll(flt, with_payload=False)}

    def sources(self) -> set[str]:
        return {str((r.payload or {})["source"]) for r in self._scroll(None, with_payload=["source"])}

    def search(self, vector: list[float], principal: Principal, *, limit: int) -> list[SearchHit]:
        acl = models.Filter(
            must=[models.FieldCondition(key="acl", match=models.MatchAny(any=principal.acl_tokens()))]
        )
        response = self._call(
            lambda: self._client.query_points(
                self.collection, query=vector, using=DENSE, query_filter=acl, limit=limit, with_payload=True
            )
        )
        return [SearchHit(chunk=from_payload(p.id, p.payload), score=p.score) for p in response.points]

    def count(self) -> int:
        return int(self._call(lambda: self._client.count(self.collection, exact=True)).count)

    def close(self) -> None:
        self._client.close()

    def _scroll(self, flt: models.Filter | None, *, with_payload: bool | list[str]) -> list[models.Record]:
        records: list[models.Record] = []
        offset = None
        while True:
            start = offset
            page, offset = self._call(
                lambda: self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=_SCROLL_PAGE,
                    offset=start,  # noqa: B023 - called at once, inside this iteration
                    with_payload=with_payload,
                )
            )
            records += page
            if offset is None:
                return records

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (UnexpectedResponse, ResponseHandlingException) as exc:
            raise StoreError(f"Qdrant request on {self.collection!r} failed: {exc}") from exc
