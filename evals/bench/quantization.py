"""Scalar (int8) quantization of the dense vectors on Qdrant Edge against float32, at one size: memory,
disk, HNSW build time, search latency and recall@10 against exact float search, measured in one run.

    python -m evals.bench.quantization [--points 100000] [--queries 200] [--clusters 2000]

Vectors are synthetic (384-d like MiniLM's) but clustered the way embeddings of a corpus are: each is
a random topic centre plus noise, so a query's ten nearest neighbours sit close together and small
quantization errors can reorder them — a harder case for int8 than uniform random vectors. The exact
neighbours come from numpy over the float32 vectors. Each layout is built and then searched in its
own process, so resident memory (VmRSS after loading and searching, less the process's before loading)
belongs to that layout alone:

    float    float32 vectors in RAM (Bastion's layout today)
    int8     float32 vectors on disk, int8 copies pinned in RAM (Qdrant's recommended layout at scale);
             searched with rescoring (Qdrant's default: the top candidates re-ranked by the float vectors
             read from disk), without it, and with 2x oversampling
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.bench._common import emit, log, percentiles

DIM = 384
BATCH = 2_000


def _vectors(points: int, queries: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = _normalised(rng.standard_normal((clusters, DIM)))

    def around(n: int) -> np.ndarray:
        # cos(vector, its centre) ≈ 0.78: a topic, not a duplicate.
        noise = _normalised(rng.standard_normal((n, DIM))) * 0.8
        return _normalised(centres[rng.integers(0, clusters, n)] + noise)

    return around(points).astype(np.float32), around(queries).astype(np.float32)


def _normalised(m: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return normalised


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _disk_mib(path: Path, *, wal: bool = True) -> float:
    """Bytes allocated under `path` (Edge preallocates sparse 32 MiB files: their size says little),
    without the write-ahead log when `wal` is false."""
    files = [f for f in path.rglob("*") if f.is_file() and (wal or "wal" not in f.relative_to(path).parts)]
    return round(sum(f.stat().st_blocks * 512 for f in files) / 2**20, 1)


def _config(layout: str) -> Any:
    import qdrant_edge as qe

    if layout == "float":
        params = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)
    else:
        params = qe.EdgeVectorParams(
            size=DIM,
            distance=qe.Distance.Cosine,
            on_disk=True,
            quantization_config=qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
            ),
        )
    return qe.EdgeConfig(vectors={"dense": params})


def _build(layout: str, folder: Path, data: Path) -> dict[str, float]:
    import qdrant_edge as qe

    vectors = np.load(data / "points.npy")
    shard = qe.EdgeShard.create(str(folder), _config(layout))
    started = time.perf_counter()
    for first in range(0, len(vectors), BATCH):
        batch = [
            qe.Point(first + i, {"dense": v.tolist()}) for i, v in enumerate(vectors[first : first + BATCH])
        ]
        shard.update(qe.UpdateOperation.upsert_points(batch))
    shard.flush()
    upsert_s = time.perf_counter() - started
    started = time.perf_counter()
    shard.optimize()  # builds HNSW (and the int8 copies) as `bastion index --optimize` does
    shard.flush()
    optimize_s = time.perf_counter() - started
    shard.close()
    return {"upsert_s": round(upsert_s, 1), "optimize_s": round(optimize_s, 1)}


def _search(layout: str, folder: Path, data: Path) -> dict[str, Any]:
    import qdrant_edge as qe

    queries = np.load(data / "queries.npy")
    truth = np.load(data / "truth.npy")
    baseline = _rss_mib()  # Python, numpy and the queries: not the index's
    started = time.perf_counter()
    shard = qe.EdgeShard.load(str(folder), _config(layout))
    load_s = time.perf_counter() - started
    modes: dict[str, Any] = {"default": None}
    if layout == "int8":
        modes = {
            "rescore": qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=True)),
            "no_rescore": qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=False)),
            "rescore_oversample2": qe.SearchParams(
                quantization=qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
            ),
        }
    results: dict[str, Any] = {}
    for mode, params in modes.items():

        def query(vector: np.ndarray, params: Any) -> list[int]:
            request = qe.QueryRequest(
                limit=10, query=qe.Query.Nearest(vector.tolist(), using="dense"), params=params
            )
            return [int(p.id) for p in shard.query(request)]

        query(queries[0], params)  # warm
        samples, hits = [], 0
        for vector, expected in zip(queries, truth, strict=True):
            t = time.perf_counter()
            found = query(vector, params)
            samples.append((time.perf_counter() - t) * 1000)
            hits += len(set(found) & set(expected.tolist()))
        results[mode] = {**percentiles(samples), "recall_at_10": round(hits / (10 * len(queries)), 4)}
    report = {
        "load_s": round(load_s, 2),
        "index_rss_mib": round(_rss_mib() - baseline, 1),
        "disk_mib": _disk_mib(folder, wal=False),
        "wal_mib": _disk_mib(folder / "wal"),
        "search": results,
    }
    shard.close()
    return report


def _child(argv: list[str]) -> None:
    step, layout, folder, data = argv
    work = _build if step == "build" else _search
    print(json.dumps(work(layout, Path(folder), Path(data))))


def _run(step: str, layout: str, folder: Path, data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "evals.bench.quantization", "--child", step, layout, str(folder), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} {layout} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--child"]:
        return _child(args_list[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=2_000)
    args = parser.parse_args(args_list)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        points, queries = _vectors(args.points, args.queries, args.clusters, seed=11)
        # Exact neighbours by cosine (the vectors are unit length): the ground truth for recall.
        truth = np.argsort(-(queries @ points.T), axis=1)[:, :10]
        np.save(data / "points.npy", points)
        np.save(data / "queries.npy", queries)
        np.save(data / "truth.npy", truth)
        layouts: dict[str, Any] = {}
        for layout in ("float", "int8"):
            folder = data / layout
            log(f"{layout}: building {args.points:,} points and the HNSW index…")
            built = _run("build", layout, folder, data)
            log(f"{layout}: searching {args.queries} queries…")
            layouts[layout] = {**built, **_run("search", layout, folder, data)}
    float_mib, int8_mib = layouts["float"]["index_rss_mib"], layouts["int8"]["index_rss_mib"]
    emit(
        {
            "benchmark": "quantization",
            "points": args.points,
            "queries": args.queries,
            "clusters": args.clusters,
            "dimension": DIM,
            "layouts": layouts,
            "int8_rss_ratio": round(int8_mib / float_mib, 3) if float_mib else None,
            # Raw float32 vectors alone, for scale: what int8 divides by four.
            "float_vectors_mib": round(args.points * DIM * 4 / 2**20, 1),
        }
    )


if __name__ == "__main__":
    main()
