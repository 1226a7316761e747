"""The evaluation report: one HTML file a compliance officer can read and print, and a Markdown summary
for a pull request.

The HTML is read on air-gapped machines, so it is a single file with nothing fetched from elsewhere:
inline CSS, plots as inline PNG. It starts with what a reader who reads nothing else needs — one row
per suite with its headline number, its 95 % interval, and exactly which code and data produced it —
and explains each suite in plain words before its numbers. Suite text (notes, names, settings) comes
from data and may contain markup, so every piece of it is escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence, Set
from datetime import UTC, datetime
from pathlib import Path

from evals._charts import chart_png, data_uri, group_by_chart
from evals._compare import Comparison, Row
from evals._format import (
    arrow,
    blurb,
    comparison_warnings,
    data_versions,
    fmt,
    fmt_ci,
    fmt_delta,
    fmt_metric,
    fmt_value,
    headline,
    ordered_changes,
    short_commit,
)
from evals._markdown import render_markdown
from evals._result import EvalResult, Metric, now

# --- HTML ---------------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1b1f24; background: #fff; margin: 0; }
main { max-width: 62rem; margin: 0 auto; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.5rem 0 .5rem; padding-bottom: .2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.muted, .blurb { color: #4b535c; }
.blurb { max-width: 48rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #d8dee4; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
td a { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.dir { color: #4b535c; padding-left: .2rem; }
.dirty { color: #9a6700; font-weight: 600; }
tr.regression td { background: #ffebe9; font-weight: 600; }
tr.regression td:first-child { border-left: 4px solid #cf222e; }
tr.improvement td { background: #e6f6ea; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
details { margin: .8rem 0; font-size: .9rem; }
summary { cursor: pointer; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
@page { margin: 1.5cm; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  tr, figure, img { break-inside: avoid; }
  /* Backgrounds mark the regressions; browsers drop them when printing unless told otherwise. */
  th, tr.regression td, tr.improvement td { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  /* Paper cannot be unfolded: print the folded run details open where the browser supports it. */
  details::details-content { content-visibility: visible; display: block; }
}
"""


def render_html(
    results: Sequence[EvalResult], *, title: str = "Bastion evaluation", comparison: Comparison | None = None
) -> str:
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        f'<header>\n<h1>{_esc(title)}</h1>\n<p class="muted">Report generated {_date(now())} '
        f"from {len(results)} evaluation run(s).</p>\n</header>\n",
        _summary_html(results),
        _comparison_html(comparison) if comparison is not None else "",
        *(_suite_html(i, result) for i, result in enumerate(results)),
        "</main>\n</body>\n</html>\n",
    ]
    return "".join(parts)


def _summary_html(results: Sequence[EvalResult]) -> str:
    e = _esc
    rows = []
    for i, result in enumerate(results):
        top = headline(result)
        commit = f"<code>{e(short_commit(result))}</code>"
        if result.provenance.git_dirty:
            commit += '<br><span class="dirty">with uncommitted changes</span>'
        rows.append(
            [
                f'<a href="#{_anchor(i, result)}">{e(result.suite)}</a>',
                e(top.name) + _arrow_html(top) if top else "—",
                e(fmt_metric(top)) if top else "—",
                str(top.n) if top and top.n else "—",
                "<br>".join(e(d) for d in data_versions(result)) or "—",
                commit,
                # Date over time: the summary table must fit a printed page's width.
                _date(result.started_at).replace(" ", "<br>", 1),
            ]
        )
    head = ["Suite", "Headline metric", "Value (95 % CI)", "n", "Data", "Commit", "Date"]
    return (
        '<section id="summary">\n<h2>Summary</h2>\n'
        '<p class="blurb">One row per evaluation suite, with the number that best sums it up. Values '
        "are proportions between 0 and 1 unless a unit is given; the range in parentheses is the 95 % "
        "confidence interval, the range the true value most likely lies in given the sample of size "
        "<i>n</i>. The data versions and code version (commit) say exactly what was measured.</p>\n"
        f"{_table(head, rows, num={2, 3, 6})}</section>\n"
    )


def _comparison_html(comparison: Comparison) -> str:
    changed, same = ordered_changes(comparison)
    n_regressions = sum(r.verdict == "regression" for r in changed)
    lead = (
        f"<strong>{n_regressions} metric(s) got worse</strong> than in the baseline run (highlighted)."
        if n_regressions
        else "No metric got worse than in the baseline run."
    )
    parts = [
        '<section id="changes">\n<h2>Changes since baseline</h2>\n',
        f'<p class="blurb">{lead} A difference counts only when it is larger than the uncertainty of the '
        "two runs together.</p>\n",
    ]
    if warnings := comparison_warnings(comparison):
        parts.append("<ul>\n" + "".join(f"<li>{_esc(w)}</li>\n" for w in warnings) + "</ul>\n")
    if changed:
        parts.append(_changes_table(changed))
    if same:
        parts.append(f"<details><summary>{len(same)} unchanged metric(s)</summary>\n")
        parts.append(f"{_changes_table(same)}</details>\n")
    return "".join(parts) + "</section>\n"


def _changes_table(rows: Sequence[Row]) -> str:
    e = _esc
    flag = {"regression": "⚠ regression"}
    cells = [
        [
            flag.get(r.verdict, r.verdict),
            e(r.suite),
            e(r.metric),
            fmt(r.before),
            fmt(r.after),
            fmt_delta(r.delta),
        ]
        for r in rows
    ]
    head = ["Verdict", "Suite", "Metric", "Before", "After", "Change"]
    return _table(head, cells, num={3, 4, 5}, row_classes=[r.verdict for r in rows])


def _suite_html(index: int, result: EvalResult) -> str:
    e = _esc
    parts = [
        f'<section class="suite" id="{_anchor(index, result)}">\n<h2>{e(result.suite)}</h2>\n',
        f'<p class="blurb">{e(blurb(result.suite))}</p>\n',
    ]
    if result.metrics:
        rows = [
            [e(m.name) + _arrow_html(m), e(fmt_value(m)), e(fmt_ci(m)) or "—", str(m.n or "—")]
            for m in result.metrics
        ]
        parts.append("<h3>Metrics</h3>\n" + _table(["Metric", "Value", "95 % CI", "n"], rows, num={1, 2, 3}))
    charts = group_by_chart(result.series)
    if charts:
        parts.append("<h3>Charts</h3>\n")
    for chart, series in charts.items():
        alt = f"Chart: {chart} ({', '.join(s.label for s in series)})"
        parts.append(f'<figure><img src="{data_uri(chart_png(chart, series))}" alt="{e(alt)}"></figure>\n')
    if result.notes:
        notes = "".join(f"<li>{e(note)}</li>\n" for note in result.notes)
        parts.append(f"<h3>Notes</h3>\n<ul>\n{notes}</ul>\n")
    return "".join(parts) + _run_details_html(result) + "</section>\n"


def _run_details_html(result: EvalResult) -> str:
    p = result.provenance
    run = {
        "Started": _date(result.started_at),
        "Duration": f"{fmt(result.duration_s)} s",
        "Commit": p.git_commit + (" (with uncommitted changes)" if p.git_dirty else ""),
        "Python": p.python,
        "Machine": f"{p.machine}, {p.cpus} CPU(s)",
    }
    run |= {f"Setting: {k}": _setting(v) for k, v in result.settings.items()}
    rows = [[_esc(k), f"<code>{_esc(v)}</code>"] for k, v in run.items()]
    e = _esc
    data = [
        [e(d.name), e(d.version), d.source, f"<code>{e(d.sha256) or '—'}</code>", e(d.detail) or "—"]
        for d in result.data
    ]
    data_head = ["Data", "Version", "Source", "SHA-256", "Used"]
    return (
        "<details><summary>Run details: settings and data versions</summary>\n"
        f"{_table(['Run', ''], rows)}{_table(data_head, data) if data else ''}</details>\n"
    )


def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    num: Set[int] = frozenset(),
    row_classes: Sequence[str] = (),
) -> str:
    """A table from cells that are already HTML; the columns in `num` are right-aligned numbers."""

    def cell(tag: str, column: int, content: str) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if column in num else f"<{tag}>{content}</{tag}>"

    thead = "".join(cell("th", i, _esc(h)) for i, h in enumerate(head))
    body = []
    for j, row in enumerate(rows):
        attr = f' class="{_esc(row_classes[j])}"' if j < len(row_classes) else ""
        body.append(f"<tr{attr}>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>\n")
    return f"<table>\n<thead><tr>{thead}</tr></thead>\n<tbody>\n{''.join(body)}</tbody>\n</table>\n"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _arrow_html(metric: Metric) -> str:
    if metric.higher_is_better is None:
        return ""
    better = "higher" if metric.higher_is_better else "lower"
    return f'<span class="dir" title="{better} is better">{arrow(metric)}</span>'


def _anchor(index: int, result: EvalResult) -> str:
    # Indexed because a report may hold two runs of one suite; ids must stay unique.
    return f"s{index}-" + re.sub(r"[^a-z0-9]+", "-", result.suite.lower()).strip("-")


def _date(moment: datetime) -> str:
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _setting(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


# --- Files --------------------------------------------------------------------------------------------


def write_report(
    results: Sequence[EvalResult], folder: Path, *, comparison: Comparison | None = None
) -> tuple[Path, Path]:
    """Write report.html and summary.md into `folder`; a reader never sees half of either."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("report.html", render_html(results, comparison=comparison)),
        ("summary.md", render_markdown(results, comparison=comparison)),
    ):
        target = folder / name
        partial = target.with_name(name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        written.append(target)
    return written[0], written[1]
