"""`bastion eval`: run evaluation suites and benchmarks, compare runs, draw the report.

bastion eval retrieval-cwe grounding --limit 20     # suites (or `all`); results + report in --out
bastion eval compare BASELINE CANDIDATE             # exit 1 when something regressed beyond noise
bastion eval report RESULT.json… --out DIR          # the HTML report and Markdown summary again
bastion eval bench cache_reuse --turns 3            # a benchmark, in the same result format
bastion eval tune LABELS.jsonl                      # measure search modes on your own labelled questions
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from langgraph.checkpoint.memory import InMemorySaver
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from agents import QAAgent
from bastion.cli._common import GROUPS_OPTION, JSON_OPTION, USER_OPTION, err, out, principal, run, say
from bastion.cli._common import settings as get_settings
from bastion.settings import Settings
from bastion.wiring import (
    chat_client,
    chunk_tokens,
    configured_qa_agent,
    make_embedder,
    make_indexer,
    make_router,
    model_url,
    open_manifest,
    open_store,
    scratch_index,
    search_profile,
)
from evals import (
    ALL_MODES,
    SUITES,
    Comparison,
    EvalContext,
    EvalResult,
    UsageError,
    benches,
    check_variants,
    compare,
    load_labels,
    load_result,
    resolve,
    run_bench,
    run_suite,
    tune,
    write_report,
)
from retrieval import DEFAULT_CHUNK_TOKENS, Retriever, SearchMode, SearchProfile, VectorStore, save_profile

SUITE_NAMES = ", ".join(SUITES)
# URL-taking benchmarks get the model server's URL unless one is given.
_BENCHES_WITH_URL = {"agent_overhead", "api_load", "cache_reuse", "client_overhead", "template_probe"}


class _SuitesByDefault(TyperGroup):
    """`bastion eval SUITE…` is `bastion eval run SUITE…`: the common case needs no sub-command."""

    # `Any`: typer types this with the click Context it vendors, which is not public.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_SuitesByDefault,
    no_args_is_help=True,
    help="Measure retrieval, grounding, refusals, routing and cache reuse; compare runs; draw the report. "
    f"Suites: {SUITE_NAMES} (or all). `bastion eval SUITE…` runs them.",
)


class _Bar:
    """Rich's progress bar as the evals layer's `Progress`: one task at a time, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, description: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(description, total=total)
        if not self.progress.console.is_terminal:
            # No live bar in a CI log or a pipe: one line per task says where a long run is.
            say(f"{description}…")

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)


@contextmanager
def _progress() -> Iterator[_Bar]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        yield _Bar(progress)


def _recorded(s: Settings) -> dict[str, Any]:
    """The settings a result depends on, with no secrets."""
    return {
        "model_name": s.model.name,
        "model_url": s.model.url or "local llama-server",
        "embedding_model": str(s.retrieval.embedding_model or "all-MiniLM-L6-v2 (bundled)"),
        "retrieval_mode": s.retrieval.mode,
        "top_k": s.retrieval.top_k,
        "min_score": s.retrieval.min_score,
        "router": s.agent.router,
        "pin_tokens": s.agent.pin_tokens,
        "section_tokens": s.agent.section_tokens,
        "max_tokens": s.model.max_tokens,
        "temperature": s.model.temperature,
    }


def _default_out(s: Settings) -> Path:
    return s.files.evals / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


@app.command("run")
def run_command(
    ctx: typer.Context,
    suites: list[str] = typer.Argument(..., help=f"Suites to run: {SUITE_NAMES}, or all."),
    mode: list[str] = typer.Option(
        [],
        "--mode",
        help="Search mode(s) for the retrieval suites: hybrid, dense, sparse (default: all three).",
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        help="Items per suite (questions, turns); the index shrinks to match. Default: all.",
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for SUITE.json, report.html and summary.md (default: <data dir>/evals/<time>).",
    ),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="Earlier results (a folder or .json file) to compare with; exit 1 on regressions.",
    ),
    judge_url: str | None = typer.Option(
        None, "--judge-url", help="OpenAI-compatible server whose model judges faithfulness and correctness."
    ),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's `model` field."),
    judge_api_key: str | None = typer.Option(None, "--judge-api-key", envvar="BASTION_JUDGE_API_KEY"),
    assist: list[str] = typer.Option(
        [],
        "--assist",
        help="Also measure model-assisted search in the retrieval suites: expand, rerank, expand+rerank.",
    ),
    assist_limit: int | None = typer.Option(
        None, "--assist-limit", min=1, help="Queries the --assist variants ask (the first N of the suite's)."
    ),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=64, help="Questions in flight at once."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (the same seed picks the same questions)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run evaluation suites on third-party data and write versioned results and a report."""
    s = get_settings(ctx)
    chosen = resolve(suites)
    modes = _modes(mode)
    assists = check_variants(assist)
    before = _load_all(baseline) if baseline else None
    target = out_dir or _default_out(s)
    embedder = make_embedder(s)
    url = model_url(s, say) if assists or any(suite.needs_model for suite in chosen) else None

    @asynccontextmanager
    async def qa_factory(retriever: Retriever) -> AsyncIterator[QAAgent]:
        assert url is not None
        # Evaluation threads live in memory: they must not mix with the operator's conversations.
        async with chat_client(s, url) as client:
            yield configured_qa_agent(s, client, retriever, InMemorySaver(), embedder)

    results: list[EvalResult] = []
    with _progress() as bar:
        context = EvalContext(
            cache_dir=s.cache_dir,
            embedder=embedder,
            limit=limit,
            modes=modes,
            chunk_tokens=s.retrieval.chunk_tokens or DEFAULT_CHUNK_TOKENS,  # not the collection's
            fusion=search_profile(s, tuned=False).fusion,  # the suites' own corpora, not the collection
            model_url=url,
            qa_factory=qa_factory if url else None,
            router=make_router(s, embedder),
            judge_url=judge_url,
            judge_model=judge_model,
            judge_api_key=judge_api_key,
            assists=assists,
            assist_limit=assist_limit,
            client_factory=(lambda: chat_client(s, url)) if url else None,
            concurrency=concurrency,
            seed=seed,
            progress=bar,
            settings=_recorded(s),
        )
        for suite in chosen:
            result = run(run_suite(suite, context))
            result.save(target)
            results.append(result)
    _finish(results, target, before, as_json)


@app.command("compare")
def compare_command(
    before: Path = typer.Argument(..., help="Baseline results: a folder of SUITE.json files or one file."),
    after: Path = typer.Argument(..., help="Candidate results, the same way."),
    tolerance: float = typer.Option(
        0.05, "--tolerance", min=0.0, help="Relative change that counts for figures without an interval."
    ),
    show_all: bool = typer.Option(False, "--all", help="List unchanged metrics too."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print what changed between two runs; exit 1 when a metric regressed beyond the noise."""
    comparison = compare(_load_all(before), _load_all(after), tolerance=tolerance)
    if as_json:
        out.print_json(comparison.model_dump_json())
    else:
        _print_comparison(comparison, show_all=show_all)
    if comparison.regressions:
        raise typer.Exit(1)


@app.command("report")
def report_command(
    results: list[Path] = typer.Argument(..., help="Result files or folders to put in one report."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for report.html and summary.md."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Earlier results to compare with."),
) -> None:
    """Draw the HTML report and the Markdown summary from saved results."""
    loaded = [r for path in results for r in _load_all(path)]
    comparison = compare(_load_all(baseline), loaded) if baseline else None
    html, markdown = write_report(loaded, out_dir, comparison=comparison)
    out.print(f"Report: {html}\nSummary: {markdown}")


@app.command(
    "bench",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A benchmark in evals/bench/ (see --list)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Also save NAME.json and the report here."),
) -> None:
    """Run a benchmark with its own arguments after the name; prints its result (bastion-eval/1 JSON).

    Benchmarks that talk to a model get the configured server's --url unless you pass one."""
    if name not in benches():
        raise typer.BadParameter(
            f"unknown benchmark; the benchmarks are: {', '.join(benches())}", param_hint="NAME"
        )
    argv = list(ctx.args)
    if name in _BENCHES_WITH_URL and "--url" not in argv:
        argv += ["--url", model_url(get_settings(ctx), say)]
    result = run_bench(name, argv)
    if out_dir is not None:
        result.save(out_dir)
        write_report([result], out_dir)
        say(f"Saved to {out_dir}.")
    out.print(result.to_json(), markup=False)


@app.command("tune")
def tune_command(
    ctx: typer.Context,
    labels: Path = typer.Argument(
        ...,
        help='JSON lines of {"question": "...", "relevant": ["path/of/a/file/that/answers/it", ...]}; '
        "relative paths are read from the labels file's folder.",
    ),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    sizes: list[int] = typer.Option(
        [],
        "--chunk-tokens",
        min=16,
        max=512,
        help="Also measure this chunk size (repeatable): the documents the labels' asker may read are "
        "indexed again at it into a throw-away index, which takes about as long as indexing them did.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Measure and show; keep nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Measure the search modes (and, with --chunk-tokens, chunk sizes) on questions labelled with the
    files that answer them, and keep the best for the collection: `bastion search`, the agents and the
    API then use it without flags."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    chosen_labels = load_labels(labels)
    embedder = make_embedder(s)
    current = chunk_tokens(s)
    with ExitStack() as stack:
        store = stack.enter_context(open_store(s, dimension=embedder.dimension))
        with open_manifest(s) as manifest:
            entries = list(manifest.entries())
            plan = make_indexer(s, embedder, store, manifest).plan_key
        if stale := [e.source for e in entries if e.plan != plan]:
            # The collection's own chunks are measured as `current`-token chunks: they must be.
            raise UsageError(
                f"{len(stale)} of {len(entries)} indexed documents were chunked otherwise than the "
                f"settings now say ({current}-token chunks), e.g. {stale[0]}: run `bastion index` on "
                "their folders first, so that what is measured is what searches use."
            )
        indexed = [entry.source for entry in entries]
        readable = set(who.acl_tokens())
        mine = [Path(e.source) for e in entries if readable & set(e.acl) and Path(e.source).exists()]
        stores: dict[int, VectorStore] = {current: store}
        for size in dict.fromkeys(sizes):
            if size not in stores:
                say(f"Indexing {len(mine)} documents again at {size}-token chunks, to compare…")
                stores[size] = stack.enter_context(
                    scratch_index(s, embedder, mine, owner=who.user, chunk_tokens=size)
                )
        profile = tune(embedder, stores, chosen_labels, who, indexed=indexed)
    target = s.files.search_profile(s.retrieval.collection)
    if not dry_run:
        save_profile(target, profile)
    names = ("mode", "fusion", "chunk_tokens")
    overridden = [name for name in names if getattr(s.retrieval, name) is not None]
    if as_json:
        payload = {"profile": profile.model_dump(mode="json"), "saved": None if dry_run else str(target)}
        out.print_json(json.dumps({**payload, "overridden_by_settings": overridden}))
        return
    _print_tuning(profile, target, current=current, dry_run=dry_run, overridden=overridden)


def _print_tuning(
    profile: SearchProfile, target: Path, *, current: int, dry_run: bool, overridden: list[str]
) -> None:
    table = Table("chunk", "mode", "fusion", "nDCG@10 (choosing half)", "nDCG@10 (checking half)", box=None)
    picked = (profile.chunk_tokens, profile.mode, profile.fusion)
    for m in profile.measured:
        mark = "  ← chosen" if (m.chunk_tokens, m.mode, m.fusion) == picked else ""
        table.add_row(
            f"{m.chunk_tokens} tokens" if m.chunk_tokens else "",
            m.mode,
            m.fusion if m.mode == "hybrid" else "",
            f"{m.tune_ndcg:.3f}",
            f"{m.check_ndcg:.3f}{mark}",
        )
    out.print(f"{profile.labels} labelled questions, split in two halves:")
    out.print(table)
    kept = f"{profile.mode}" + (f" with {profile.fusion} fusion" if profile.mode == "hybrid" else "")
    kept += f" over {profile.chunk_tokens}-token chunks" if profile.chunk_tokens else ""
    if dry_run:
        out.print(f"Best: {kept}. Nothing kept (--dry-run).")
    else:
        out.print(f"Kept: {kept}, in {target}.")
        if profile.chunk_tokens not in (None, current):
            out.print(
                f"Searches use the chunks the collection holds ({current} tokens) until its folders are "
                f"indexed again: run `bastion index` on them to re-chunk at {profile.chunk_tokens}."
            )
    variables = {
        "mode": "BASTION_RETRIEVAL_MODE",
        "fusion": "BASTION_RETRIEVAL_FUSION",
        "chunk_tokens": "BASTION_RETRIEVAL_CHUNK_TOKENS",
    }
    for name in overridden:
        out.print(f"[yellow]{variables[name]} is set and still wins over the tuned {name}.[/yellow]")


@app.command("list")
def list_command() -> None:
    """The suites and benchmarks there are."""
    table = Table("suite", "needs a model", "what it measures", box=None)
    for suite in SUITES.values():
        table.add_row(suite.name, "yes" if suite.needs_model else "", suite.summary)
    out.print(table)
    out.print(f"\nBenchmarks (bastion eval bench NAME): {', '.join(benches())}")


def _modes(given: list[str]) -> tuple[SearchMode, ...]:
    chosen: list[SearchMode] = []
    for value in given:
        if value not in ALL_MODES:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(ALL_MODES)}", param_hint="--mode")
        if value not in chosen:
            chosen.append(value)
    return tuple(chosen) or ALL_MODES


def _load_all(path: Path) -> list[EvalResult]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json"))
        if not files:
            raise typer.BadParameter(f"{path} holds no result files (*.json)")
        order = list(SUITES)
        # In the order the suites run (retrieval first), benchmarks after them, rather than by file name.
        loaded = [load_result(p) for p in files]
        return sorted(
            loaded, key=lambda r: (order.index(r.suite) if r.suite in order else len(order), r.suite)
        )
    return [load_result(path)]


def _finish(results: list[EvalResult], target: Path, before: list[EvalResult] | None, as_json: bool) -> None:
    comparison = compare(before, results) if before is not None else None
    html, markdown = write_report(results, target, comparison=comparison)
    if as_json:
        out.print_json(json.dumps([json.loads(r.to_json()) for r in results]))
    else:
        for result in results:
            _print_result(result)
        if comparison is not None:
            _print_comparison(comparison, show_all=False)
    say(f"Results in {target}; report {html.name}, summary {markdown.name}.")
    if comparison is not None and comparison.regressions:
        raise typer.Exit(1)


def _print_result(result: EvalResult) -> None:
    table = Table(
        "metric", "value", "95 % CI", "n", title=f"{result.suite} ({result.duration_s:.0f} s)", box=None
    )
    for metric in result.metrics:
        interval = f"{metric.ci_low:.3f}–{metric.ci_high:.3f}" if metric.ci_low is not None else ""  # noqa: RUF001
        table.add_row(metric.name, f"{metric.value:.4g}", interval, str(metric.n or ""))
    out.print(table)
    for note in result.notes:
        out.print(f"  [dim]{note}[/dim]")


def _print_comparison(comparison: Comparison, *, show_all: bool) -> None:
    colour = {"regression": "red", "improvement": "green", "same": "dim", "new": "cyan", "gone": "yellow"}
    table = Table("suite", "metric", "before", "after", "change", "noise", "", box=None, title="Compared")
    shown = [r for r in comparison.rows if show_all or r.verdict != "same"]
    for row in sorted(shown, key=lambda r: r.verdict != "regression"):
        table.add_row(
            row.suite,
            row.metric,
            f"{row.before:.4g}",
            f"{row.after:.4g}",
            f"{row.delta:+.4g}",
            f"±{row.noise:.3g}",
            f"[{colour[row.verdict]}]{row.verdict}[/]",
        )
    out.print(table)
    same = sum(r.verdict == "same" for r in comparison.rows)
    out.print(
        f"{len(comparison.regressions)} regression(s), {len(comparison.improvements)} improvement(s), "
        f"{same} within noise."
    )
    for warning in comparison.warnings:
        err.print(f"[yellow]Note:[/yellow] {warning}")
