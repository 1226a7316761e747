"""One contract, every store: Qdrant Edge (the default) and qdrant-client's local mode."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import (
    Chunk,
    EdgeStore,
    EmbeddedChunk,
    Fusion,
    Principal,
    QdrantStore,
    SearchFilters,
    StoreError,
    StoreQuery,
    VectorStore,
    document_acl,
    document_vector,
    point_id,
    query_vector,
)

DIM = 8
StoreFactory = Callable[[], VectorStore]
WORDS = [
    "leave",
    "password",
    "laptop",
    "backup",
    "incident",
    "abroad",
    "allowance",
    "retention",
    "cctv",
    "vpn",
]


def _vector(seed: str) -> list[float]:
    rng = random.Random(seed)
    v = [rng.uniform(-1, 1) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _item(
    source: str,
    position: int,
    acl: list[str],
    text: str | None = None,
    *,
    doc_type: str = "markdown",
    modified_at: float = 1_700_000_000.0,
) -> EmbeddedChunk:
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
        doc_type=doc_type,
        modified_at=modified_at,
    )
    return EmbeddedChunk(chunk, _vector(text), document_vector(text))


def _q(text: str) -> StoreQuery:
    return StoreQuery(dense=_vector(text), sparse=query_vector(text))


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


ALICE = Principal(user="alice")


def test_write_search_replace_delete_round_trip(make_store: StoreFactory) -> None:
    store = make_store()
    acl = ["user:alice"]
    items = [_item("/a/x.md", i, acl, f"{WORDS[i]} policy text") for i in range(5)]
    store.replace(items, [])
    store.replace(items, [])  # same ids: no duplicates
    assert store.count() == 5
    assert store.source_points("/a/x.md") == {i.chunk.chunk_id: True for i in items}
    assert store.sources() == {"/a/x.md"}
    dense = store.search(StoreQuery(dense=items[2].dense), ALICE, limit=3)
    assert dense[0].chunk == items[2].chunk
    assert dense[0].score == pytest.approx(1.0, abs=1e-4)
    sparse = store.search(StoreQuery(sparse=query_vector("backup")), ALICE, limit=3)
    assert [h.chunk.chunk_id for h in sparse] == [items[3].chunk.chunk_id]
    hybrid = store.search(_q("laptop"), ALICE, limit=5)
    assert hybrid[0].chunk.chunk_id == items[2].chunk.chunk_id, "a hit in both lists wins the fusion"

    # A new version: one operation writes it and hides the old chunks; nothing old stays visible.
    new = [_item("/a/x.md", 0, acl, "incident reporting v2")]
    store.replace(new, [i.chunk.chunk_id for i in items])
    assert store.count() == 1
    assert {h.chunk.chunk_id for h in store.search(_q("policy text"), ALICE, limit=10)} == {
        new[0].chunk.chunk_id
    }
    points = store.source_points("/a/x.md")
    assert sum(points.values()) == 1 and len(points) == 6, "hidden points stay findable until deleted"
    store.delete([pid for pid, live in points.items() if not live])
    assert store.source_points("/a/x.md") == {new[0].chunk.chunk_id: True}
    # Edge counts what was written since its last index build (so `bastion index` knows when to build
    # it); a server builds its own, so there is never anything pending there.
    edge = isinstance(store, EdgeStore)
    assert store.unoptimized() == (1 if edge else 0)
    store.optimize()  # builds Edge's HNSW index; a no-op where the engine optimises by itself
    assert store.unoptimized() == 0
    store.replace([_item("/a/y.md", 0, acl, "more")], [])
    assert store.unoptimized() == (1 if edge else 0)
    assert store.search(_q("incident reporting"), ALICE, limit=1)[0].chunk.chunk_id == new[0].chunk.chunk_id
    store.delete_source("/a/x.md")
    store.delete_source("/a/y.md")
    assert store.count() == 0 and store.sources() == set()


def test_readable_drops_deleted_hidden_unknown_and_forbidden_chunks(make_store: StoreFactory) -> None:
    store = make_store()
    kept = _item("/d/kept.md", 0, ["group:hr"])
    deleted = _item("/d/deleted.md", 0, ["group:hr"])
    old = _item("/d/changed.md", 0, ["group:hr"], "old text")
    new = _item("/d/changed.md", 0, ["group:hr"], "new text")
    secret = _item("/d/secret.md", 0, ["group:legal"])
    store.replace([kept, deleted, old, secret], [])
    store.delete_source("/d/deleted.md")
    store.replace([new], [old.chunk.chunk_id])  # the old version is hidden, then gone
    ids = [i.chunk.chunk_id for i in (kept, deleted, old, new, secret)] + [
        "00000000-0000-0000-0000-000000000000"
    ]
    hr = Principal(user="bob", groups=frozenset({"hr"}))
    assert store.readable(ids, hr) == {kept.chunk.chunk_id, new.chunk.chunk_id}
    assert store.readable(ids, Principal(user="bob", groups=frozenset({"sales"}))) == set()
    assert store.readable([], hr) == set()


def test_document_gives_a_readable_live_document_in_order_or_none_when_too_long(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    parts = [_item("/d/policy.md", p, ["group:hr"], f"policy part {p}") for p in (3, 0, 2, 1)]
    other = _item("/d/other.md", 0, ["group:hr"])
    store.replace([*parts, other], [])
    hr = Principal(user="bob", groups=frozenset({"hr"}))
    whole = store.document("/d/policy.md", hr, limit=4)
    assert whole is not None
    assert [c.position for c in whole] == [0, 1, 2, 3]
    assert [c.text for c in whole] == [f"policy part {p}" for p in range(4)]
    assert store.document("/d/policy.md", hr, limit=3) is None  # four chunks: too long to pin
    assert store.document("/d/policy.md", Principal(user="bob", groups=frozenset({"sales"})), limit=9) == []
    assert store.document("/d/missing.md", hr, limit=9) == []
    # A hit's neighbours: positions first..last inclusive, the limit counting only those.
    middle = store.document("/d/policy.md", hr, limit=2, positions=(1, 2))
    assert middle is not None and [c.position for c in middle] == [1, 2]
    assert store.document("/d/policy.md", hr, limit=1, positions=(1, 2)) is None
    assert store.document("/d/other.md", hr, limit=9, positions=(1, 5)) == []
    # A re-indexed document: the old version's hidden chunks are never part of it.
    changed = _item("/d/policy.md", 0, ["group:hr"], "policy part 0, amended")
    store.replace([changed], [parts[1].chunk.chunk_id])
    after = store.document("/d/policy.md", hr, limit=9)
    assert after is not None
    assert [c.text for c in after] == [
        "policy part 0, amended",
        "policy part 1",
        "policy part 2",
        "policy part 3",
    ]


def test_search_never_returns_what_the_principal_may_not_read(make_store: StoreFactory) -> None:
    store = make_store()
    store.replace([_item("/hr.md", 0, ["group:hr"], "leave policy")], [])
    store.replace([_item("/mine.md", 0, ["user:bob"], "leave notes")], [])
    queries = (
        _q("leave"),
        StoreQuery(dense=_vector("leave"), sparse=query_vector("leave"), fusion="rrf"),
        StoreQuery(sparse=query_vector("leave")),
        StoreQuery(dense=_vector("leave")),
    )
    for mode in queries:
        assert store.search(mode, Principal(user="eve"), limit=10) == []
        assert {h.chunk.source for h in store.search(mode, Principal(user="bob"), limit=10)} == {"/mine.md"}
        hr = Principal(user="x", groups=frozenset({"hr"}))
        assert {h.chunk.source for h in store.search(mode, hr, limit=10)} == {"/hr.md"}


def test_metadata_filters(make_store: StoreFactory) -> None:
    store = make_store()
    acl = ["user:alice"]
    store.replace([_item("/docs/hr/leave.md", 0, acl, "leave", modified_at=1_600_000_000)], [])
    store.replace(
        [_item("/docs/it/vpn.txt", 0, acl, "vpn leave", doc_type="text", modified_at=1_700_000_000)], []
    )
    store.replace([_item("/other/leave.md", 0, acl, "leave again", modified_at=1_800_000_000)], [])

    def found(filters: SearchFilters) -> set[str]:
        return {h.chunk.source for h in store.search(_q("leave"), ALICE, limit=10, filters=filters)}

    assert found(SearchFilters(sources=["/docs/it/vpn.txt"])) == {"/docs/it/vpn.txt"}
    assert found(SearchFilters(path_prefix="/docs")) == {"/docs/hr/leave.md", "/docs/it/vpn.txt"}
    assert found(SearchFilters(path_prefix="/docs/hr/")) == {"/docs/hr/leave.md"}
    assert found(SearchFilters(path_prefix="/doc")) == set(), "a prefix is a folder, not a string prefix"
    assert found(SearchFilters(doc_types=["text"])) == {"/docs/it/vpn.txt"}
    after = datetime.fromtimestamp(1_650_000_000, tz=UTC)
    before = datetime.fromtimestamp(1_750_000_000, tz=UTC)
    assert found(SearchFilters(modified_after=after)) == {"/docs/it/vpn.txt", "/other/leave.md"}
    assert found(SearchFilters(modified_after=after, modified_before=before)) == {"/docs/it/vpn.txt"}


def test_sparse_scores_agree_between_edge_and_qdrant_client(tmp_path: Path) -> None:
    texts = [f"{a} {b} {a}" for a in WORDS for b in WORDS[:4]]
    items = [_item("/corpus.md", i, ["user:alice"], t) for i, t in enumerate(texts)]
    edge = EdgeStore(tmp_path / "shard", dimension=DIM)
    memory = QdrantStore.in_memory(dimension=DIM)
    try:
        for store in (edge, memory):
            store.replace(items, [])
        for query in ("leave backup", "vpn", "cctv retention allowance"):
            q = StoreQuery(sparse=query_vector(query))
            # Every match, compared as (score, id): the engines may order equal scores differently.
            a = sorted((round(h.score, 4), h.chunk.chunk_id) for h in edge.search(q, ALICE, limit=100))
            b = sorted((round(h.score, 4), h.chunk.chunk_id) for h in memory.search(q, ALICE, limit=100))
            assert a and a == b
    finally:
        edge.close()
        memory.close()


def test_edge_store_refuses_a_second_process_while_open(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "shard", dimension=DIM)
    try:
        with pytest.raises(StoreError, match="in use by another Bastion process"):
            EdgeStore(tmp_path / "shard", dimension=DIM, lock_timeout_s=0.1)
    finally:
        first.close()
    EdgeStore(tmp_path / "shard", dimension=DIM).close()


def test_edge_store_keeps_data_across_reopen_and_rejects_old_formats(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", dimension=DIM)
    store.replace([_item("/a.md", 0, ["user:alice"], "leave")], [])
    store.close()
    again = EdgeStore(tmp_path / "shard", dimension=DIM)
    try:
        assert again.count() == 1
        assert again.search(_q("leave"), ALICE, limit=1)[0].chunk.source == "/a.md"
    finally:
        again.close()
    (tmp_path / "shard.format").write_text("1")
    with pytest.raises(StoreError, match="older Bastion"):
        EdgeStore(tmp_path / "shard", dimension=DIM)


def test_unreachable_qdrant_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="Check that the server is running"):
        QdrantStore.connect("http://127.0.0.1:9", dimension=DIM, collection="c")


@pytest.mark.parametrize("fusion", ["dbsf", "rrf"])
def test_a_shorter_limit_returns_the_head_of_a_longer_one(make_store: StoreFactory, fusion: Fusion) -> None:
    """Asking for 5 hits must give the first 5 of asking for 100: the fused order may not depend on
    the limit (it did when the prefetch depth grew with it, and DBSF scales by the lists it sees)."""
    store = make_store()
    rng = random.Random(7)
    items = [
        _item(f"/d/doc{n}.md", 0, ["user:alice"], " ".join(rng.choices(WORDS, k=rng.randint(2, 8))) + f" {n}")
        for n in range(260)
    ]
    store.replace(items, [])
    for text in ("leave abroad", "password vpn laptop", "cctv retention backup incident"):
        query = StoreQuery(dense=_vector(text), sparse=query_vector(text), fusion=fusion)
        longest = store.search(query, ALICE, limit=100)
        assert len(longest) == 100
        for limit in (1, 5, 10, 37, 50, 99):
            head, hits = longest[:limit], store.search(query, ALICE, limit=limit)
            # The same scores in the same order; hits of equal score may come in any order, and
            # which of a tie straddling the cut makes it in is the store's choice.
            assert [h.score for h in hits] == pytest.approx([h.score for h in head], abs=1e-6)
            tied_at_cut = {h.chunk.chunk_id for h in longest if h.score == pytest.approx(head[-1].score)}
            assert {h.chunk.chunk_id for h in hits} - tied_at_cut == {
                h.chunk.chunk_id for h in head
            } - tied_at_cut


USERS = st.sampled_from(["ann", "ben", "cat", "dan"])
GROUPS = st.frozensets(st.sampled_from(["hr", "legal", "it", "board"]), max_size=3)
DOCS = st.lists(st.tuples(USERS, GROUPS, st.sampled_from(["markdown", "text"])), min_size=1, max_size=12)
MODES = st.sampled_from(["hybrid", "hybrid-rrf", "dense", "sparse"])  # hybrid: DBSF, the default


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=DOCS, user=USERS, groups=GROUPS, mode=MODES, only_type=st.sampled_from([None, "markdown", "text"])
)
def test_acl_property_exactly_the_readable_documents_come_back(
    make_store: StoreFactory,
    docs: list[tuple[str, frozenset[str], str]],
    user: str,
    groups: frozenset[str],
    mode: str,
    only_type: str | None,
) -> None:
    """Zero leaks, and nothing readable lost, through every mode (both fusions) and with filters."""
    store = make_store()
    items = []
    for n, (owner, doc_groups, doc_type) in enumerate(docs):
        acl = document_acl(owner=owner, groups=doc_groups)
        items.append(_item(f"/d/doc{n}.md", 0, acl, "leave policy " + WORDS[n % 10], doc_type=doc_type))
    for item in items:
        store.replace([item], [])
    principal = Principal(user=user, groups=groups)
    query = StoreQuery(
        dense=_vector("q") if mode != "sparse" else None,
        sparse=query_vector("leave policy") if mode != "dense" else None,
        fusion="rrf" if mode == "hybrid-rrf" else "dbsf",
    )
    filters = SearchFilters(doc_types=[only_type]) if only_type else None
    returned = {h.chunk.source for h in store.search(query, principal, limit=100, filters=filters)}
    readable = {
        i.chunk.source
        for (owner, doc_groups, doc_type), i in zip(docs, items, strict=True)
        if ((doc_groups & groups) if doc_groups else owner == user) and (only_type in (None, doc_type))
    }
    assert returned == readable
    # The recheck a conversation makes of the passages it showed before agrees with search.
    may_read = {
        i.chunk.chunk_id
        for (owner, doc_groups, _), i in zip(docs, items, strict=True)
        if ((doc_groups & groups) if doc_groups else owner == user)
    }
    assert store.readable([i.chunk.chunk_id for i in items], principal) == may_read
