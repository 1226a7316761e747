"""Ingestion throughput: Bastion's whole indexing pipeline versus raw `SentenceTransformer.encode`.

    python -m evals.bench.ingest [--corpus DIR] [--pattern GLOB] [--max-files N]
        [--backend torch|onnx|onnx-int8] [--device cpu|cuda] [--precision auto|fp32|fp16]
        [--planning-workers N]

On a GPU box (≥ 50k chunks: the standard library's sources, recursively):
    python -m evals.bench.ingest --pattern '**/*.py' --max-files 100000 --device cuda

Both run in this process on the same chunk texts: first Bastion indexes the corpus end to end
(load, chunk with the tokenizer, embed, BM25, write to Qdrant Edge, manifest), then the same texts
are encoded raw. Default corpus: the running Python's standard library sources (real code, always
installed). Prints chunks/s for both, their ratio (target >= 0.9), and peak RSS.

Then the pipeline once more with the model left out (every vector a constant): loading, chunking with
the tokenizer, BM25, store writes and the manifest alone. That rate is the ceiling of the CPU side,
which a GPU must be fed at: with the model free, ingestion could go no faster than this.
"""

from __future__ import annotations

import argparse
import sysconfig
import tempfile
import time
from pathlib import Path

from evals.bench._common import Recording, emit, log, make_embedder, peak_rss_mib, quiet_models
from retrieval import Embedder, SentenceTransformerEmbedder


class _NoModel(Recording):
    """The embedder's tokenizer without its model: every vector the same unit vector."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self._unit = [1.0] + [0.0] * (inner.dimension - 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._unit] * len(texts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--max-files", type=int, default=120)
    parser.add_argument("--pattern", default="*.py", help="which files of the corpus folder to index")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the torch backend runs Bastion's and the raw encode (cuda: a GPU)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16"),
        default="auto",
        help="the torch weights, Bastion's and the raw encode's alike (auto: fp16 on cuda, else fp32)",
    )
    parser.add_argument(
        "--planning-workers",
        type=int,
        default=None,
        help="processes that chunk (default: the indexer's, one per core up to 8; 1: chunk in this one)",
    )
    parser.add_argument(
        "--backend", default="torch", help="what runs MiniLM inside Bastion; raw encode is always PyTorch"
    )
    args = parser.parse_args(argv)
    quiet_models()

    from retrieval import EdgeStore, Indexer, Manifest, default_model_path

    files = (
        sorted(args.corpus.glob(args.pattern))[: args.max_files] if args.corpus.is_dir() else [args.corpus]
    )
    embedder = make_embedder(args.backend, device=args.device, precision=args.precision)
    embedder.embed_query("warm up the model")  # load weights outside both timings
    raw = SentenceTransformerEmbedder(default_model_path(), device=args.device, precision=args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "edge", dimension=embedder.dimension)
        manifest = Manifest(Path(tmp) / "manifest.sqlite")
        recorder = Recording(embedder)
        log(f"indexing {len(files)} files…")
        started = time.perf_counter()
        indexer = Indexer(
            recorder,
            store,
            manifest=manifest,
            batch_size=args.batch_size,
            planning_workers=args.planning_workers,
        )
        report = indexer.index(files, owner="bench")
        bastion_s = time.perf_counter() - started
        texts = recorder.texts
        store.close()
        manifest.close()
        log("indexing the same files with the model left out…")
        store = EdgeStore(Path(tmp) / "edge-no-model", dimension=embedder.dimension)
        manifest = Manifest(Path(tmp) / "manifest-no-model.sqlite")
        started = time.perf_counter()
        cpu_side = Indexer(
            _NoModel(embedder),
            store,
            manifest=manifest,
            batch_size=args.batch_size,
            planning_workers=args.planning_workers,
        ).index(files, owner="bench")
        cpu_side_s = time.perf_counter() - started
        store.close()
        manifest.close()

    log(f"encoding the same {len(texts)} chunks raw…")
    model = raw._load()
    model.encode(texts[:32])  # warm
    started = time.perf_counter()
    model.encode(texts, batch_size=raw.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    raw_s = time.perf_counter() - started
    bastion_rate, raw_rate = report.chunks_written / bastion_s, len(texts) / raw_s
    emit(
        {
            "benchmark": "ingest",
            "files": len(files),
            "documents_indexed": report.documents_indexed,
            "chunks": report.chunks_written,
            "bastion_seconds": round(bastion_s, 3),
            "bastion_chunks_per_s": round(bastion_rate, 1),
            "raw_encode_seconds": round(raw_s, 3),
            "raw_encode_chunks_per_s": round(raw_rate, 1),
            "ratio_bastion_to_raw": round(bastion_rate / raw_rate, 3),
            "cpu_side_seconds": round(cpu_side_s, 3),
            "cpu_side_chunks_per_s": round(cpu_side.chunks_written / cpu_side_s, 1),
            "target_ratio": 0.9,
            "peak_rss_mib": peak_rss_mib(),
            "backend": args.backend,
            "device": args.device,
            "precision": raw.precision,
            "planning_workers": indexer.planning_workers,
            "indexed_text_chars": sum(len(t) for t in texts),
        }
    )


if __name__ == "__main__":
    main()
