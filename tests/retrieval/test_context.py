"""Contextual chunks and long queries, on the real MiniLM and Qdrant Edge: a chunk is indexed with where
it lives (its document's title and heading path) yet cited as its exact span, and a query longer than
the model reads is embedded whole, window by window."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval import EdgeStore, Indexer, Principal, Retriever, SentenceTransformerEmbedder
from retrieval._context import context_header, document_title

OPERATOR = Principal(user="local")
FILLER = "\n\n".join(
    f"Paragraph {n} sets out general duties of staff towards colleagues, visitors and suppliers."
    for n in range(40)
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    opened = EdgeStore(tmp_path / "index", dimension=384)
    yield opened
    opened.close()


def test_titles_and_headers_say_where_a_chunk_lives() -> None:
    assert document_title("# Data Breach Rules\n\nText.", "/d/a.md", "markdown") == "Data Breach Rules"
    assert document_title("\n\nRetention schedule\nRows follow.", "/d/b.txt", "text") == "Retention schedule"
    assert document_title("", "/d/leave-policy.txt", "text") == "leave-policy"
    assert document_title("import os\n", "/repo/pkg/sub/mod.py", "code") == "pkg/sub/mod.py"
    # The heading path already names the document when it opens with its top heading.
    assert context_header("Rules", "Rules > Deadlines", None) == "Rules > Deadlines"
    assert context_header("Handbook", "Leave", 3) == "Handbook > Leave (page 3)"
    assert context_header("pkg/mod.py", "class Vault > def open(self)", None) == (
        "pkg/mod.py > class Vault > def open(self)"
    )
    assert len(context_header("T" * 500, "H" * 500, None)) <= 160
    assert context_header("pkg/mod.py", "class Vault > def open", None, "Vault.open: Open it.") == (
        "pkg/mod.py > class Vault > def open\nVault.open: Open it."
    )


def test_a_method_is_found_by_what_its_docstring_says_and_cited_without_it(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, store: EdgeStore
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    methods = "\n".join(f"    def step_{n}(self):\n        return self.value + {n}\n" for n in range(100))
    source = (
        "class Ledger:\n"
        f"{methods}\n"
        "    def settle(self, other):\n"
        '        """Transfer the outstanding balance to another account.\n\n'
        '        Raises when the books do not balance."""\n'
        + "".join(f"        other.entries.append(self.entries.pop({n}))\n" for n in range(40))
        + "        return other\n"
    )
    (repo / "ledger.py").write_text(source)
    Indexer(embedder, store).index([repo], owner="local")
    hit = Retriever(embedder, store).search("move money owed to a different account", OPERATOR, limit=1)[0]
    assert hit.chunk.title == "class Ledger > def settle"
    assert hit.chunk.context.endswith("Ledger.settle: Transfer the outstanding balance to another account.")
    assert source[hit.chunk.start : hit.chunk.end] == hit.chunk.text
    # The method's later chunks, whose text has no docstring, are indexed with it too.
    found = Retriever(embedder, store).search("entries append pop", OPERATOR, limit=20, mode="sparse")
    later = [h.chunk for h in found if h.chunk.title.endswith("settle") and "Transfer" not in h.chunk.text]
    assert later and all(c.context.endswith("another account.") for c in later)


def test_a_chunk_deep_in_a_document_is_found_by_its_documents_title_and_cited_exactly(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, store: EdgeStore
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    # Only the title says "breach": the deadline sits forty paragraphs below it.
    breach = (
        f"# Personal data breach notification\n\n{FILLER}\n\nThe regulator must be told within 72 hours.\n"
    )
    (docs / "breach.md").write_text(breach)
    (docs / "canteen.md").write_text(
        "# Canteen\n\nThe canteen must be told about allergies within 72 hours.\n"
    )
    Indexer(embedder, store).index([docs], owner="local")
    hits = Retriever(embedder, store).search("breach deadline 72 hours", OPERATOR, limit=3, mode="sparse")
    top = hits[0].chunk
    assert top.source.endswith("breach.md") and "72 hours" in top.text
    assert top.context == "Personal data breach notification"
    assert breach[top.start : top.end] == top.text and "breach" not in top.text  # the span, not the header


def test_a_renamed_heading_reembeds_only_the_chunks_under_it(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, store: EdgeStore
) -> None:
    doc = tmp_path / "policy.md"
    doc.write_text(f"# Policy\n\n## Leave\n\n{FILLER}\n\n## Travel\n\nBook trains, not flights.\n")
    indexer = Indexer(embedder, store)
    first = indexer.index([doc], owner="local")
    doc.write_text(f"# Policy\n\n## Annual leave\n\n{FILLER}\n\n## Travel\n\nBook trains, not flights.\n")
    second = indexer.index([doc], owner="local")
    # Every chunk of the renamed section gets a new header and so a new point; Travel's is kept.
    assert 1 < second.chunks_written < first.chunks_written
    hit = Retriever(embedder, store).search("annual leave duties", OPERATOR, limit=1, mode="sparse")[0]
    assert hit.chunk.context == "Policy > Annual leave"


def test_a_long_query_is_embedded_whole_not_cut_after_the_models_window(
    embedder: SentenceTransformerEmbedder, store: EdgeStore
) -> None:
    retriever = Retriever(embedder, store)
    opening = "Hello, I am writing to the help desk about something that happened to me last week. " * 30
    query = opening + "My real question: how do I file my income tax return on paper?"
    assert embedder.count_tokens(query) > embedder.max_tokens
    whole = retriever.query_embedding(query)
    assert math.isclose(math.fsum(x * x for x in whole), 1.0, rel_tol=1e-5)
    cut = embedder.embed_query(query)  # what the model alone would read: the opening only
    topic = embedder.embed_query("filing an income tax return on paper")
    similarity = lambda a, b: math.fsum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    assert similarity(whole, topic) > similarity(cut, topic) + 0.05
    short = "How long is CCTV footage kept?"
    assert retriever.query_embedding(short) == embedder.embed_query(short)
