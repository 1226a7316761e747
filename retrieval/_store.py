"""The vector store contract, and the payload layout every implementation shares."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from retrieval._types import Chunk, Principal, SearchHit

DENSE = "dense"
# Payload fields with a keyword index: the ACL filter and the per-source lookups run on them.
INDEXED_KEYWORDS = ("acl", "source")

_ID_NAMESPACE = uuid.UUID("6f1c3d4e-0a5b-4c7d-9e8f-b4a5c1d2e3f4")


def point_id(source: str, position: int, content_sha256: str, acl: Sequence[str]) -> str:
    """Deterministic point id: re-indexing the same chunk with the same ACL writes the same id.

    The ACL is part of the identity so that changing a document's groups rewrites its points
    rather than leaving stale permissions on them.
    """
    key = "\x00".join([source, str(position), content_sha256, ",".join(acl)])
    return str(uuid.uuid5(_ID_NAMESPACE, key))


@dataclass(frozen=True)
class EmbeddedChunk:
    chunk: Chunk
    vector: list[float]


class VectorStore(Protocol):
    """What retrieval needs from a vector database. Every search takes a Principal: there is no
    search path without access control, and the ACL is part of the store's own query."""

    def upsert(self, items: Sequence[EmbeddedChunk]) -> None: ...

    def delete(self, chunk_ids: Sequence[str]) -> None: ...

    def ids_for_source(self, source: str) -> set[str]: ...

    def sources(self) -> set[str]: ...

    def search(self, vector: list[float], principal: Principal, *, limit: int) -> list[SearchHit]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


def to_payload(chunk: Chunk) -> dict[str, Any]:
    return chunk.model_dump(exclude={"chunk_id"})


def from_payload(point_id: object, payload: dict[str, Any] | None) -> Chunk:
    return Chunk(chunk_id=str(point_id), **(payload or {}))
