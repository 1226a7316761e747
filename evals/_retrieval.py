"""The retrieval suites: index a third-party corpus with Bastion's own pipeline, ask its queries in
each search mode, and score where the relevant documents land.

Documents are written to files with neutral names (d00042.md), so nothing but their text can match a
query. Hits are chunks; a document's rank is that of its best chunk. With several relevant documents
(the banking tasks need up to a handful), Recall@k is the share of them in the first k documents, nDCG
uses binary gains, and MRR the first relevant one.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from evals._assisted import assisted_metrics
from evals._context import EvalContext
from evals._corpora import Corpus, Query, banking_corpus, code_corpus, cwe_corpus, python_faq_corpus
from evals._errors import DatasetError, UsageError
from evals._result import EvalResult, Metric, Series, now
from evals._stats import mean_metric
from retrieval import EdgeStore, Indexer, IndexEvent, Principal, Retriever, SearchMode

SEARCH_DEPTH = 50  # chunks per query; several chunks of one document collapse into one rank
CURVE_KS = (1, 2, 3, 5, 10, 20)
READER = Principal(user="eval")


def index_limit(limit: int | None) -> int | None:
    """With --limit, the index holds the queries' relevant documents plus others up to this many: a
    CI-sized run is then minutes, not hours, and its numbers are flagged as not comparable."""
    return None if limit is None else max(100, 10 * limit)


def sample_queries(queries: Sequence[Query], limit: int | None, seed: int) -> list[Query]:
    if limit is None or limit >= len(queries):
        return list(queries)
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    return random.Random(seed).sample(list(queries), limit)


def scores(ranked: list[str], relevant: frozenset[str]) -> dict[str, float]:
    """Per-query scores from the ranked document ids (best first)."""
    positions = [i for i, doc in enumerate(ranked, start=1) if doc in relevant]
    found = {k: sum(1 for p in positions if p <= k) / len(relevant) for k in CURVE_KS}
    dcg = sum(1 / math.log2(p + 1) for p in positions if p <= 10)
    ideal = sum(1 / math.log2(p + 1) for p in range(1, min(len(relevant), 10) + 1))
    return {
        "ndcg@10": dcg / ideal,
        "mrr": 1 / positions[0] if positions else 0.0,
        **{f"recall@{k}": v for k, v in found.items()},
    }


def write_corpus(corpus: Corpus, folder: Path) -> dict[str, str]:
    """Writes each document to a file; returns {path relative to `folder`: document id}."""
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for i, (doc_id, doc) in enumerate(sorted(corpus.documents.items())):
        name = doc.path or f"d{i:05d}{doc.suffix}"
        target = folder / name
        if not target.resolve().is_relative_to(folder.resolve()):
            raise DatasetError(f"{corpus.name}: document {doc_id!r} would be written outside the corpus")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(doc.text, encoding="utf-8")
        names[name] = doc_id
    return names


def index_corpus(
    context: EvalContext, corpus: Corpus, root: Path
) -> tuple[Retriever, EdgeStore, dict[str, str]]:
    names = write_corpus(corpus, root / "docs")
    store = EdgeStore(root / "index", dimension=context.embedder.dimension)

    def on_event(event: IndexEvent) -> None:
        if event.kind == "planned":
            context.progress.start(f"{corpus.name}: indexing {len(names)} documents", event.chunks)
        elif event.kind == "indexed":
            context.progress.advance(event.chunks)

    started = time.perf_counter()
    Indexer(context.embedder, store, chunk_tokens=context.chunk_tokens).index(
        [root / "docs"], owner=READER.user, progress=on_event
    )
    context.costs[corpus.name] = {
        "ingest_s": round(time.perf_counter() - started, 1),
        "index_mb": round(
            sum(f.stat().st_size for f in (root / "index").rglob("*") if f.is_file()) / 2**20, 2
        ),
    }
    names = {(root / "docs" / name).resolve().as_posix(): doc_id for name, doc_id in names.items()}
    return Retriever(context.embedder, store, fusion=context.fusion), store, names


async def evaluate(context: EvalContext, suite: str, corpus: Corpus) -> EvalResult:
    started = now()
    queries = sample_queries(corpus.queries, context.limit, context.seed)
    used = corpus.subset(queries, max_documents=index_limit(context.limit))
    metrics: list[Metric] = []
    series: list[Series] = []
    details: dict[str, object] = {"documents": len(used.documents), "queries": len(queries)}
    with tempfile.TemporaryDirectory(prefix="bastion-eval-") as tmp:
        retriever, store, names = index_corpus(context, used, Path(tmp))
        try:
            details["chunks"] = store.count()
            details.update(context.costs.get(used.name, {}))
            for mode in context.modes:
                per_query, per_document = _run_mode(context, retriever, names, queries, mode, used.name)
                for name in ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr"):
                    metrics.append(mean_metric(f"{mode}/{name}", [s[name] for s in per_query]))
                # Documents ranked as `bastion search --by document` ranks them (Retriever.search_documents).
                for name in ("ndcg@10", "recall@10", "mrr"):
                    values = [s[name] for s in per_document]
                    metrics.append(mean_metric(f"{mode}-by-document/{name}", values))
                series.append(
                    Series(
                        chart="Recall@k",
                        label=mode,
                        x=list(CURVE_KS),
                        y=[
                            round(sum(s[f"recall@{k}"] for s in per_query) / len(per_query), 4)
                            for k in CURVE_KS
                        ],
                        x_label="k (documents returned)",
                        y_label="recall",
                    )
                )
                if context.assists:
                    metrics += await assisted_metrics(
                        context,
                        retriever,
                        lambda query, sources: _score_sources(names, query, sources),
                        queries,
                        per_query,
                        mode,
                        reader=READER,
                        depth=SEARCH_DEPTH,
                        corpus=used.name,
                    )
        finally:
            store.close()
    notes = [
        f"{len(queries)} of {len(corpus.queries)} queries; {len(used.documents)} of "
        f"{len(corpus.documents)} documents indexed."
    ]
    if context.limit is not None:
        notes.append(
            "A limited run: a smaller index makes retrieval easier; compare only with runs of the same limit."
        )
    return context.result(
        suite,
        started,
        data=corpus.data,
        metrics=metrics,
        series=series,
        notes=notes,
        details=details,
        modes=list(context.modes),
        assists=list(context.assists),
        assist_limit=context.assist_limit,
        chunk_tokens=context.chunk_tokens,
        fusion=context.fusion,
    )


def _run_mode(
    context: EvalContext,
    retriever: Retriever,
    names: dict[str, str],
    queries: list[Query],
    mode: SearchMode,
    corpus: str,
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Per-query scores with documents ranked by their best chunk, and as `search_documents` ranks
    them (best chunk plus a decayed sum of the others)."""
    context.progress.start(f"{corpus}: {len(queries)} queries, {mode}", len(queries))
    by_chunk, by_document = [], []
    for query in queries:
        hits = retriever.search(query.text, READER, limit=SEARCH_DEPTH, mode=mode)
        by_chunk.append(_score_sources(names, query, [Path(h.chunk.source) for h in hits]))
        documents = retriever.search_documents(query.text, READER, limit=max(CURVE_KS), mode=mode)
        by_document.append(scores([names[Path(d.source).as_posix()] for d in documents], query.relevant))
        context.progress.advance()
    return by_chunk, by_document


def _score_sources(names: dict[str, str], query: Query, sources: list[Path]) -> dict[str, float]:
    """A query's scores from its hits' source files, best first (a document ranks by its best chunk)."""
    return scores(list(dict.fromkeys(names[p.as_posix()] for p in sources)), query.relevant)


def _suite(name: str, load: Callable[[Path], Corpus]) -> Callable[[EvalContext], Awaitable[EvalResult]]:
    async def run(context: EvalContext) -> EvalResult:
        return await evaluate(context, name, load(context.cache_dir))

    run.__name__ = name.replace("-", "_")
    return run


retrieval_cwe = _suite("retrieval-cwe", cwe_corpus)
retrieval_banking = _suite("retrieval-banking", banking_corpus)
docs_faq = _suite("docs-faq", python_faq_corpus)
retrieval_code = _suite("retrieval-code", code_corpus)
