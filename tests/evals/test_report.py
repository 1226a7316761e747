"""The report is what a compliance officer reads and prints, and what a pull request shows: it must be one
self-contained file with every plot inside it, escape suite text, put each suite's headline with its
interval up front, and flag regressions in both forms."""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evals._compare import Comparison, Row, Verdict
from evals._format import SUITE_BLURBS, fmt, headline
from evals._markdown import render_markdown
from evals._report import render_html, write_report
from evals._result import DataVersion, EvalResult, Metric, Provenance, Series

NOTE = '<script>alert("x")</script> & more'


def _result(suite: str, **fields: object) -> EvalResult:
    return EvalResult.model_validate(
        {
            "suite": suite,
            "started_at": datetime(2025, 3, 4, 12, 30, tzinfo=UTC),
            "duration_s": 42.5,
            "provenance": Provenance(
                git_commit="0123456789abcdef0123456789abcdef01234567",
                git_dirty=suite == "grounding",
                python="3.11.2",
                machine="Linux x86_64",
                cpus=2,
            ),
            **fields,
        }
    )


@pytest.fixture(scope="module")
def results() -> list[EvalResult]:
    cwe = _result(
        "retrieval-cwe",
        data=[DataVersion(name="cwe2", version="4.14", source="pypi", sha256="ab" * 32)],
        settings={"k": 10, "modes": ["dense", "hybrid"]},
        metrics=[
            Metric(name="dense/recall@5", value=0.4, n=120),  # no interval
            Metric(name="hybrid/ndcg@10", value=0.5512, n=120, ci_low=0.4923, ci_high=0.6071),
            Metric(name="hybrid/p95_ms", value=12.345, n=120, higher_is_better=False, unit="ms"),
        ],
        series=[
            Series(chart="Recall@k", label="dense", x=[1, 5, 10], y=[0.2, 0.4, 0.5], x_label="k"),
            Series(chart="Recall@k", label="hybrid", x=[1, 5, 10], y=[0.3, 0.5, 0.6], y_label="recall"),
            Series(chart="nDCG@10 by mode", label="2024", x=["dense", "hybrid"], y=[0.5, 0.55], kind="bar"),
            Series(chart="nDCG@10 by mode", label="2025", x=["dense", "hybrid"], y=[0.45, 0.6], kind="bar"),
        ],
    )
    grounding = _result(
        "grounding",
        metrics=[
            Metric(name="answers/declined", value=3, n=0, higher_is_better=None),
            Metric(name="answers/verified_share", value=0.9, n=50, ci_low=0.85, ci_high=0.94),
        ],
        series=[Series(chart="Verified by corpus", label="share", x=["a", "b"], y=[0.9, 0.8], kind="bar")],
        notes=[NOTE],
    )
    bench = _result("bench/ingest", metrics=[Metric(name="ingest/chunks_per_s", value=1234.56, n=3)])
    return [cwe, grounding, bench]


def _row(suite: str, metric: str, before: float, after: float, delta: float, verdict: Verdict) -> Row:
    return Row(
        suite=suite, metric=metric, before=before, after=after, delta=delta, noise=0.01, verdict=verdict
    )


def _comparison() -> Comparison:
    better = _row("grounding", "answers/verified_share", 0.8, 0.9, 0.1, "improvement")
    worse = _row("retrieval-cwe", "hybrid/ndcg@10", 0.6, 0.5512, -0.0488, "regression")
    same = _row("bench/ingest", "ingest/chunks_per_s", 1200, 1234.56, 34.56, "same")
    return Comparison(rows=[better, worse, same], warnings=["retrieval-cwe: settings differ: k 5 → 10"])


def _section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}">')
    return page[start : page.index("</section>", start)]


def test_html_has_one_inline_png_per_distinct_chart(results: list[EvalResult]) -> None:
    page = render_html(results)
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # Recall@k (two lines), nDCG@10 by mode (grouped bars), Verified by corpus
    assert all(base64.b64decode(image, validate=True).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert page.count("<img") == 3


def test_html_fetches_nothing_from_elsewhere(results: list[EvalResult]) -> None:
    page = render_html(results, comparison=_comparison())
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    assert re.findall(r'href="([^"]*)"', page) == [
        f"#s{i}-{s}" for i, s in enumerate(("retrieval-cwe", "grounding", "bench-ingest"))
    ]


def test_html_escapes_suite_text(results: list[EvalResult]) -> None:
    page = render_html(results, title="Q1 <audit>")
    assert "<script" not in page and "alert(" + '"x"' not in page
    assert "<li>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more</li>" in page
    assert "<title>Q1 &lt;audit&gt;</title>" in page


def test_html_summary_gives_each_suite_headline_with_interval_and_provenance(
    results: list[EvalResult],
) -> None:
    summary = _section(render_html(results), "summary")
    rows = re.findall(r"<tr>.*?</tr>", summary, re.DOTALL)[1:]
    assert len(rows) == 3
    cwe, grounding, bench = rows
    assert "hybrid/ndcg@10" in cwe and "0.551 (0.492\u20130.607)" in cwe and ">120<" in cwe
    assert "cwe2 4.14 (pypi)" in cwe and "0123456" in cwe and "uncommitted" not in cwe
    assert "2025-03-04<br>12:30 UTC" in cwe
    assert "answers/verified_share" in grounding and "0.9 (0.85\u20130.94)" in grounding
    assert "with uncommitted changes" in grounding
    assert "ingest/chunks_per_s" in bench and "1235" in bench


def test_html_has_a_section_per_suite_that_explains_it(results: list[EvalResult]) -> None:
    page = render_html(results)
    for i, suite in enumerate(("retrieval-cwe", "grounding", "bench-ingest")):
        assert f'<section class="suite" id="s{i}-{suite}">' in page
    assert "first k search results" in SUITE_BLURBS["retrieval-cwe"]
    assert SUITE_BLURBS["grounding"].split(",")[0] in page
    assert "benchmark" in page and "(&#x27;ingest&#x27;)" in page  # the bench/<name> fallback
    assert 'title="lower is better">↓' in page and 'title="higher is better">↑' in page
    assert page.count("<details>") == 3 and "Setting: modes" in page and "ab" * 32 in page


def test_html_lists_regressions_first_and_highlighted(results: list[EvalResult]) -> None:
    changes = _section(render_html(results, comparison=_comparison()), "changes")
    assert "1 metric(s) got worse" in changes
    regression = changes.index('<tr class="regression">')
    assert regression < changes.index('<tr class="improvement">') < changes.index('<tr class="same">')
    assert "0.6" in changes[regression:] and "-0.0488" in changes[regression:]
    assert "<li>retrieval-cwe: settings differ: k 5 → 10</li>" in changes
    assert "Changes since baseline" not in render_html(results)


def test_markdown_has_a_row_per_suite(results: list[EvalResult]) -> None:
    text = render_markdown(results)
    assert "<img" not in text and "![" not in text
    lines = text.splitlines()
    for suite in ("retrieval-cwe", "grounding", "bench/ingest"):
        assert sum(line.startswith(f"| {suite} |") for line in lines) == 1
    assert "| retrieval-cwe | hybrid/ndcg@10 ↑ | 0.551 (0.492\u20130.607) | 120 | 0123456 |" in lines
    assert "| grounding | answers/verified_share ↑ | 0.9 (0.85\u20130.94) | 50 | 0123456 (dirty) |" in lines
    assert "| hybrid/p95_ms ↓ | 12.3 ms | — | 120 |" in lines
    assert "⚠️" not in text and "Changes since baseline" not in text


def test_markdown_flags_regressions(results: list[EvalResult]) -> None:
    text = render_markdown(results, comparison=_comparison())
    assert "**1 regression(s)**" in text and "- retrieval-cwe: settings differ: k 5 → 10" in text
    regression = text.index("| ⚠️ regression | retrieval-cwe | hybrid/ndcg@10 | 0.6 | 0.551 | -0.0488 |")
    assert regression < text.index("| improvement | grounding |")
    assert text.count("⚠️ regression") == 1  # listed once though it is both a row and a regression

    calm = Comparison(
        rows=[_row("grounding", "answers/verified_share", 0.8, 0.9, 0.1, "improvement")], warnings=[]
    )
    assert "⚠️" not in render_markdown(results, comparison=calm)


def test_markdown_escapes_cells() -> None:
    text = render_markdown([_result("odd|<b>", metrics=[Metric(name="a|b", value=1, n=1)])])
    assert "| odd\\|&lt;b&gt; |" in text and "| a\\|b ↑ |" in text
    assert "<summary><b>odd|&lt;b&gt;</b>" in text and "odd|<b>" not in text


def test_write_report_writes_both_files_whole(results: list[EvalResult], tmp_path: Path) -> None:
    folder = tmp_path / "out"
    html_path, md_path = write_report(results, folder, comparison=_comparison())
    assert (html_path, md_path) == (folder / "report.html", folder / "summary.md")
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Changes since baseline" in html_path.read_text(encoding="utf-8")
    assert md_path.read_text(encoding="utf-8") == render_markdown(results, comparison=_comparison())
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "summary.md"]


def test_number_format_and_headline_choice() -> None:
    assert [fmt(v) for v in (0.5512, 0.55, 0.01234, 12.345, 1234.56, 0, 1.0, -0.0488)] == [
        "0.551", "0.55", "0.0123", "12.3", "1235", "0", "1", "-0.0488",
    ]  # fmt: skip
    assert fmt(math.nan) == "—"
    plain = _result("routing", metrics=[Metric(name="routing/high_share", value=0.2, n=9)])
    assert headline(plain) == plain.metrics[0]
    assert headline(_result("none")) is None
    routed = _result("routing", metrics=[*plain.metrics, Metric(name="routing/accuracy", value=0.8, n=9)])
    assert headline(routed) == routed.metrics[1]
