"""Start-up recovery of uploads a crash interrupted, on the real store, manifest and indexer."""

from __future__ import annotations

from pathlib import Path

from bastion.api._documents import recover_uploads
from retrieval import EdgeStore, Indexer, Manifest, SentenceTransformerEmbedder


def test_interrupted_uploads_are_rolled_back_and_finished_ones_kept(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "documents"
    folders = {name: root / (name * 16) for name in "abc"}
    for name, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / f"{name}.md").write_text(f"# {name}\n\nPolicy {name} says something worth finding.\n")
        (folder / f"{name}.md.groups").write_text("staff\n")
    (root / ".upload-x1y2").write_bytes(b"half an upload")
    store = EdgeStore(tmp_path / "index", dimension=384)
    manifest = Manifest(tmp_path / "manifest.sqlite")
    staff = frozenset({"staff"})
    Indexer(embedder, store, manifest=manifest).index([folders["a"] / "a.md"], owner="root", groups=staff)
    # b: moved into place, then killed before indexing. c: killed after the store write, before the manifest.
    Indexer(embedder, store).index([folders["c"] / "c.md"], owner="root", groups=staff)
    sources = {name: str((folder / f"{name}.md").resolve()) for name, folder in folders.items()}
    assert store.source_points(sources["c"])

    assert recover_uploads(root, store, manifest) == [folders["b"].name, folders["c"].name]
    assert sorted(p.name for p in root.iterdir()) == [folders["a"].name]
    assert store.source_points(sources["c"]) == {} and store.source_points(sources["a"])
    assert [e.source for e in manifest.entries()] == [sources["a"]]
    assert recover_uploads(root, store, manifest) == []  # nothing left to recover
    store.close()
