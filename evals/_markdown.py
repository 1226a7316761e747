"""The Markdown summary of an evaluation, for a pull request: headline table, per-suite metrics, and what
changed since the baseline with regressions flagged."""

from __future__ import annotations

import html
from collections.abc import Sequence

from evals._compare import Comparison, Row
from evals._format import (
    arrow,
    comparison_warnings,
    fmt,
    fmt_ci,
    fmt_delta,
    fmt_metric,
    fmt_value,
    headline,
    ordered_changes,
    short_commit,
)
from evals._result import EvalResult


def render_markdown(results: Sequence[EvalResult], *, comparison: Comparison | None = None) -> str:
    c = _cell
    lines = ["## Bastion evaluation", ""]
    changed, same = ordered_changes(comparison) if comparison is not None else ([], [])
    n_regressions = sum(r.verdict == "regression" for r in changed)
    if n_regressions:
        lines += [f"> ⚠️ **{n_regressions} regression(s)** since the baseline; see below.", ""]
    lines += ["| Suite | Headline metric | Value (95 % CI) | n | Commit |", "|---|---|--:|--:|---|"]
    for result in results:
        top = headline(result)
        commit = short_commit(result) + (" (dirty)" if result.provenance.git_dirty else "")
        lines.append(
            f"| {c(result.suite)} | {c(f'{top.name} {arrow(top)}') if top else '—'} "
            f"| {c(fmt_metric(top)) if top else '—'} | {top.n if top and top.n else '—'} | {c(commit)} |"
        )
    for result in results:
        lines += [
            "",
            f"<details><summary><b>{html.escape(result.suite)}</b>: "
            f"{len(result.metrics)} metric(s)</summary>",
        ]
        lines += ["", "| Metric | Value | 95 % CI | n |", "|---|--:|--:|--:|"]
        lines += [
            f"| {c(f'{m.name} {arrow(m)}')} | {c(fmt_value(m))} | {c(fmt_ci(m)) or '—'} | {m.n or '—'} |"
            for m in result.metrics
        ]
        lines += ["", "</details>"]
    if comparison is not None:
        lines += ["", "### Changes since baseline", ""]
        lines += [f"- {_cell(w)}" for w in comparison_warnings(comparison)]
        lines += ["", *_changes_markdown(changed)] if changed else ["", "No metric changed."]
        if same:
            lines += ["", f"<details><summary>{len(same)} unchanged metric(s)</summary>", ""]
            lines += [*_changes_markdown(same), "", "</details>"]
    return "\n".join(lines) + "\n"


def _changes_markdown(rows: Sequence[Row]) -> list[str]:
    c = _cell
    flag = {"regression": "⚠️ regression"}
    return ["| Verdict | Suite | Metric | Before | After | Change |", "|---|---|---|--:|--:|--:|"] + [
        f"| {flag.get(r.verdict, r.verdict)} | {c(r.suite)} | {c(r.metric)} | {fmt(r.before)} "
        f"| {fmt(r.after)} | {fmt_delta(r.delta)} |"
        for r in rows
    ]


def _cell(text: str) -> str:
    # GitHub renders inline HTML, so suite text is escaped there too; a bare pipe would end the cell.
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")
