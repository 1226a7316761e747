"""Embedding throughput of Bastion's embedder on real chunks, per device and batch size.

    python -m evals.bench.embed_throughput [--device auto cpu cuda] [--batch-sizes 32 128 512]
                                           [--corpus DIR] [--max-chunks N] [--model DIR]

The chunks are the running Python's standard-library sources cut by Bastion's own chunker with the
model's tokenizer (as indexing does). `auto` is what Bastion uses by default: CUDA when torch sees a
GPU, else the CPU. Prints chunks/s per device and batch size, and the GPU's name when there is one.
"""

from __future__ import annotations

import argparse
import sysconfig
import time
from pathlib import Path

from evals.bench._common import emit, log, peak_rss_mib, quiet_models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", nargs="+", default=["auto"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--max-chunks", type=int, default=4000)
    parser.add_argument("--model", type=Path, default=None, help="a sentence-transformers folder")
    args = parser.parse_args(argv)
    quiet_models()

    import torch

    from retrieval import (
        LoaderError,
        SentenceTransformerEmbedder,
        chunk_text,
        default_model_path,
        load_documents,
    )

    model = args.model or default_model_path()
    probe = SentenceTransformerEmbedder(model, device="cpu")
    texts: list[str] = []
    for file in sorted(args.corpus.glob("*.py")):
        try:
            [document] = load_documents([file]).documents
        except LoaderError:
            continue  # an empty or unreadable file: nothing to measure
        spans = chunk_text(document.text, budget=128, measure=probe.count_tokens, sections=document.sections)
        texts += [document.text[s.start : s.end] for s in spans]
        if len(texts) >= args.max_chunks:
            break
    texts = texts[: args.max_chunks]
    log(f"{len(texts)} chunks")
    runs = []
    for device in args.device:
        embedder = SentenceTransformerEmbedder(model, device=device)
        for batch_size in args.batch_sizes:
            embedder.batch_size = batch_size
            embedder.embed_documents(texts[: batch_size * 2])  # warm up kernels and caches
            if embedder.device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            embedder.embed_documents(texts)
            if embedder.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            log(f"{device} -> {embedder.device}, batch {batch_size}: {len(texts) / seconds:.0f} chunks/s")
            runs.append(
                {
                    "device_setting": device,
                    "device": embedder.device,
                    "batch_size": batch_size,
                    "seconds": round(seconds, 3),
                    "chunks_per_s": round(len(texts) / seconds, 1),
                }
            )
    emit(
        {
            "benchmark": "embed_throughput",
            "chunks": len(texts),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "runs": runs,
            "peak_rss_mib": peak_rss_mib(),
        }
    )


if __name__ == "__main__":
    main()
