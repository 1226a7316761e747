"""`bastion index --check`: does the store hold what the manifest says was indexed?

The manifest records each document's chunk count when it was written; the store is asked for the
live points of every source. A damaged store (a truncated Qdrant Edge id-tracker once answered a
search with 1 result instead of 5, silently) shows up as documents with missing points; a document in
one but not the other shows up too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from retrieval._manifest import Manifest
from retrieval._store import VectorStore


@dataclass
class IndexCheck:
    documents: int = 0
    chunks: int = 0  # live points found for the manifest's documents
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_index(store: VectorStore, manifest: Manifest) -> IndexCheck:
    result = IndexCheck()
    listed = set()
    for entry in manifest.entries():
        listed.add(entry.source)
        result.documents += 1
        live = sum(1 for is_live in store.source_points(entry.source).values() if is_live)
        result.chunks += live
        if live != entry.chunks:
            result.problems.append(
                f"{entry.source}: the manifest lists {entry.chunks} chunks, the store holds {live} live ones"
            )
    for source in sorted(store.sources() - listed):
        result.problems.append(f"{source}: in the store but not in the manifest")
    total = store.count()
    if total != result.chunks and not result.problems:
        result.problems.append(f"the store counts {total} live chunks, its documents {result.chunks}")
    return result
