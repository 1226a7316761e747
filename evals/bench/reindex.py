"""What users feel of the command line: `bastion --help`, indexing a folder, and re-indexing it when
nothing changed — whole commands, start-up included, each a fresh process.

    python -m evals.bench.reindex [--files 404] [--repeat 5] [--backends torch onnx onnx-int8]

The folder: the first N weaknesses of the CWE catalogue (PyPI cwe2, as the retrieval-cwe suite uses
it), one Markdown file each. Reports the median wall time of `bastion --help` and of the no-op
re-index over `--repeat` runs, and which heavy libraries the no-op re-index imported (none is the
point). The first index is run once per embedding backend, each into a fresh data directory, and its
chunks/s compared with raw PyTorch `SentenceTransformer.encode` of the same chunk texts in this
process (model loaded beforehand): the whole command against the bare model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from evals._corpora import cwe_corpus
from evals.bench._common import emit, log

HEAVY = ("torch", "sentence_transformers", "transformers", "agents", "langgraph", "qdrant_client", "evals")
_PROBE = """
import sys, json
from bastion.cli import main
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["bastion", *args]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def _bastion(args: list[str], env: dict[str, str]) -> tuple[float, str, list[str]]:
    """Runs one `bastion` command in a fresh interpreter; (wall seconds, stdout, heavy modules loaded)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bastion {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return elapsed, done.stdout, loaded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=404)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion")
    corpus = cwe_corpus(cache)
    with tempfile.TemporaryDirectory() as tmp:
        folder, data = Path(tmp) / "cwe", Path(tmp) / "data"
        folder.mkdir()
        for doc_id in sorted(corpus.documents)[: args.files]:
            (folder / f"{doc_id}.md").write_text(corpus.documents[doc_id].text, encoding="utf-8")
        env = {**os.environ, "BASTION_DATA_DIR": str(data), "BASTION_LOCAL_AUTO_START": "false"}
        helps = [_bastion(["--help"], env)[0] for _ in range(args.repeat)]
        first: dict[str, dict[str, float]] = {}
        for backend in args.backends:
            log(f"indexing {args.files} files with the {backend} backend…")
            backend_env = {
                **env,
                "BASTION_DATA_DIR": str(Path(tmp) / f"data-{backend}"),
                "BASTION_RETRIEVAL_EMBEDDING_BACKEND": backend,
            }
            seconds, out, _ = _bastion(["index", str(folder), "--json"], backend_env)
            chunks = json.loads(out)["chunks_written"]
            first[backend] = {"seconds": round(seconds, 1), "chunks_per_s": round(chunks / seconds, 1)}
        _bastion(["index", str(folder), "--json"], env)  # the default backend, for the no-op runs
        noops: list[float] = []
        loaded: list[str] = []
        for _ in range(args.repeat):
            seconds, out, loaded = _bastion(["index", str(folder), "--json"], env)
            assert json.loads(out)["documents_unchanged"] == args.files, out
            noops.append(seconds)
        raw = _raw_encode(folder)
    for figures in first.values():
        figures["vs_raw_pytorch"] = round(figures["chunks_per_s"] / raw["chunks_per_s"], 2)
    emit(
        {
            "benchmark": "reindex",
            "files": args.files,
            "chunks": raw["chunks"],
            "help_s": round(statistics.median(helps), 3),
            "help_target_s": 0.5,
            "first_index": first,
            "first_index_target_vs_raw": 1.5,
            "raw_pytorch_encode": raw,
            "noop_reindex_s": round(statistics.median(noops), 3),
            "noop_reindex_all_s": [round(s, 3) for s in noops],
            "noop_reindex_target_s": 3.0,
            "noop_reindex_heavy_imports": loaded,
        },
        data=corpus.data,
    )


def _raw_encode(folder: Path) -> dict[str, float]:
    """The bare model's rate: PyTorch `encode` (batch 32, as the indexer's CPU batches) of exactly the
    texts `bastion index` embeds for this folder, the model loaded outside the timing."""
    from retrieval import (
        Indexer,
        SentenceTransformerEmbedder,
        VectorStore,
        default_model_path,
        indexed_text,
        plan_chunks,
    )
    from retrieval import load_documents as load

    embedder = SentenceTransformerEmbedder(default_model_path(), device="cpu")
    budget = Indexer(embedder, cast(VectorStore, None)).budget  # the indexer's own budget rule
    texts = [
        indexed_text(chunk)
        for document in load([folder]).documents
        for chunk in plan_chunks(document, acl=["user:bench"], budget=budget, measure=embedder.count_tokens)
    ]
    model = embedder._load()
    model.encode(texts[:32])
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 1),
        "chunks_per_s": round(len(texts) / seconds, 1),
    }


if __name__ == "__main__":
    main()
