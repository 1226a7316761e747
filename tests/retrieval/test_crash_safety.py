"""SIGKILL the indexer at random moments: no document is ever half visible, nothing reported as
indexed is lost, and the next run completes the job. Real MiniLM, real Qdrant Edge, real kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval import EdgeStore, SentenceTransformerEmbedder, document_acl, load_documents, plan_chunks
from tests.conftest import CORPUS

DRIVER = """
import sys
from pathlib import Path
from retrieval import EdgeStore, Indexer, Manifest, SentenceTransformerEmbedder, default_model_path
corpus, index = Path(sys.argv[1]), Path(sys.argv[2])
store = EdgeStore(index / "edge", dimension=384)
manifest = Manifest(index / "manifest.sqlite")
def report(event):
    print(event.kind, event.source, flush=True)
Indexer(SentenceTransformerEmbedder(default_model_path()), store, manifest=manifest, batch_size=16).index(
    [corpus], owner="local", progress=report
)
store.close()
print("done", flush=True)
"""


def _make_corpus(folder: Path, copies: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(copies):
        for original in sorted(CORPUS.iterdir()):
            text = original.read_text().replace("Halvorsen", f"Halvorsen {n}")
            (folder / f"{n:02d}-{original.name}").write_text(text)


def _planned(folder: Path, embedder: SentenceTransformerEmbedder) -> dict[str, set[str]]:
    acl = document_acl(owner="local", groups=frozenset())
    docs = load_documents([folder]).documents
    budget, measure = min(128, embedder.max_tokens), embedder.count_tokens  # as the driver's Indexer does
    return {
        d.source: {c.chunk_id for c in plan_chunks(d, acl=acl, budget=budget, measure=measure)} for d in docs
    }


def _run(corpus: Path, index: Path, *, kill_after: float | None) -> list[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(corpus), str(index)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    if kill_after is None:
        lines = process.stdout.read().splitlines()
        assert process.wait(timeout=300) == 0
        return lines
    # Wait until the model is loaded and writing has begun, then kill at a random moment.
    for line in process.stdout:
        lines.append(line.strip())
        if line.startswith("planned"):
            break
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    lines += [line.strip() for line in process.stdout.read().splitlines()]
    process.wait(timeout=30)
    return lines


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_points_never_half_indexes(
    tmp_path: Path, seed: int, embedder: SentenceTransformerEmbedder
) -> None:
    rng = random.Random(seed)
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _make_corpus(corpus, copies=6)
    versions: dict[str, list[set[str]]] = {}
    interrupted = 0
    for round_ in range(3):
        if round_ == 1:  # change some files between kills, so replacements are interrupted too
            for f in sorted(corpus.iterdir())[::4]:
                f.write_text(f.read_text() + f"\n\nAddendum {round_}: review yearly.\n")
        planned = _planned(corpus, embedder)
        for source, ids in planned.items():
            versions.setdefault(source, []).append(ids)
        lines = _run(corpus, index, kill_after=rng.uniform(0.0, 3.0))
        reported = {line.split(" ", 1)[1] for line in lines if line.startswith(("indexed", "unchanged"))}
        interrupted += "done" not in lines and len(reported) < len(planned)
        store = EdgeStore(index / "edge", dimension=384)
        try:
            for source in planned:
                live = {pid for pid, is_live in store.source_points(source).items() if is_live}
                assert not live or any(live == v for v in versions[source]), f"{source} is half visible"
                if source in reported:
                    assert live == planned[source], f"{source} was reported indexed but is not all there"
        finally:
            store.close()
    assert interrupted, "no kill landed mid-run; the test proved nothing"

    final = _run(corpus, index, kill_after=None)
    assert final[-1] == "done"
    planned = _planned(corpus, embedder)
    store = EdgeStore(index / "edge", dimension=384)
    try:
        for source, ids in planned.items():
            assert store.source_points(source) == dict.fromkeys(ids, True), f"{source} not completed"
        assert store.sources() == set(planned)
    finally:
        store.close()
