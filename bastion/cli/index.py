"""`bastion index` and `bastion search`."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from bastion.cli._common import (
    GROUPS_OPTION,
    JSON_OPTION,
    USER_OPTION,
    err,
    out,
    parse_groups,
    principal,
    safe,
    say,
)
from bastion.cli._common import settings as get_settings
from bastion.settings import Settings
from bastion.wiring import (
    forget_documents,
    make_embedder,
    make_indexer,
    make_retriever,
    max_document_chars,
    open_checkpointer,
    open_manifest,
    open_store,
)
from retrieval import (
    DocumentHit,
    IndexEvent,
    IndexReport,
    SearchFilters,
    SearchMode,
    check_index,
    load_documents,
)


def index(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(
        None, help="Files or folders: Markdown, text, HTML, PDF, DOCX, source code, PNG/JPEG."
    ),
    groups: str | None = typer.Option(
        None, "--groups", help="Only these groups may read the documents (default: only you)."
    ),
    prune: bool = typer.Option(
        False, "--prune", help="Also remove documents indexed from these folders whose files are gone."
    ),
    optimize: bool = typer.Option(
        False,
        "--optimize",
        help="Then build the HNSW index now (done by itself once BASTION_RETRIEVAL_OPTIMIZE_AFTER chunks "
        "were written since the last build; minutes at 100k).",
    ),
    check: bool = typer.Option(
        False, "--check", help="Index nothing: compare the manifest with the store; exit 1 if they differ."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Index documents: chunk, embed and store them. Unchanged files are skipped."""
    s = get_settings(ctx)
    if check:
        _check(s, as_json)
        return
    if not paths:
        raise typer.BadParameter("give the files or folders to index (or --check)", param_hint="PATHS")
    started = time.perf_counter()
    report = index_paths(
        ctx, paths, groups=parse_groups(groups), prune=prune, optimize=optimize, show_progress=not as_json
    )
    elapsed = time.perf_counter() - started
    if as_json:
        out.print_json(json.dumps({**report.__dict__, "seconds": round(elapsed, 3)}))
        return
    out.print(
        f"Indexed {report.documents_indexed} document(s) ({report.chunks_written} chunks written, "
        f"{report.chunks_deleted} removed); {report.documents_unchanged} unchanged"
        + (f"; {report.documents_pruned} pruned" if prune else "")
        + f". {elapsed:.1f} s."
    )
    if report.skipped_files:
        out.print(
            f"Skipped {len(report.skipped_files)} file(s) of unsupported types, "
            f"e.g. {safe(report.skipped_files[0])}"
        )
    say(f"Index: {s.data_dir / 'index'}")


def _check(s: Settings, as_json: bool) -> None:
    dimension = make_embedder(s).dimension
    with open_store(s, dimension=dimension) as store, open_manifest(s) as manifest:
        result = check_index(store, manifest)
    if as_json:
        out.print_json(json.dumps({**result.__dict__, "ok": result.ok}))
    elif result.ok:
        out.print(f"Index consistent: {result.documents} documents, {result.chunks} chunks.")
    else:
        for problem in result.problems:
            err.print(f"[red]{safe(problem)}[/red]")
        err.print(
            f"[bold red]The index differs from its manifest[/bold red] ({len(result.problems)} problem(s)): "
            "re-index the folders named (`bastion index FOLDER`), or rebuild from the documents."
        )
    if not result.ok:
        raise typer.Exit(1)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} chunks/s" if speed else "", style="progress.data.speed")


def index_paths(
    ctx: typer.Context,
    paths: list[Path],
    *,
    groups: frozenset[str],
    show_progress: bool,
    prune: bool = False,
    optimize: bool = False,
) -> IndexReport:
    s = get_settings(ctx)
    # Bad input fails here, before a model is loaded or anything is written.
    loaded = load_documents(paths, allow_empty_folders=prune, max_chars=max_document_chars(s))
    say("Opening the index (the embedding model loads only if something must be embedded)…")
    embedder = make_embedder(s)
    with open_store(s, dimension=embedder.dimension) as store, open_manifest(s) as manifest:
        indexer = make_indexer(s, embedder, store, manifest)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            console=err,
            disable=not show_progress,
        ) as bar:
            task = bar.add_task("Embedding chunks", total=None)

            def on_event(event: IndexEvent) -> None:
                if event.kind == "planned":
                    bar.update(task, total=event.chunks)
                elif event.kind == "indexed":
                    bar.advance(task, event.chunks)

            report = indexer.index_loaded(
                loaded,
                owner=s.user,
                groups=groups,
                prune_under=[p for p in paths if p.is_dir()] if prune else None,
                progress=on_event,
            )
        pending = store.unoptimized()
        automatic = 0 < s.retrieval.optimize_after <= pending
        if optimize or automatic:
            why = (
                f"{pending:,} chunks written since the last build; BASTION_RETRIEVAL_OPTIMIZE_AFTER="
                f"{s.retrieval.optimize_after}"
                if automatic and not optimize
                else "--optimize"
            )
            say(f"Building the search index over {store.count():,} chunks ({why}); minutes at 100k…")
            store.optimize()
    if report.pruned_sources:
        forgotten = asyncio.run(_forget(s, report.pruned_sources))
        if forgotten:
            say(f"Forgot {len(forgotten)} conversation(s) that quoted the removed documents.")
    return report


async def _forget(s: Settings, sources: list[str]) -> list[str]:
    async with open_checkpointer(s) as saver:
        return await forget_documents(saver, sources)


def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="What to look for."),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    limit: int = typer.Option(5, "--limit", "-n", min=1, max=100, help="How many passages."),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="hybrid (dense + BM25, fused), dense or sparse. Default: the setting, else what "
        "`bastion eval tune` measured best for the collection, else hybrid.",
    ),
    by: str = typer.Option(
        "chunk", "--by", help="chunk: passages; document: documents, each with its best passages."
    ),
    source: list[Path] | None = typer.Option(None, "--source", help="Only this file (repeatable)."),
    under: Path | None = typer.Option(None, "--under", help="Only files below this folder."),
    doc_type: list[str] | None = typer.Option(None, "--type", help="Only this document type, e.g. markdown."),
    since: datetime | None = typer.Option(None, "--since", help="Only files modified at or after this date."),
    until: datetime | None = typer.Option(
        None, "--until", help="Only files modified at or before this date."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Find the passages that best match QUERY among those this user may read."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    if not query.strip():
        raise typer.BadParameter("the query is empty", param_hint="QUERY")
    asked = _mode(mode) if mode else None
    if by not in ("chunk", "document"):
        raise typer.BadParameter(f"{by!r}: use chunk or document", param_hint="--by")
    filters = SearchFilters(
        sources=[str(p.resolve()) for p in source] if source else None,
        path_prefix=str(under.resolve()) if under else None,
        doc_types=doc_type or None,
        modified_after=since.astimezone() if since else None,
        modified_before=until.astimezone() if until else None,
    )
    embedder = make_embedder(s)
    with open_store(s, dimension=embedder.dimension) as store:
        retriever = make_retriever(s, embedder, store)
        chosen = asked or retriever.mode
        if by == "document":
            documents = retriever.search_documents(query, who, limit=limit, mode=chosen, filters=filters)
            _show_documents(documents, chosen, as_json)
            return
        hits = retriever.search(query, who, limit=limit, mode=chosen, filters=filters)
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
        out.print_json(json.dumps({"mode": chosen, "results": results}))
        return
    if not hits:
        out.print("No passages found that you may read.")
        return
    for rank, hit in enumerate(hits, start=1):
        c = hit.chunk
        out.print(
            f"[bold]{rank}.[/bold] {safe(c.source)}:{c.start}-{c.end}  "
            f"[dim]{chosen} score {hit.score:.3f}  {safe(c.title)}[/dim]"
        )
        out.print(f"   {safe(_snippet(c.text))}")


def _show_documents(documents: list[DocumentHit], mode: SearchMode, as_json: bool) -> None:
    if as_json:
        results = [
            {
                "source": d.source,
                "score": round(d.score, 6),
                "passages": [
                    {"chunk_id": h.chunk.chunk_id, "start": h.chunk.start, "end": h.chunk.end,
                     "title": h.chunk.title, "text": h.chunk.text, "score": round(h.score, 6)}
                    for h in d.passages
                ],
            }
            for d in documents
        ]  # fmt: skip
        out.print_json(json.dumps({"mode": mode, "by": "document", "results": results}))
        return
    if not documents:
        out.print("No documents found that you may read.")
        return
    for rank, document in enumerate(documents, start=1):
        out.print(
            f"[bold]{rank}.[/bold] {safe(document.source)}  [dim]{mode} score {document.score:.3f}[/dim]"
        )
        for hit in document.passages:
            c = hit.chunk
            out.print(f"   [dim]{c.start}-{c.end} {safe(c.title)}[/dim]  {safe(_snippet(c.text))}")


def _mode(value: str) -> SearchMode:
    if value not in ("hybrid", "dense", "sparse"):
        raise typer.BadParameter(f"{value!r}: use hybrid, dense or sparse", param_hint="--mode")
    return value  # type: ignore[return-value]


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
