"""Query latency, p50/p95, for dense, sparse, hybrid and hybrid+ACL at several sizes, on Qdrant Edge
and on qdrant-client's local mode, measured in one run.

    python -m evals.bench.query_latency [--sizes 10000 100000] [--queries 30] [--optimize]
        [--embed [torch onnx onnx-int8]]

Points are synthetic so that 100k of them load in seconds: random unit 384-d vectors, and BM25
vectors of Zipf-distributed words. Every query goes through the store's real search path (the ACL
filter is always on; "hybrid+acl" adds a group-restricted principal, so the filter is selective).
`--optimize` also builds Edge's HNSW index (slow: minutes at 100k) before measuring. `--embed [BACKEND…]`
adds "hybrid+acl+embed/BACKEND" for each: the bundled MiniLM, run by that backend, embeds a real
question (the code suite's, written here) and that vector searches, timed together, as `bastion search`
pays for a query.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from evals._corpora import code_questions
from evals.bench._common import emit, log, make_embedder, percentiles
from retrieval import (
    Chunk,
    EdgeStore,
    EmbeddedChunk,
    Principal,
    QdrantStore,
    StoreQuery,
    VectorStore,
    document_vector,
    query_vector,
)

DIM = 384
VOCABULARY = [f"term{i}" for i in range(20000)]
GROUPS = ["hr", "legal", "it", "finance", "board", "ops", "sales", "audit"]


def _unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def _text(rng: random.Random, words: int) -> str:
    # Zipf-like: low term numbers are common, high ones rare, as in real text.
    return " ".join(
        VOCABULARY[min(int(rng.paretovariate(1.1)) - 1, len(VOCABULARY) - 1)] for _ in range(words)
    )


def _points(n: int, seed: int) -> list[EmbeddedChunk]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        text = _text(rng, 60)
        acl = [f"group:{rng.choice(GROUPS)}"]
        source = f"/corpus/doc{i // 10}.md"
        chunk = Chunk(
            chunk_id=str(uuid.UUID(bytes=hashlib.md5(f"{seed}-{i}".encode()).digest())),
            source=source,
            start=0,
            end=len(text),
            text=text,
            position=i % 10,
            content_sha256="x",
            acl=acl,
        )
        items.append(EmbeddedChunk(chunk, _unit(rng), document_vector(text)))
    return items


def _measure(
    store: VectorStore,
    queries: list[tuple[list[float], str]],
    embeds: Mapping[str, Callable[[str], list[float]]],
) -> dict[str, dict[str, float]]:
    everyone = Principal(user="bench", groups=frozenset(GROUPS))
    one_group = Principal(user="bench", groups=frozenset({"audit"}))

    def dense(v: list[float], t: str) -> StoreQuery:
        return StoreQuery(dense=v)

    def sparse(v: list[float], t: str) -> StoreQuery:
        return StoreQuery(sparse=query_vector(t))

    def hybrid(v: list[float], t: str) -> StoreQuery:
        return StoreQuery(dense=v, sparse=query_vector(t))

    cases = {
        "dense": (dense, everyone),
        "sparse": (sparse, everyone),
        "hybrid": (hybrid, everyone),
        "hybrid+acl": (hybrid, one_group),
    }
    results = {}
    for name, (make, principal) in cases.items():
        store.search(make(*queries[0]), principal, limit=10)  # warm caches
        samples = []
        for vector, text in queries:
            started = time.perf_counter()
            store.search(make(vector, text), principal, limit=10)
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = percentiles(samples)
    questions = [q.text for q in code_questions()][: len(queries)]
    for backend, embed in embeds.items():
        embed(f"warm up {backend}")
        samples = []
        for question, (_, text) in zip(questions, queries, strict=False):
            started = time.perf_counter()
            store.search(StoreQuery(dense=embed(question), sparse=query_vector(text)), one_group, limit=10)
            samples.append((time.perf_counter() - started) * 1000)
        results[f"hybrid+acl+embed/{backend}"] = percentiles(samples)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--optimize", action="store_true", help="build Edge's HNSW index first")
    parser.add_argument(
        "--embed",
        nargs="*",
        metavar="BACKEND",
        help="also time search with the query's embedding, by each backend named (torch, onnx, "
        "onnx-int8; none named: torch)",
    )
    parser.add_argument(
        "--stores", nargs="+", default=["edge", "qdrant_local"], choices=["edge", "qdrant_local"]
    )
    args = parser.parse_args(argv)
    backends: list[str] = (args.embed or ["torch"]) if args.embed is not None else []
    embeds = {backend: make_embedder(backend).embed_query for backend in backends}
    rng = random.Random(7)
    queries = [(_unit(rng), _text(rng, 6)) for _ in range(args.queries)]
    report: dict[str, object] = {"benchmark": "query_latency", "queries_per_case": args.queries, "sizes": {}}
    for size in args.sizes:
        log(f"building {size} points…")
        items = _points(size, seed=size)
        row: dict[str, object] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.stores:
                store: VectorStore = (
                    EdgeStore(Path(tmp) / "edge", dimension=DIM)
                    if name == "edge"
                    else QdrantStore.in_memory(dimension=DIM)
                )
                try:
                    started = time.perf_counter()
                    for i in range(0, len(items), 1000):
                        store.replace(items[i : i + 1000], [])
                    load_s = time.perf_counter() - started
                    optimize_s = None
                    if name == "edge" and args.optimize and isinstance(store, EdgeStore):
                        started = time.perf_counter()
                        store.optimize()
                        optimize_s = round(time.perf_counter() - started, 1)
                    log(f"  {name}: loaded in {load_s:.1f}s; measuring…")
                    row[name] = {
                        "load_s": round(load_s, 1),
                        "optimize_s": optimize_s,
                        **_measure(store, queries, embeds),
                    }
                finally:
                    store.close()
        edge, local = row.get("edge"), row.get("qdrant_local")
        if isinstance(edge, dict) and isinstance(local, dict):
            row["speedup_p50_edge_vs_local"] = {
                case: round(local[case]["p50_ms"] / max(edge[case]["p50_ms"], 1e-3), 1)
                for case in ("dense", "sparse", "hybrid", "hybrid+acl")
            }
        report["sizes"][str(size)] = row  # type: ignore[index]
    emit(report)


if __name__ == "__main__":
    main()
