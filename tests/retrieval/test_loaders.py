from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from retrieval import LoaderError, load_documents
from tests.retrieval.fixtures import HTML, PYTHON, make_docx, make_pdf, make_png


def _one(path: Path):  # type: ignore[no-untyped-def]
    [document] = load_documents([path]).documents
    return document


def test_reads_markdown_and_text_and_skips_other_types_in_folders(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nalpha")
    (tmp_path / "b.txt").write_text("\ufeffbeta")
    (tmp_path / "c.bin").write_bytes(b"\0\1")
    (tmp_path / ".hidden.md").write_text("secret")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "x.js").write_text("vendored()")
    result = load_documents([tmp_path])
    assert sorted(Path(d.source).name for d in result.documents) == ["a.md", "b.txt"]
    assert [d.text for d in result.documents if d.source.endswith("b.txt")] == ["beta"], "BOM is dropped"
    assert [Path(p).name for p in result.skipped] == ["c.bin"]


def test_a_folder_is_read_without_following_links_out_of_it(tmp_path: Path) -> None:
    """Indexing /srv/docs must not pull in /etc/shadow through a link someone left in it."""
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.md").write_text("# Secret\n\nthe payroll password")
    (outside / "private" / "more.md").write_text("# More\n\nboard minutes")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "policy.md").write_text("# Policy\n\nkept")
    (folder / "linked.md").symlink_to(outside / "secret.md")
    (folder / "linked-folder").symlink_to(outside / "private", target_is_directory=True)
    (folder / "alias.md").symlink_to(folder / "sub" / "policy.md")  # stays inside: read once
    result = load_documents([folder])
    assert [Path(d.source).name for d in result.documents] == ["policy.md"]
    assert all(str(outside) not in d.source and "payroll" not in d.text for d in result.documents)


def test_html_keeps_main_text_and_headings_and_drops_chrome(tmp_path: Path) -> None:
    (tmp_path / "v.html").write_text(HTML)
    doc = _one(tmp_path / "v.html")
    assert doc.doc_type == "html"
    assert doc.text.startswith("# Visitor Policy\n\nVisitors must sign in at reception.")
    assert "## Badges" in doc.text and "- Lost badges cost NOK 200." in doc.text
    assert "Server room | Always" in doc.text
    for noise in ("Menu item", "tracking", "Copyright", "color:red"):
        assert noise not in doc.text
    assert [s.title for s in doc.sections] == ["Visitor Policy", "Visitor Policy > Badges"]


def test_pdf_text_is_extracted_per_page_with_page_numbers(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "p.pdf", [["Retention of claims files is 12 years."], ["Backups are kept 35 days."]]
    )
    doc = _one(pdf)
    assert doc.doc_type == "pdf"
    assert [(s.page, doc.text[s.start : s.end]) for s in doc.sections] == [
        (1, "Retention of claims files is 12 years."),
        (2, "Backups are kept 35 days."),
    ]


def test_docx_paragraphs_headings_and_tables(tmp_path: Path) -> None:
    doc = _one(make_docx(tmp_path / "t.docx"))
    assert doc.doc_type == "docx"
    assert doc.text.split("\n\n") == [
        "# Travel Policy",
        "Staff book travel through the approved agency.",
        "## Per Diem",
        "The daily allowance abroad is NOK 850.",
        "Country | Rate",
        "Sweden | NOK 900",
    ]
    assert [s.title for s in doc.sections] == ["Travel Policy", "Travel Policy > Per Diem"]


def test_python_functions_and_classes_are_units(tmp_path: Path) -> None:
    (tmp_path / "vault.py").write_text(PYTHON)
    doc = _one(tmp_path / "vault.py")
    titled = {s.title: doc.text[s.start : s.end] for s in doc.sections}
    assert titled["def open_vault"].startswith("@staticmethod\ndef open_vault(path):")
    assert titled["class Vault"].startswith("class Vault:") and "async def sync" in titled["class Vault"]
    assert "LIMIT = 3" in titled["module"]
    assert all(s.kind == "code" for s in doc.sections)
    # Each unit carries its dotted name and its docstring's first paragraph, for the header.
    summaries = {s.title: s.summary for s in doc.sections}
    assert summaries["def open_vault"] == "open_vault: Open the vault at path."
    assert summaries["class Vault"] == "Vault: A password vault."
    assert summaries["module"] == ""
    joined = "".join(doc.text[s.start : s.end] for s in doc.sections)
    assert joined.split() == PYTHON.split(), "the units cover all the code, in order"


def test_broken_python_and_other_code_fall_back_to_plain_code(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "app.ts").write_text("export const x = 1;\n")
    for name in ("bad.py", "app.ts"):
        doc = _one(tmp_path / name)
        assert [s.kind for s in doc.sections] == ["code"] and doc.text


def test_images_become_items_with_their_size(tmp_path: Path) -> None:
    png = make_png(tmp_path / "floor-plan.png", 40, 30)
    doc = _one(png)
    assert doc.doc_type == "image"
    # The file's hash goes with the picture, so an agent attaches it only while it is unchanged.
    sha = hashlib.sha256(png.read_bytes()).hexdigest()
    assert doc.media == {"width": 40, "height": 30, "format": "PNG", "sha256": sha}
    assert "40x30" in doc.text


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
        (lambda p: (p / "x.xls").write_bytes(b"\xd0\xcf") and p / "x.xls", "unsupported file type .xls"),
        (lambda p: (p / "blank.md").write_text("  \n") and p / "blank.md", "is empty"),
        (lambda p: (p / "x.pdf").write_bytes(b"%PDF-1.4 broken") and p / "x.pdf", "not a readable PDF"),
        (lambda p: make_pdf(p / "scan.pdf", [[]]), "no extractable text"),
        (lambda p: (p / "x.docx").write_bytes(b"not a zip") and p / "x.docx", "not a readable DOCX"),
        (lambda p: (p / "x.png").write_bytes(b"\x89PNG broken") and p / "x.png", "not a readable image"),
        (
            lambda p: (
                (p / "x.html").write_text("<html><body><script>1</script></body></html>") and p / "x.html"
            ),
            "no readable text",
        ),
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


def _docx(path: Path, document_xml: bytes) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", document_xml)
    return path


def test_documents_over_the_text_limit_are_refused_before_they_are_parsed(tmp_path: Path) -> None:
    limit = 1 << 20
    paragraph = b"<w:p><w:r><w:t>" + b"word " * 20 + b"</w:t></w:r></w:p>"
    bomb = _docx(
        tmp_path / "bomb.docx", b"<w:document><w:body>" + paragraph * 120_000 + b"</w:body></w:document>"
    )
    assert bomb.stat().st_size < 200_000  # ~14 MB of XML packed small: a zip bomb in miniature
    blank = _docx(tmp_path / "blank.docx", b" " * (20 << 20))  # whitespace, once a raw lxml traceback
    (tmp_path / "huge.md").write_text("word " * (limit // 4))
    for path in (bomb, blank, tmp_path / "huge.md"):
        with pytest.raises(LoaderError, match="BASTION_RETRIEVAL_MAX_DOCUMENT_MB"):
            load_documents([path], max_chars=limit)
    broken = _docx(tmp_path / "broken.docx", b"<w:document><unclosed")
    with pytest.raises(LoaderError, match="not a readable DOCX"):
        load_documents([broken])
    (tmp_path / "fits.md").write_text("word " * 1000)
    assert load_documents([tmp_path / "fits.md"], max_chars=limit).documents
