"""`bastion index` and `bastion search`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bastion.cli._common import (
    GROUPS_OPTION,
    JSON_OPTION,
    USER_OPTION,
    err,
    out,
    parse_groups,
    principal,
    say,
)
from bastion.cli._common import settings as get_settings
from bastion.wiring import make_embedder, open_store
from retrieval import Indexer, IndexReport, Retriever, load_documents


def index(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Files or folders (.md, .txt) to index."),
    groups: str | None = typer.Option(
        None, "--groups", help="Only these groups may read the documents (default: only you)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Index documents: chunk, embed and store them. Unchanged files are skipped."""
    s = get_settings(ctx)
    report = index_paths(ctx, paths, groups=parse_groups(groups), show_progress=not as_json)
    if as_json:
        out.print_json(json.dumps(report.__dict__))
        return
    out.print(
        f"Indexed {report.documents_indexed} document(s) ({report.chunks_written} chunks written, "
        f"{report.chunks_deleted} removed); {report.documents_unchanged} unchanged."
    )
    if report.skipped_files:
        out.print(
            f"Skipped {len(report.skipped_files)} file(s) of unsupported types, "
            f"e.g. {report.skipped_files[0]}"
        )
    say(f"Index: {s.data_dir / 'index'}")


def index_paths(
    ctx: typer.Context, paths: list[Path], *, groups: frozenset[str], show_progress: bool
) -> IndexReport:
    s = get_settings(ctx)
    loaded = load_documents(paths)  # bad input fails here, before a model is loaded or a file written
    say("Loading the embedding model…")
    embedder = make_embedder(s)
    with open_store(s, dimension=embedder.dimension) as store:
        indexer = Indexer(embedder, store, max_chars=s.retrieval.chunk_chars)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not show_progress,
            transient=False,
        ) as bar:
            task = bar.add_task("Indexing", total=len(loaded.documents))
            return indexer.index_loaded(
                loaded, owner=s.user, groups=groups, progress=lambda n: bar.advance(task, n)
            )


def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="What to look for."),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    limit: int = typer.Option(5, "--limit", "-n", min=1, max=100, help="How many passages."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Find the passages most similar to QUERY that this user may read."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    if not query.strip():
        raise typer.BadParameter("the query is empty", param_hint="QUERY")
    embedder = make_embedder(s)
    with open_store(s, dimension=embedder.dimension) as store:
        hits = Retriever(embedder, store).search(query, who, limit=limit)
    if as_json:
        results = [
            {
                "chunk_id": h.chunk.chunk_id,
                "source": h.chunk.source,
                "start": h.chunk.start,
                "end": h.chunk.end,
                "title": h.chunk.title,
                "text": h.chunk.text,
                "score": round(h.score, 6),
            }
            for h in hits
        ]
        out.print_json(json.dumps({"results": results}))
        return
    if not hits:
        out.print("No passages found that you may read.")
        return
    for rank, hit in enumerate(hits, start=1):
        c = hit.chunk
        out.print(
            f"[bold]{rank}.[/bold] {c.source}:{c.start}-{c.end}  [dim]score {hit.score:.3f}  {c.title}[/dim]"
        )
        out.print(f"   {_snippet(c.text)}")


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
