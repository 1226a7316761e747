"""Turns paths into documents. Every problem is collected before anything is written, so a bad
input leaves the index exactly as it was."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from retrieval._chunking import Section
from retrieval._errors import LoaderError
from retrieval._formats import FORMATS, ExtractionError, _too_big, check_size

SUPPORTED_SUFFIXES = frozenset(FORMATS)
_KINDS = "Markdown, text, reStructuredText, HTML, PDF, DOCX, source code, PNG/JPEG images"
# Folders that hold installed or generated files, never an organisation's own documents.
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "dist", "build"})
# `report.pdf.groups` beside `report.pdf` names the groups that may read it (comma or newline separated).
GROUPS_SUFFIX = ".groups"
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Document:
    source: str  # the resolved absolute path: the document's identity in the index
    text: str  # the extracted text; every span indexes this
    sha256: str  # of the file's bytes
    doc_type: str
    modified_at: float
    sections: list[Section] = field(default_factory=list)
    media: dict[str, int | str] = field(default_factory=dict)
    groups: frozenset[str] | None = None  # from a `NAME.groups` file beside it; None: the index-time default


@dataclass(frozen=True)
class LoadResult:
    documents: list[Document]
    skipped: list[str]  # files inside folders with a type we do not index


MAX_DOCUMENT_CHARS = 10 << 20
"""The most text one document may give: a 746 KB .docx once expanded to 200 MB of paragraphs."""


def load_documents(
    paths: list[Path], *, allow_empty_folders: bool = False, max_chars: int = MAX_DOCUMENT_CHARS
) -> LoadResult:
    """Read every file (folders recursively) into Documents, or raise LoaderError listing every problem.
    A document whose text would pass `max_chars` is refused before it is parsed where its size can be
    known (text files by their bytes, .docx by its unpacked XML), else after extraction."""
    problems: list[str] = []
    files: list[Path] = []
    skipped: list[str] = []
    if not paths:
        raise LoaderError(["no path was given"])
    for path in paths:
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif path.is_dir():
            inside = path.resolve()
            # A link that leaves the folder is not followed: indexing a folder reads that folder.
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not _ignored(p.relative_to(path)) and p.resolve().is_relative_to(inside)
            )
            usable = [p for p in found if p.suffix.lower() in SUPPORTED_SUFFIXES]
            skipped += [
                str(p)
                for p in found
                if p.suffix.lower() not in SUPPORTED_SUFFIXES and p.suffix != GROUPS_SUFFIX
            ]
            if not usable and not allow_empty_folders:
                problems.append(f"{path}: the folder holds no indexable file ({_KINDS})")
            files += usable
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            problems.append(f"{path}: unsupported file type {path.suffix or '(none)'}; supported: {_KINDS}")
        else:
            files.append(path)
    documents: list[Document] = []
    seen: set[str] = set()
    for file in files:
        source = str(file.resolve())
        if source in seen:
            continue
        seen.add(source)
        try:
            documents.append(_read(file, source, max_chars))
        except ExtractionError as exc:
            problems.append(f"{file}: {exc}")
    if problems:
        raise LoaderError(problems)
    return LoadResult(documents=documents, skipped=skipped)


def _read(file: Path, source: str, max_chars: int) -> Document:
    try:
        data = file.read_bytes()
        modified_at = file.stat().st_mtime
    except OSError as exc:
        raise ExtractionError(f"cannot be read ({exc.strerror})") from exc
    groups = _sidecar_groups(file)
    doc_type, extract = FORMATS[file.suffix.lower()]
    check_size(data, doc_type, max_chars)
    extracted = extract(data, file.name)
    if len(extracted.text) > max_chars:
        raise ExtractionError(_too_big(len(extracted.text), max_chars, "of text"))
    if not extracted.text.strip():
        raise ExtractionError("is empty")
    sha256 = hashlib.sha256(data).hexdigest()
    # A picture's chunk carries the file's hash, so an agent attaches the pixels only while the file
    # still holds what was indexed (agents/_images.py).
    media = {**extracted.media, "sha256": sha256} if doc_type == "image" else extracted.media
    return Document(
        source=source,
        text=extracted.text,
        sha256=sha256,
        doc_type=doc_type,
        modified_at=modified_at,
        sections=extracted.sections,
        media=media,
        groups=groups,
    )


def _sidecar_groups(file: Path) -> frozenset[str] | None:
    sidecar = file.with_name(file.name + GROUPS_SUFFIX)
    if not sidecar.exists():
        return None
    try:
        names = {g.strip() for g in re.split(r"[,\n]", sidecar.read_text(encoding="utf-8")) if g.strip()}
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractionError(f"its groups file {sidecar.name} cannot be read ({exc})") from exc
    bad = sorted(g for g in names if not _GROUP.match(g))
    if bad or not names:
        raise ExtractionError(
            f"its groups file {sidecar.name} must list group names (letters, digits, '.', '_', '@', '-'); "
            f"got {bad or 'nothing'}"
        )
    return frozenset(names)


def _ignored(relative: Path) -> bool:
    return any(
        part.startswith(".") or part in SKIP_DIRS for part in relative.parts[:-1]
    ) or relative.name.startswith(".")
