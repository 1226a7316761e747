"""Turns paths into documents. Every problem is collected before anything is written, so a bad
input leaves the index exactly as it was."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from retrieval._errors import LoaderError

DOC_TYPES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "rst"}
TEXT_SUFFIXES = frozenset(DOC_TYPES)


@dataclass(frozen=True)
class Document:
    source: str  # the resolved absolute path: the document's identity in the index
    text: str
    sha256: str
    doc_type: str
    modified_at: float


@dataclass(frozen=True)
class LoadResult:
    documents: list[Document]
    skipped: list[str]  # files inside folders with a type we do not index yet


def load_documents(paths: list[Path], *, allow_empty_folders: bool = False) -> LoadResult:
    problems: list[str] = []
    files: list[Path] = []
    skipped: list[str] = []
    if not paths:
        raise LoaderError(["no path was given"])
    for path in paths:
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            usable = [p for p in found if p.suffix.lower() in TEXT_SUFFIXES]
            skipped += [str(p) for p in found if p.suffix.lower() not in TEXT_SUFFIXES]
            if not usable and not allow_empty_folders:
                kinds = ", ".join(sorted(TEXT_SUFFIXES))
                problems.append(f"{path}: the folder holds no indexable file ({kinds})")
            files += usable
        elif path.suffix.lower() not in TEXT_SUFFIXES:
            problems.append(
                f"{path}: unsupported file type {path.suffix or '(none)'}; "
                f"supported: {', '.join(sorted(TEXT_SUFFIXES))}"
            )
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
            documents.append(_read(file, source))
        except _Unreadable as exc:
            problems.append(f"{file}: {exc}")
    if problems:
        raise LoaderError(problems)
    return LoadResult(documents=documents, skipped=skipped)


class _Unreadable(Exception):
    pass


def _read(file: Path, source: str) -> Document:
    try:
        data = file.read_bytes()
        modified_at = file.stat().st_mtime
    except OSError as exc:
        raise _Unreadable(f"cannot be read ({exc.strerror})") from exc
    if b"\x00" in data[:8192]:
        raise _Unreadable("looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(
            f"is not valid UTF-8 (bad byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from exc
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _Unreadable("is empty")
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        doc_type=DOC_TYPES[file.suffix.lower()],
        modified_at=modified_at,
    )


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
