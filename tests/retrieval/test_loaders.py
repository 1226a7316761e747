from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import LoaderError, load_documents


def test_reads_markdown_and_text_and_skips_other_types_in_folders(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nalpha")
    (tmp_path / "b.txt").write_text("\ufeffbeta")
    (tmp_path / "c.bin").write_bytes(b"\0\1")
    (tmp_path / ".hidden.md").write_text("secret")
    result = load_documents([tmp_path])
    assert sorted(Path(d.source).name for d in result.documents) == ["a.md", "b.txt"]
    assert [d.text for d in result.documents if d.source.endswith("b.txt")] == ["beta"], "BOM is dropped"
    assert [Path(p).name for p in result.skipped] == ["c.bin"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.md", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no indexable file"),
        (lambda p: (p / "bin.txt").write_bytes(b"PK\x03\x04\x00\x00binary") and p / "bin.txt", "binary"),
        (
            lambda p: (p / "latin.txt").write_bytes("caf\xe9".encode("latin-1")) and p / "latin.txt",
            "not valid UTF-8",
        ),
        (lambda p: (p / "x.pdf").write_bytes(b"%PDF") and p / "x.pdf", "unsupported file type .pdf"),
        (lambda p: (p / "blank.md").write_text("  \n") and p / "blank.md", "is empty"),
    ],
)
def test_bad_inputs_are_named(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LoaderError, match=message):
        load_documents([make(tmp_path)])


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("fine")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LoaderError) as info:
        load_documents([tmp_path, tmp_path / "gone.txt"])
    assert len(info.value.problems) == 2
