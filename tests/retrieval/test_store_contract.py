"""One contract, every store: Qdrant Edge (the default) and qdrant-client's local mode."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import (
    Chunk,
    EdgeStore,
    EmbeddedChunk,
    Principal,
    QdrantStore,
    StoreError,
    VectorStore,
    document_acl,
    point_id,
)

DIM = 8
StoreFactory = Callable[[], VectorStore]


def _vector(seed: str) -> list[float]:
    rng = random.Random(seed)
    v = [rng.uniform(-1, 1) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _item(source: str, position: int, acl: list[str], text: str | None = None) -> EmbeddedChunk:
    text = text or f"{source} chunk {position}"
    sha = hashlib.sha256(text.encode()).hexdigest()
    chunk = Chunk(
        chunk_id=point_id(source, position, sha, acl),
        source=source,
        start=position * 10,
        end=position * 10 + len(text),
        text=text,
        title="T",
        position=position,
        content_sha256=sha,
        acl=acl,
    )
    return EmbeddedChunk(chunk, _vector(text))


@pytest.fixture(params=["edge", "qdrant-memory"])
def make_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    opened: list[VectorStore] = []

    def make() -> VectorStore:
        store: VectorStore
        if request.param == "edge":
            store = EdgeStore(tmp_path_factory.mktemp("edge") / "shard", dimension=DIM)
        else:
            store = QdrantStore.in_memory(dimension=DIM)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_upsert_search_delete_round_trip(make_store: StoreFactory) -> None:
    store = make_store()
    acl = ["user:alice"]
    items = [_item("/a.md", i, acl) for i in range(5)]
    store.upsert(items)
    store.upsert(items)  # same ids: no duplicates
    assert store.count() == 5
    assert store.ids_for_source("/a.md") == {i.chunk.chunk_id for i in items}
    assert store.sources() == {"/a.md"}
    hits = store.search(items[2].vector, Principal(user="alice"), limit=3)
    assert hits[0].chunk == items[2].chunk
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    store.delete([items[0].chunk.chunk_id])
    assert store.count() == 4
    assert items[0].chunk.chunk_id not in store.ids_for_source("/a.md")


def test_search_never_returns_what_the_principal_may_not_read(make_store: StoreFactory) -> None:
    store = make_store()
    store.upsert([_item("/hr.md", 0, ["group:hr"]), _item("/mine.md", 0, ["user:bob"])])
    probe = _vector("anything")
    assert store.search(probe, Principal(user="eve"), limit=10) == []
    assert {h.chunk.source for h in store.search(probe, Principal(user="bob"), limit=10)} == {"/mine.md"}
    assert {
        h.chunk.source for h in store.search(probe, Principal(user="x", groups=frozenset({"hr"})), limit=10)
    } == {"/hr.md"}


def test_edge_store_refuses_a_second_process_while_open(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "shard", dimension=DIM)
    try:
        with pytest.raises(StoreError, match="in use by another Bastion process"):
            EdgeStore(tmp_path / "shard", dimension=DIM, lock_timeout_s=0.1)
    finally:
        first.close()
    EdgeStore(tmp_path / "shard", dimension=DIM).close()


def test_edge_store_keeps_data_across_reopen(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", dimension=DIM)
    store.upsert([_item("/a.md", 0, ["user:a"])])
    store.close()
    again = EdgeStore(tmp_path / "shard", dimension=DIM)
    try:
        assert again.count() == 1
        assert again.search(_vector("q"), Principal(user="a"), limit=1)[0].chunk.source == "/a.md"
    finally:
        again.close()


USERS = st.sampled_from(["ann", "ben", "cat", "dan"])
GROUPS = st.frozensets(st.sampled_from(["hr", "legal", "it", "board"]), max_size=3)
DOCS = st.lists(st.tuples(USERS, GROUPS), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=DOCS, user=USERS, groups=GROUPS)
def test_acl_property_exactly_the_readable_documents_come_back(
    make_store: StoreFactory, docs: list[tuple[str, frozenset[str]]], user: str, groups: frozenset[str]
) -> None:
    store = make_store()
    items = []
    for n, (owner, doc_groups) in enumerate(docs):
        items.append(_item(f"/doc{n}.md", 0, document_acl(owner=owner, groups=doc_groups)))
    store.upsert(items)
    principal = Principal(user=user, groups=groups)
    returned = {h.chunk.source for h in store.search(_vector("q"), principal, limit=100)}
    readable = {
        i.chunk.source
        for (owner, doc_groups), i in zip(docs, items, strict=True)
        if ((doc_groups & groups) if doc_groups else owner == user)
    }
    assert returned == readable
