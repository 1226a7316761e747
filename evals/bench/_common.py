"""Helpers the benchmarks share: percentiles, peak memory, and one JSON object on stdout."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evals._bench import bench_result, current
from evals._result import DataVersion
from retrieval import Embedder, Precision, Retriever, SharesTokenCounter


def quiet_models() -> None:
    """Benchmarks load models from local folders only, and keep their progress bars off stdout."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class Recording:
    """The embedder as the indexer sees it, keeping the texts it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def token_counter(self) -> Callable[[str], int] | None:
        """The inner embedder's, so the indexer may chunk in worker processes as it would unwrapped."""
        return self.inner.token_counter() if isinstance(self.inner, SharesTokenCounter) else None


def make_embedder(
    backend: str, *, query_cache: bool = True, device: str = "cpu", precision: Precision = "auto"
) -> Embedder:
    """The packaged MiniLM through `backend` (torch, onnx or onnx-int8; torch on `device` at
    `precision`), the ONNX graphs from the cache `bastion model install` exported them to (exported
    now if missing)."""
    from retrieval import OnnxEmbedder, SentenceTransformerEmbedder, default_model_path

    size = 1024 if query_cache else 0
    if backend == "torch":
        return SentenceTransformerEmbedder(
            default_model_path(), device=device, precision=precision, query_cache_size=size
        )
    if device != "cpu":
        raise SystemExit(f"the {backend} backend runs on the CPU; use --backend torch on {device}")
    if backend not in ("onnx", "onnx-int8"):
        raise SystemExit(f"unknown embedding backend {backend!r}: torch, onnx or onnx-int8")
    cache = Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion")
    return OnnxEmbedder(
        default_model_path(),
        cache_dir=cache / "embedders",
        quantized=backend == "onnx-int8",
        query_cache_size=size,
        log=log,
    )


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {"p50_ms": round(cut[49], 3), "p95_ms": round(cut[94], 3), "n": len(ordered)}


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def emit(result: dict[str, Any], *, data: Sequence[DataVersion] = ()) -> None:
    """Prints the benchmark's report as an evaluation result (bastion-eval/1), its raw figures in
    `details` and the third-party data it used in `data`, so benchmark runs compare like suite runs."""
    done = bench_result(result, started=current.started, argv=current.argv, data=data)
    sys.stdout.write(done.to_json() + "\n")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def indexed_corpus(corpus: Path) -> Iterator[tuple[Retriever, Path]]:
    """MiniLM over a throw-away Qdrant Edge index of `corpus` (owned by user `bench`), and the temporary
    folder it lives in, for whatever else a benchmark needs to keep beside it."""
    # Imported here: the embedding-only benchmarks must run where no store engine is installed.
    from retrieval import EdgeStore, Indexer, SentenceTransformerEmbedder, default_model_path

    embedder = SentenceTransformerEmbedder(default_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "index", dimension=embedder.dimension)
        try:
            Indexer(embedder, store).index([corpus], owner="bench")
            yield Retriever(embedder, store), Path(tmp)
        finally:
            store.close()
