"""`bastion eval`, run as a user runs it: real third-party data from the registries, the real
embedding model and Qdrant Edge, and (for the model suites) the real llama-server."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from evals import load_result
from tests.bastion.test_cli import bastion

RETRIEVAL = ("retrieval-cwe", "retrieval-banking", "docs-faq", "retrieval-code")
# These runs take 2-3 minutes on an idle 2-core machine and more than twice that on a loaded one (CI):
# a bound that catches a hang, not a slow machine.
LONG_RUN_S = 1800
pytestmark = pytest.mark.timeout(LONG_RUN_S + 120)  # the module fixture's run counts in its first test


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    done = bastion(
        "eval",
        *RETRIEVAL,
        "--limit",
        "2",
        "--mode",
        "sparse",
        "--mode",
        "hybrid",
        "--json",
        "--out",
        str(out),
        data_dir=tmp_path_factory.mktemp("data"),
        timeout_s=LONG_RUN_S,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert [r["suite"] for r in printed] == list(RETRIEVAL)
    return out


def test_retrieval_suites_write_versioned_results_and_a_report(retrieval_run: Path) -> None:
    assert {p.name for p in retrieval_run.iterdir()} == {f"{s}.json" for s in RETRIEVAL} | {
        "report.html",
        "summary.md",
    }
    for suite in RETRIEVAL:
        result = load_result(retrieval_run / f"{suite}.json")
        assert result.settings["limit"] == 2 and result.settings["modes"] == ["sparse", "hybrid"]
        assert result.data and all(d.version and d.sha256 for d in result.data)
        assert result.details["ingest_s"] > 0 and result.details["index_mb"] > 0  # ablation costs
        for mode in ("sparse", "hybrid"):
            for name in ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr"):
                metric = result.metric(f"{mode}/{name}")
                assert 0 <= metric.value <= 1 and metric.n == 2 and metric.ci_low is not None
            for name in ("ndcg@10", "recall@10", "mrr"):
                metric = result.metric(f"{mode}-by-document/{name}")
                assert 0 <= metric.value <= 1 and metric.n == 2 and metric.ci_low is not None
        assert {s.label for s in result.series} == {"sparse", "hybrid"}
    html = (retrieval_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(RETRIEVAL)
    summary = (retrieval_run / "summary.md").read_text()
    assert all(suite in summary for suite in RETRIEVAL)


def test_compare_passes_a_run_against_itself_and_fails_a_regression(
    retrieval_run: Path, tmp_path: Path
) -> None:
    same = bastion("eval", "compare", str(retrieval_run), str(retrieval_run), data_dir=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "0 regression(s)" in same.stdout

    worse = tmp_path / "worse"
    shutil.copytree(retrieval_run, worse)
    path = worse / "retrieval-cwe.json"
    raw = json.loads(path.read_text())
    for metric in raw["metrics"]:
        if metric["name"] == "hybrid/recall@10":
            # Far outside any interval two questions allow: a real regression.
            metric.update(value=-5.0, ci_low=-5.0, ci_high=-5.0)
    path.write_text(json.dumps(raw))
    flagged = bastion("eval", "compare", str(retrieval_run), str(worse), "--json", data_dir=tmp_path)
    assert flagged.returncode == 1
    rows = json.loads(flagged.stdout)["rows"]
    assert [(r["suite"], r["metric"]) for r in rows if r["verdict"] == "regression"] == [
        ("retrieval-cwe", "hybrid/recall@10")
    ]

    report = bastion(
        "eval",
        "report",
        str(worse),
        "--out",
        str(tmp_path / "r"),
        "--baseline",
        str(retrieval_run),
        data_dir=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    assert "regression" in (tmp_path / "r" / "summary.md").read_text()


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    unknown = bastion("eval", "nope", data_dir=tmp_path)
    assert unknown.returncode == 2 and "unknown suite 'nope'" in unknown.stderr
    assert "retrieval-cwe" in unknown.stderr  # it lists the suites there are
    (tmp_path / "legacy.json").write_text('{"benchmark": "x"}')
    legacy = bastion(
        "eval", "compare", str(tmp_path / "legacy.json"), str(tmp_path / "legacy.json"), data_dir=tmp_path
    )
    assert legacy.returncode != 0 and "no `schema` field" in legacy.stderr
    mode = bastion("eval", "retrieval-cwe", "--mode", "fuzzy", data_dir=tmp_path)
    assert mode.returncode == 2 and "fuzzy" in mode.stderr
    assist = bastion("eval", "retrieval-cwe", "--assist", "magic", data_dir=tmp_path)
    assert (
        assist.returncode == 2
        and "unknown --assist 'magic'" in assist.stderr
        and "expand+rerank" in assist.stderr
    )


def test_bench_through_the_same_entry_point(tmp_path: Path) -> None:
    done = bastion("eval", "bench", "router", "--out", str(tmp_path / "b"), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["schema"] == "bastion-eval/1" and printed["suite"] == "bench/router"
    assert load_result(tmp_path / "b" / "bench-router.json").metric("rules/accuracy").value > 0.5


@pytest.mark.llm
def test_model_suites_against_the_local_server_with_it_as_the_judge(llm_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = bastion(
        "eval",
        "grounding",
        "routing",
        "cache",
        "--limit",
        "2",
        "--judge-url",
        llm_url,
        "--out",
        str(out),
        data_dir=tmp_path / "data",
        model_url=llm_url,
        timeout_s=LONG_RUN_S,
    )
    assert done.returncode == 0, done.stderr
    grounding = load_result(out / "grounding.json")
    outcomes = grounding.details["outcomes"]
    assert sorted(o["withheld"] for o in outcomes) == [False, True]
    for name in ("answered/verified_share", "answerable/answered_share", "withheld/refusal_share"):
        assert 0 <= grounding.metric(name).value <= 1 or math.isnan(grounding.metric(name).value)
    assert {"judged/faithful_share", "judged/correct_share"} <= set(grounding.metric_names())
    routing = load_result(out / "routing.json")
    assert routing.details["session"]["questions"] == routing.details["session"]["questions"][:2]
    assert routing.metric("session/routed_completion_tokens").value > 0
    cache = load_result(out / "cache.json")
    # Turn 2 starts with turn 1's system message in Bastion's layout: most of it is cached.
    assert cache.metric("qa/bastion/cached_share").value > 0.5
    assert cache.metric("code/bastion/cached_share").value > 0.5
    assert len([s for s in cache.series if s.label == "bastion"]) == 2


@pytest.mark.llm
def test_model_assisted_search_is_measured_against_plain_search_on_the_same_queries(
    llm_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = bastion(
        "eval",
        "retrieval-cwe",
        "--limit",
        "3",
        "--mode",
        "hybrid",
        "--assist",
        "expand+rerank",
        "--assist-limit",
        "2",
        "--out",
        str(out),
        data_dir=tmp_path / "data",
        model_url=llm_url,
        timeout_s=LONG_RUN_S,
    )
    assert done.returncode == 0, done.stderr
    result = load_result(out / "retrieval-cwe.json")
    assert result.settings["assists"] == ["expand+rerank"] and result.settings["assist_limit"] == 2
    assert result.metric("hybrid/ndcg@10").n == 3
    assisted = result.metric("hybrid+expand+rerank/ndcg@10")
    assert assisted.n == 2 and 0 <= assisted.value <= 1
    gain = result.metric("hybrid+expand+rerank/ndcg@10_gain")
    assert gain.n == 2 and -1 <= gain.value <= 1 and gain.ci_low is not None
    # Both model calls were made and counted: the expansion's prompt and the candidates' prompt.
    assert result.metric("hybrid+expand+rerank/prompt_tokens").value > 200
    assert result.metric("hybrid+expand+rerank/completion_tokens").value > 0
    assert result.metric("hybrid+expand+rerank/latency_ms").value > 0
