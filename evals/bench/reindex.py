"""What users feel of the command line: `bastion --help`, indexing a folder, and re-indexing it when
nothing changed — whole commands, start-up included, each a fresh process.

    python -m evals.bench.reindex [--files 404] [--repeat 5]

The folder: the first N weaknesses of the CWE catalogue (PyPI cwe2, as the retrieval-cwe suite uses
it), one Markdown file each. Reports the median wall time of `bastion --help` and of the no-op
re-index over `--repeat` runs, the first index's time and chunks/s, and which heavy libraries the no-op
re-index imported (none is the point).
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
        log(f"indexing {args.files} files…")
        first_s, out, _ = _bastion(["index", str(folder), "--json"], env)
        first = json.loads(out)
        noops: list[float] = []
        loaded: list[str] = []
        for _ in range(args.repeat):
            seconds, out, loaded = _bastion(["index", str(folder), "--json"], env)
            assert json.loads(out)["documents_unchanged"] == args.files, out
            noops.append(seconds)
    emit(
        {
            "benchmark": "reindex",
            "files": args.files,
            "chunks": first["chunks_written"],
            "help_s": round(statistics.median(helps), 3),
            "help_target_s": 0.5,
            "first_index_s": round(first_s, 1),
            "first_index_chunks_per_s": round(first["chunks_written"] / first_s, 1),
            "noop_reindex_s": round(statistics.median(noops), 3),
            "noop_reindex_all_s": [round(s, 3) for s in noops],
            "noop_reindex_target_s": 3.0,
            "noop_reindex_heavy_imports": loaded,
        },
        data=corpus.data,
    )


if __name__ == "__main__":
    main()
