"""The embedding backends side by side: PyTorch, ONNX Runtime, ONNX Runtime with int8 weights.

    python -m evals.bench.embed_backends [--suites retrieval-cwe retrieval-banking docs-faq]
        [--backends torch onnx onnx-int8] [--texts 1000] [--queries 200] [--rounds 3] [--limit N]

All in one process, so the ratios compare like with like on a noisy machine:
- quality: each suite's corpus is indexed with each backend by Bastion's own pipeline and its queries
  run in dense and hybrid mode; per-query nDCG@10 is compared with PyTorch's as a paired difference
  with a 95 % bootstrap interval (the target: within 0.005);
- ingestion speed: the chunk texts the first suite's index embedded, encoded by each backend in
  turn, `--rounds` times with the order rotated; chunks/s is the median round;
- query speed: `--queries` distinct questions, each embedded once by every backend in rotating
  order (no query cache), p50/p95 of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from evals._context import EvalContext
from evals._corpora import Corpus, banking_corpus, cwe_corpus, python_faq_corpus
from evals._result import DataVersion
from evals._retrieval import _run_mode, index_corpus, index_limit, sample_queries
from evals._stats import bootstrap
from evals.bench._common import Recording, emit, log, make_embedder, percentiles, quiet_models
from retrieval import Embedder, SearchMode

LOADERS = {"retrieval-cwe": cwe_corpus, "retrieval-banking": banking_corpus, "docs-faq": python_faq_corpus}
MODES: tuple[SearchMode, ...] = ("dense", "hybrid")
TOLERANCE = 0.005


def quality(
    corpus: Corpus, embedders: dict[str, Embedder], cache_dir: Path
) -> tuple[dict[str, Any], list[str]]:
    """Per backend and mode: nDCG@10, and its paired difference from the first backend's."""
    per_query: dict[str, list[float]] = {}
    ingest_s: dict[str, float] = {}
    texts: list[str] = []
    for name, embedder in embedders.items():
        recording = Recording(embedder)
        context = EvalContext(cache_dir=cache_dir, embedder=recording, modes=MODES)
        with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
            started = time.perf_counter()
            retriever, store, names = index_corpus(context, corpus, Path(tmp))
            ingest_s[name] = round(time.perf_counter() - started, 2)
            try:
                for mode in MODES:
                    scored, _ = _run_mode(context, retriever, names, list(corpus.queries), mode, corpus.name)
                    per_query[f"{name}/{mode}"] = [s["ndcg@10"] for s in scored]
            finally:
                store.close()
        texts = texts or recording.texts
        log(f"{corpus.name}: {name} indexed in {ingest_s[name]} s")
    base = next(iter(embedders))
    out: dict[str, Any] = {"queries": len(corpus.queries), "chunks": len(texts), "ingest_s": ingest_s}
    for mode in MODES:
        reference = per_query[f"{base}/{mode}"]
        row: dict[str, Any] = {}
        for name in embedders:
            scores = per_query[f"{name}/{mode}"]
            entry: dict[str, Any] = {"ndcg@10": round(statistics.fmean(scores), 4)}
            if name != base:
                diffs = [a - b for a, b in zip(scores, reference, strict=True)]
                low, high = bootstrap(diffs)
                mean = statistics.fmean(diffs)
                entry |= {
                    "diff": round(mean, 4),
                    "diff_ci95": [round(low, 4), round(high, 4)],
                    "queries_changed": sum(1 for d in diffs if d != 0),
                    "within_tolerance": abs(mean) <= TOLERANCE,
                }
            row[name] = entry
        out[mode] = row
    return out, texts


def ingest_speed(embedders: dict[str, Embedder], texts: list[str], rounds: int) -> dict[str, Any]:
    names = list(embedders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            embedders[name].embed_documents(texts)
            times[name].append(time.perf_counter() - started)
    base = names[0]
    out: dict[str, Any] = {"texts": len(texts), "rounds": rounds}
    for name in names:
        rate = len(texts) / statistics.median(times[name])
        out[name] = {"chunks_per_s": round(rate, 1), "round_s": [round(t, 2) for t in times[name]]}
    for name in names[1:]:
        out[name]["speedup"] = round(out[name]["chunks_per_s"] / out[base]["chunks_per_s"], 2)
    return out


def query_speed(embedders: dict[str, Embedder], queries: list[str]) -> dict[str, Any]:
    names = list(embedders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i, query in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            embedders[name].embed_query(query)
            samples[name].append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {name: percentiles(samples[name]) for name in names}
    for name in names[1:]:
        out[name]["speedup_p50"] = round(out[names[0]]["p50_ms"] / out[name]["p50_ms"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suites", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--texts", type=int, default=1000, help="chunk texts per ingestion round")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, help="queries per suite (a CI-sized run; not comparable)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "bastion")
    args = parser.parse_args(argv)
    quiet_models()

    embedders = {name: make_embedder(name, query_cache=False) for name in args.backends}
    for embedder in embedders.values():  # load (and export) outside every timing
        embedder.embed_documents(["warm up the model"])
    result: dict[str, Any] = {
        "benchmark": "embed_backends",
        "backends": args.backends,
        "tolerance": TOLERANCE,
        "limit": args.limit,
        "suites": {},
    }
    data: list[DataVersion] = []
    texts: list[str] = []
    questions: list[str] = []
    for suite in args.suites:
        full = LOADERS[suite](args.cache_dir)
        data += full.data
        queries = sample_queries(full.queries, args.limit, seed=0)
        corpus = full.subset(queries, max_documents=index_limit(args.limit))
        result["suites"][suite], embedded = quality(corpus, embedders, args.cache_dir)
        texts = texts or embedded
        questions = questions or list(dict.fromkeys(q.text for q in corpus.queries))
    result["ingest"] = ingest_speed(embedders, texts[: args.texts], args.rounds)
    result["query"] = query_speed(embedders, questions[: args.queries])
    emit(result, data=data)


if __name__ == "__main__":
    main()
