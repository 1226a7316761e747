"""Text extraction per file format. Each extractor turns a file's bytes into text plus the sections
(headings, pages, code units) that chunking must respect. Spans always index the extracted text.

Libraries: pypdf (pure Python, maintained, per-page text), python-docx (paragraph styles and tables in
document order), BeautifulSoup on lxml (tolerant of real-world HTML), Pillow (image headers only).
"""

from __future__ import annotations

import ast
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from retrieval._chunking import Section, markdown_sections
from retrieval._errors import RetrievalError


class ExtractionError(RetrievalError):
    """The file is not what its name says, or holds no text we can extract (the loader turns it into
    one of a LoaderError's problems)."""


@dataclass(frozen=True)
class Extracted:
    text: str
    sections: list[Section]
    media: dict[str, int | str] = field(default_factory=dict)


_MARKUP_PER_CHAR = 8
"""Bytes of HTML or Word XML allowed per character of text: markup, styles and run properties."""


def _too_big(size: int, limit: int, what: str) -> str:
    return (
        f"is too large: {size / (1 << 20):.1f} MB {what}, over the limit of {limit / (1 << 20):.0f} MB "
        "of text per document (BASTION_RETRIEVAL_MAX_DOCUMENT_MB); split it, or raise the limit"
    )


def check_size(data: bytes, doc_type: str, max_chars: int) -> None:
    """Refuse a document whose text would pass `max_chars` before parsing it, where the size can be
    known up front: a parser given a zip bomb uses gigabytes before it could be stopped."""
    if doc_type in ("image", "pdf"):
        return  # images give a line of text; a PDF's text is counted page by page after extraction
    if doc_type in ("html",):
        if len(data) > max_chars * _MARKUP_PER_CHAR:
            raise ExtractionError(_too_big(len(data), max_chars * _MARKUP_PER_CHAR, "of HTML"))
        return
    if doc_type == "docx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                unpacked = sum(i.file_size for i in archive.infolist() if i.filename.startswith("word/"))
        except zipfile.BadZipFile as exc:
            raise ExtractionError(f"is not a readable DOCX file ({exc})") from exc
        if unpacked > max_chars * _MARKUP_PER_CHAR:
            raise ExtractionError(
                _too_big(unpacked, max_chars * _MARKUP_PER_CHAR, "of Word XML once unpacked")
            )
        return
    if len(data) > max_chars:  # text and code: a byte is at most a character
        raise ExtractionError(_too_big(len(data), max_chars, "of text"))


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ExtractionError("looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExtractionError(
            f"is not valid UTF-8 (bad byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from exc
    return text.removeprefix("\ufeff")


def markdown(data: bytes, name: str) -> Extracted:
    text = decode_text(data)
    return Extracted(text, markdown_sections(text))


def plain(data: bytes, name: str) -> Extracted:
    text = decode_text(data)
    return Extracted(text, [Section(0, len(text))])


_DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg")
_BLOCK_TAGS = (
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "li",
    "pre",
    "blockquote",
    "tr",
    "dt",
    "dd",
    "figcaption",
)


def html(data: bytes, name: str) -> Extracted:
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(data, "lxml")
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    blocks: list[str] = []
    for element in root.find_all(_BLOCK_TAGS) if isinstance(root, Tag) else []:
        if element.find_parent(_BLOCK_TAGS):  # its text is part of an enclosing block already
            continue
        if element.name == "tr":
            cells = [" ".join(c.get_text(" ").split()) for c in element.find_all(["td", "th"])]
            line = " | ".join(c for c in cells if c)
        elif element.name == "pre":
            line = element.get_text().strip("\n")
        else:
            line = " ".join(element.get_text(" ").split())
        if not line:
            continue
        if element.name[0] == "h" and element.name[1:].isdigit():
            line = "#" * int(element.name[1]) + " " + line
        elif element.name == "li":
            line = "- " + line
        blocks.append(line)
    if not blocks:
        raise ExtractionError("holds no readable text in its HTML body")
    text = "\n\n".join(blocks)
    return Extracted(text, markdown_sections(text))


def pdf(data: bytes, name: str) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise ExtractionError(f"is not a readable PDF ({exc})") from exc
    if not any(pages):
        raise ExtractionError("has no extractable text (a scanned PDF needs OCR first)")
    parts: list[str] = []
    sections: list[Section] = []
    position = 0
    for number, page_text in enumerate(pages, start=1):
        if not page_text:
            continue
        if parts:
            position += 2  # the "\n\n" between pages
        sections.append(Section(position, position + len(page_text), f"page {number}", page=number))
        parts.append(page_text)
        position += len(page_text)
    return Extracted("\n\n".join(parts), sections)


def docx(data: bytes, name: str) -> Extracted:
    from docx import Document as open_docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = open_docx(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile) as exc:
        raise ExtractionError(f"is not a readable DOCX file ({exc})") from exc
    except Exception as exc:  # python-docx and lxml fail on malformed parts in many ways; all mean this
        raise ExtractionError(f"is not a readable DOCX file ({type(exc).__name__}: {exc})") from exc
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                line = " | ".join(dict.fromkeys(c for c in cells if c))  # merged cells repeat their text
                if line:
                    blocks.append(line)
            continue
        line = " ".join(item.text.split())
        if not line:
            continue
        style = item.style.name if item.style is not None else ""
        level = _heading_level(style)
        blocks.append(("#" * level + " " + line) if level else line)
    if not blocks:
        raise ExtractionError("holds no text")
    text = "\n\n".join(blocks)
    return Extracted(text, markdown_sections(text))


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading ([1-6])", style)
    return int(match.group(1)) if match else 0


_MAX_SUMMARY_CHARS = 200


def python(data: bytes, name: str) -> Extracted:
    """Functions and classes as units (methods too when a class is large); the rest as module code."""
    text = decode_text(data)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return code(data, name)
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    units: list[tuple[int, int, str, str]] = []

    def offset(lineno: int) -> int:
        return line_starts[min(lineno - 1, len(line_starts) - 1)]

    def visit(nodes: list[ast.stmt], prefix: str, owners: str) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                start, end = offset(first), offset((node.end_lineno or node.lineno) + 1)
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                title = f"{prefix}{kind} {node.name}"
                summary = _summary(f"{owners}{node.name}", node)
                if isinstance(node, ast.ClassDef) and end - start > 4000:
                    body_start = offset(node.body[0].lineno) if node.body else end
                    units.append((start, body_start, title, summary))
                    visit(node.body, f"{title} > ", f"{owners}{node.name}.")
                else:
                    units.append((start, end, title, summary))

    visit(tree.body, "", "")
    sections, position = [], 0
    for start, end, title, summary in sorted(units):
        if start > position and text[position:start].strip():
            sections.append(Section(position, start, "module", kind="code"))
        if start >= position:
            sections.append(Section(start, end, title, kind="code", summary=summary))
            position = end
    if position < len(text) and text[position:].strip():
        sections.append(Section(position, len(text), "module", kind="code"))
    return Extracted(text, sections or [Section(0, len(text), "module", kind="code")])


def _summary(qualname: str, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    """`Console.print: Print to the console.`: the dotted name a user types and what the docstring's
    first paragraph says the unit does, for matching questions that name neither file nor class."""
    doc = ast.get_docstring(node) or ""
    first = " ".join(doc.strip().split("\n\n", 1)[0].split())
    if len(first) > _MAX_SUMMARY_CHARS:
        first = first[:_MAX_SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{qualname}: {first}" if first else qualname


def code(data: bytes, name: str) -> Extracted:
    text = decode_text(data)
    return Extracted(text, [Section(0, len(text), "", kind="code")])


def image(data: bytes, name: str) -> Extracted:
    """An image item: its searchable text is a one-line description; the pixels stay in the file for
    a multimodal model to read later."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height, kind = picture.width, picture.height, (picture.format or "image").upper()
    except (UnidentifiedImageError, OSError) as exc:
        raise ExtractionError(f"is not a readable image ({exc})") from exc
    text = f"{name}: {kind} image, {width}x{height} pixels"
    return Extracted(text, [Section(0, len(text))], {"width": width, "height": height, "format": kind})


Extractor = Callable[[bytes, str], Extracted]

_CODE_SUFFIX_LIST = (
    ".js .jsx .ts .tsx .go .rs .java .kt .c .h .cc .cpp .hpp .cs .rb .php .swift .scala .sh .bash .sql "
    ".toml .yaml .yml .json .ini .cfg"
)
CODE_SUFFIXES = _CODE_SUFFIX_LIST.split()

FORMATS: dict[str, tuple[str, Extractor]] = {
    ".md": ("markdown", markdown),
    ".markdown": ("markdown", markdown),
    ".txt": ("text", plain),
    ".text": ("text", plain),
    ".rst": ("rst", plain),
    ".html": ("html", html),
    ".htm": ("html", html),
    ".pdf": ("pdf", pdf),
    ".docx": ("docx", docx),
    ".py": ("python", python),
    ".png": ("image", image),
    ".jpg": ("image", image),
    ".jpeg": ("image", image),
    **{suffix: ("code", code) for suffix in CODE_SUFFIXES},
}
