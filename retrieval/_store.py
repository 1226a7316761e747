"""The vector store contract, and what every implementation shares: point ids, the payload layout,
and the filter every search runs with (access control and liveness first, then the caller's filters)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from retrieval._bm25 import SparseVector
from retrieval._types import Chunk, Fusion, Principal, SearchFilters, SearchHit

DENSE = "dense"
SPARSE = "bm25"
KEYWORD_FIELDS = ("acl", "source", "path_prefixes", "doc_type")
INTEGER_FIELDS = ("live",)
FLOAT_FIELDS = ("modified_at",)
_STORE_ONLY = frozenset({"live", "path_prefixes"})

_ID_NAMESPACE = uuid.UUID("6f1c3d4e-0a5b-4c7d-9e8f-b4a5c1d2e3f4")


def point_id(source: str, position: int, content_sha256: str, acl: Sequence[str], header: str = "") -> str:
    """Deterministic point id: re-indexing the same chunk with the same ACL writes the same id.

    The ACL is part of the identity so that changing a document's groups rewrites its points
    rather than leaving stale permissions on them; so is the header it is indexed with, so a renamed
    heading (or a new way of writing headers) re-embeds the chunks it changes.
    """
    key = "\x00".join([source, str(position), content_sha256, ",".join(acl), header])
    return str(uuid.uuid5(_ID_NAMESPACE, key))


PREFETCH_DEPTH = 100


def prefetch_depth(limit: int) -> int:
    """Candidates each ranked list brings to a fused query: the same for every limit up to 100 (all
    a search may ask), so that asking for 5 hits gives the first 5 of asking for 50. DBSF scales each
    list's scores by the mean and spread of the list it sees, and RRF adds the ranks it sees, so a
    depth that grew with the limit reordered the head. 100 measured best or level: nDCG@10 by chunk
    against 200 (docs/evaluation.md)."""
    return max(limit, PREFETCH_DEPTH)


@dataclass(frozen=True)
class EmbeddedChunk:
    chunk: Chunk
    dense: list[float]
    sparse: SparseVector


@dataclass(frozen=True)
class StoreQuery:
    """Dense only, sparse only, or both, fused inside the store's query: by distribution-based score
    fusion (each list's scores scaled by their mean and spread, then summed), or by reciprocal rank."""

    dense: list[float] | None = None
    sparse: SparseVector | None = None
    fusion: Fusion = "dbsf"

    def __post_init__(self) -> None:
        if self.dense is None and self.sparse is None:
            raise TypeError("a store query needs a dense or a sparse vector")  # a caller's bug, not input


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: list[str] | list[int]


@dataclass(frozen=True)
class Range:
    key: str
    gte: float | None = None
    lte: float | None = None


Condition = MatchAny | Range


def search_conditions(principal: Principal, filters: SearchFilters | None) -> list[Condition]:
    """Every condition a search must satisfy. The first two are not optional: what the principal may
    read, and only live points (a replaced document's old chunks are hidden before they are deleted)."""
    conditions: list[Condition] = [MatchAny("acl", principal.acl_tokens()), MatchAny("live", [1])]
    if filters is None:
        return conditions
    if filters.sources:
        conditions.append(MatchAny("source", list(filters.sources)))
    if filters.path_prefix:
        conditions.append(MatchAny("path_prefixes", [_normalise_dir(filters.path_prefix)]))
    if filters.doc_types:
        conditions.append(MatchAny("doc_type", list(filters.doc_types)))
    if filters.modified_after is not None or filters.modified_before is not None:
        after = filters.modified_after.timestamp() if filters.modified_after else None
        before = filters.modified_before.timestamp() if filters.modified_before else None
        conditions.append(Range("modified_at", gte=after, lte=before))
    return conditions


class VectorStore(Protocol):
    """What retrieval needs from a vector database. Every search takes a Principal: there is no
    search path without access control, and the ACL is part of the store's own query."""

    def replace(self, items: Sequence[EmbeddedChunk], hide: Sequence[str]) -> None:
        """In one store operation: make `items` live and hide the points `hide` (then delete them)."""
        ...

    def delete(self, chunk_ids: Sequence[str]) -> None: ...

    def delete_source(self, source: str) -> None: ...

    def source_points(self, source: str) -> dict[str, bool]:
        """Every point of a source, live or hidden: id → live."""
        ...

    def sources(self) -> set[str]: ...

    def readable(self, chunk_ids: Sequence[str], principal: Principal) -> set[str]:
        """Those of `chunk_ids` that still exist, are live and `principal` may read now: how a
        conversation rechecks the passages it showed in earlier turns (groups change, documents go)."""
        ...

    def document(
        self, source: str, principal: Principal, *, limit: int, positions: tuple[int, int] | None = None
    ) -> list[Chunk] | None:
        """The live chunks of `source` that `principal` may read, in document order: how a QA thread
        pins a whole document, or (with `positions`, first and last inclusive) reads a hit's
        neighbours. None when there are more than `limit` of them (too long to pin), so a long
        document is never read whole just to be refused."""
        ...

    def search(
        self, query: StoreQuery, principal: Principal, *, limit: int, filters: SearchFilters | None = None
    ) -> list[SearchHit]: ...

    def count(self) -> int:
        """Live points."""
        ...

    def optimize(self) -> None:
        """Build search indexes now (Qdrant Edge has no background optimiser; a server does it itself)."""
        ...

    def unoptimized(self) -> int:
        """Live points written since the search indexes were last built; 0 where the store builds them
        itself."""
        ...

    def close(self) -> None: ...


def to_payload(chunk: Chunk) -> dict[str, Any]:
    payload = chunk.model_dump(exclude={"chunk_id"})
    payload["live"] = 1
    payload["path_prefixes"] = path_prefixes(chunk.source)
    return payload


def tombstone_payload(source: str) -> dict[str, Any]:
    """What a hidden point keeps: enough to find it again (by source) and nothing a search can match."""
    return {"source": source, "live": 0, "acl": []}


def document_conditions(
    source: str, principal: Principal, positions: tuple[int, int] | None
) -> list[Condition]:
    conditions = search_conditions(principal, SearchFilters(sources=[source]))
    if positions is not None:
        # `position` has no payload index: the indexed `source` match leaves one document's chunks,
        # few enough to check the range on each.
        conditions.append(Range("position", gte=positions[0], lte=positions[1]))
    return conditions


def in_document_order(
    records: Sequence[tuple[object, dict[str, Any] | None]], limit: int
) -> list[Chunk] | None:
    """A document's chunks from a scroll that asked for one more than `limit`: None when it got more."""
    if len(records) > limit:
        return None
    return sorted((from_payload(pid, payload) for pid, payload in records), key=lambda c: c.position)


def from_payload(point_id: object, payload: dict[str, Any] | None) -> Chunk:
    fields = {k: v for k, v in (payload or {}).items() if k not in _STORE_ONLY}
    return Chunk(chunk_id=str(point_id), **fields)


def path_prefixes(source: str) -> list[str]:
    """Every folder above a source, so a path-prefix filter is a keyword match on an indexed field."""
    parents = PurePosixPath(source).parents
    return [_normalise_dir(str(p)) for p in parents]


def _normalise_dir(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def placeholder_vector(dimension: int) -> list[float]:
    """A valid unit vector for hidden points (cosine needs a non-zero vector)."""
    return [1.0] + [0.0] * (dimension - 1)
