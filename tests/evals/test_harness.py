"""The evaluation harness's arithmetic and bookkeeping: intervals, scores, comparisons, the result file."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents import Citation, QAResult
from evals import EvalResult, EvalResultError, Metric, UsageError, compare, load_result, run_bench
from evals._bench import metrics_of
from evals._corpora import Query
from evals._grounding import Answered, decline_tradeoff, declined_at, split, verify
from evals._result import Provenance
from evals._retrieval import scores
from evals._stats import bootstrap, mean_metric, wilson
from serving import Usage

HERE = Provenance(git_commit="abc", git_dirty=False, python="3.11", machine="test", cpus=2)


def result(suite: str = "s", *metrics: Metric, settings: dict[str, object] | None = None) -> EvalResult:
    return EvalResult(
        suite=suite,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=1.0,
        provenance=HERE,
        settings=settings or {},
        metrics=list(metrics),
    )


def test_wilson_matches_the_textbook_interval_and_never_leaves_0_1() -> None:
    low, high = wilson(5, 10)
    assert (round(low, 3), round(high, 3)) == (0.237, 0.763)
    assert wilson(0, 5)[0] == 0.0 and 0 < wilson(0, 5)[1] < 0.5
    assert wilson(5, 5)[1] == 1.0 and 0.5 < wilson(5, 5)[0] < 1


def test_mean_metric_uses_wilson_for_hits_and_a_seeded_bootstrap_otherwise() -> None:
    hits = mean_metric("m", [1.0, 0.0, 1.0, 1.0])
    assert (hits.ci_low, hits.ci_high) == tuple(round(x, 4) for x in wilson(3, 4)) and hits.n == 4
    graded = [0.1, 0.5, 0.9, 0.3, 0.7]
    first, again = mean_metric("m", graded), mean_metric("m", graded)
    assert first == again and first.ci_low is not None and first.ci_high is not None
    assert first.ci_low < first.value < first.ci_high
    assert math.isnan(mean_metric("m", []).value)
    # A paired gain that is 0 for every query is no gain with no spread, not a Wilson interval of 0-16 %.
    none = mean_metric("gain", [0.0] * 20, proportion=False)
    assert (none.value, none.ci_low, none.ci_high) == (0.0, 0.0, 0.0)
    assert mean_metric("hits", [0.0] * 20).ci_high > 0.1


@given(st.lists(st.floats(0, 1), min_size=2, max_size=40))
def test_bootstrap_interval_brackets_the_mean(values: list[float]) -> None:
    low, high = bootstrap(values)
    mean = sum(values) / len(values)
    assert low - 1e-9 <= mean <= high + 1e-9


def test_scores_with_several_relevant_documents() -> None:
    got = scores(["x", "a", "y", "b"], frozenset({"a", "b", "c"}))
    assert got["recall@1"] == 0 and got["recall@2"] == pytest.approx(1 / 3)
    assert got["recall@5"] == pytest.approx(2 / 3) and got["mrr"] == 0.5
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert scores(["a"], frozenset({"a"}))["ndcg@10"] == 1.0


@given(st.permutations(list("abcdefghij")), st.sets(st.sampled_from("abcdefghijk"), min_size=1))
def test_scores_are_bounded_and_recall_grows_with_k(ranked: list[str], relevant: set[str]) -> None:
    got = scores(ranked, frozenset(relevant))
    assert all(0 <= v <= 1 + 1e-9 for v in got.values())
    curve = [got[f"recall@{k}"] for k in (1, 2, 3, 5, 10, 20)]
    assert curve == sorted(curve)


def test_a_drop_beyond_both_intervals_is_a_regression_and_noise_is_not() -> None:
    before = result("s", Metric(name="m", value=0.80, n=300, ci_low=0.75, ci_high=0.85))
    worse = result("s", Metric(name="m", value=0.60, n=300, ci_low=0.55, ci_high=0.65))
    wobble = result("s", Metric(name="m", value=0.77, n=300, ci_low=0.72, ci_high=0.82))
    assert [r.verdict for r in compare([before], [worse]).rows] == ["regression"]
    assert [r.verdict for r in compare([before], [wobble]).rows] == ["same"]
    assert [r.verdict for r in compare([worse], [before]).rows] == ["improvement"]


def test_figures_without_intervals_use_the_tolerance_and_direction() -> None:
    lower_better = result("s", Metric(name="ms", value=100, n=0, higher_is_better=False))
    slower = result("s", Metric(name="ms", value=120, n=0, higher_is_better=False))
    assert compare([lower_better], [slower]).regressions[0].metric == "ms"
    assert not compare([lower_better], [slower], tolerance=0.5).regressions
    count = result("s", Metric(name="tokens", value=1, n=0, higher_is_better=None))
    more = result("s", Metric(name="tokens", value=9, n=0, higher_is_better=None))
    assert [r.verdict for r in compare([count], [more]).rows] == ["same"]


def test_compare_names_new_and_gone_metrics_and_warns_about_other_settings() -> None:
    a = result("s", Metric(name="old", value=1, n=0), settings={"limit": 5})
    b = result("s", Metric(name="new", value=1, n=0), settings={"limit": None})
    comparison = compare([a], [b])
    assert {(r.metric, r.verdict) for r in comparison.rows} == {("old", "gone"), ("new", "new")}
    assert any("limit 5 → None" in w for w in comparison.warnings)
    assert any("candidate only" in w for w in compare([a], [b, result("t")]).warnings)
    with pytest.raises(UsageError, match="two results for suite 's'"):
        compare([a, a], [b])


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.2)), min_size=1, max_size=8))
def test_a_run_compared_with_itself_has_no_regressions(values: list[tuple[float, float]]) -> None:
    metrics = [
        Metric(name=f"m{i}", value=v, n=10, ci_low=max(0, v - w), ci_high=v + w)
        for i, (v, w) in enumerate(values)
    ]
    comparison = compare([result("s", *metrics)], [result("s", *metrics)])
    assert {r.verdict for r in comparison.rows} == {"same"}


def test_results_round_trip_and_bad_files_are_refused(tmp_path: Path) -> None:
    saved = result("bench/x", Metric(name="a/b", value=0.5, n=4, ci_low=0.1, ci_high=0.9)).save(tmp_path)
    assert saved.name == "bench-x.json" and not list(tmp_path.glob("*.partial"))
    assert load_result(saved).metric("a/b").value == 0.5
    assert json.loads(saved.read_text())["schema"] == "bastion-eval/1"
    (tmp_path / "old.json").write_text('{"benchmark": "x"}')
    (tmp_path / "future.json").write_text('{"schema": "bastion-eval/9"}')
    (tmp_path / "broken.json").write_text("{")
    for name, message in (
        ("old.json", "no `schema` field"),
        ("future.json", "this Bastion reads"),
        ("broken.json", "is not JSON"),
        ("missing.json", "no such file"),
    ):
        with pytest.raises(EvalResultError, match=message):
            load_result(tmp_path / name)


def test_benchmark_reports_become_metrics_with_intervals_from_standard_errors() -> None:
    found = {
        m.name: m
        for m in metrics_of(
            {
                "benchmark": "b",
                "modes": {"hybrid": {"mrr": 0.5, "mrr_se": 0.05, "n": 40}},
                "p50_ms": 3,
                "runs": [1],
            }
        )
    }
    assert set(found) == {"modes/hybrid/mrr", "p50_ms"}
    mrr = found["modes/hybrid/mrr"]
    assert (mrr.ci_low, mrr.ci_high, mrr.n, mrr.higher_is_better) == (0.402, 0.598, 40, True)
    assert found["p50_ms"].higher_is_better is False


def test_run_bench_gives_the_evaluation_format() -> None:
    got = run_bench("router", [])
    assert got.suite == "bench/router" and got.settings == {"argv": []}
    assert 0.5 < got.metric("rules/accuracy").value <= 1
    with pytest.raises(UsageError, match="unknown benchmark 'nope'"):
        run_bench("nope", [])


def _answer(citations: list[Citation]) -> QAResult:
    return QAResult(
        thread_id="t",
        question="q",
        search_query="q",
        answer="a",
        citations=citations,
        retrieved_chunk_ids=[],
        refused=False,
        flags=[],
        reasoning_effort="none",
        effort_reason="",
        escalated=False,
        steps=[],
        usage=Usage(),
        timings={},
    )


def test_a_citation_verifies_only_against_the_exact_span_of_its_source() -> None:
    texts = {"/d.rst": "Intro. The answer is 42. Outro."}

    def cite(start: int, end: int, text: str, quote: str | None = None) -> Citation:
        return Citation(
            number=1, chunk_id="c", source="/d.rst", start=start, end=end, title="", text=text, quote=quote
        )

    assert verify(_answer([cite(7, 24, "The answer is 42.", "is 42")]), texts)
    assert not verify(_answer([cite(7, 24, "The answer is 41.")]), texts)  # text not at its span
    assert not verify(_answer([cite(0, 17, "The answer is 42.")]), texts)  # right text, wrong place
    assert not verify(_answer([cite(7, 24, "The answer is 42.", "is 43")]), texts)
    assert not verify(_answer([]), texts)  # an uncited answer is not grounded


def test_withheld_questions_are_a_seeded_third_and_disjoint() -> None:
    queries = [Query(id=str(i), text=f"q{i}", relevant=frozenset({str(i)})) for i in range(9)]
    answerable, withheld = split(queries, 0)
    assert len(withheld) == 3 and not {q.id for q in answerable} & {q.id for q in withheld}
    assert split(queries, 0) == (answerable, withheld)
    assert len(split(queries[:2], 0)[1]) == 1 and split(queries[:1], 0)[1] == []


def test_a_run_keeps_the_provenance_it_started_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from evals import EvalContext
    from evals._result import now

    context = EvalContext(cache_dir=tmp_path, embedder=None, provenance=HERE)  # type: ignore[arg-type]
    # A commit made while a long run is going must not relabel the code that ran.
    monkeypatch.setattr(
        Provenance, "here", classmethod(lambda cls: HERE.model_copy(update={"git_commit": "later"}))
    )
    got = context.result("s", now(), data=[], metrics=[], series=[], notes=[], details={}, extra=1)
    assert got.provenance.git_commit == "abc"
    assert got.settings == {"limit": None, "seed": 0, "extra": 1}


def test_the_decline_tradeoff_replays_the_recorded_support_at_each_threshold() -> None:
    answered = Answered(id="a", question="q", withheld=False, support=0.75)
    unsupported = Answered(
        id="b", question="q", withheld=True, refused=True, support=0.2, flags=["unsupported"]
    )
    model_no = Answered(id="c", question="q", withheld=True, refused=True, flags=["model_refused"])
    verifier_no = Answered(
        id="d", question="q", withheld=True, refused=True, support=0.9, flags=["verifier_declined"]
    )
    assert [declined_at(answered, t) for t in (0.5, 0.75, 0.8)] == [False, False, True]
    assert [declined_at(unsupported, t) for t in (0.0, 0.25)] == [False, True]
    assert declined_at(model_no, 0.0) and declined_at(verifier_no, 0.0)
    hidden_curve, asked_curve = decline_tradeoff([answered], [unsupported, model_no, verifier_no])
    assert hidden_curve.y[0] == round(2 / 3, 4) and hidden_curve.y[-1] == 1.0
    assert asked_curve.y == [0.0 if t <= 0.75 else 1.0 for t in asked_curve.x]
