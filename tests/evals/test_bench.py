"""The benchmarks run on tiny inputs and print the JSON they promise, so they cannot rot unseen.
Their numbers are not asserted: speed is measured by running them, never in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.bench import (
    embed_backends,
    embed_throughput,
    ingest,
    quality_cwe,
    quantization,
    query_latency,
    reindex,
)
from evals.bench.cache_reuse import measure
from tests.conftest import CORPUS


def _details(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A benchmark prints one bastion-eval/1 result; its own report is in `details`."""
    result = json.loads(capsys.readouterr().out)
    assert result["schema"] == "bastion-eval/1" and result["suite"].startswith("bench/")
    details: dict[str, Any] = result["details"]
    return details


@pytest.mark.llm
async def test_cache_reuse_bench_compares_the_layouts_for_both_agents(llm_url: str) -> None:
    report = await measure(llm_url, CORPUS, turns=2, pin_tokens=2000)
    for session in ("qa", "code"):
        for layout in ("bastion", "pinned", "naive") if session == "qa" else ("bastion", "naive"):
            summary = report[session][layout]
            assert len(summary["turns"]) == 2 and all(t["prompt_tokens"] > 0 for t in summary["turns"])
            assert all(t["ttft_ms"] > 0 for t in summary["turns"])
        # The follow-up starts with turn 1's system message in Bastion's layout: most of it is cached.
        assert report[session]["bastion"]["follow_up_cached_share"] > 0.5
    # Pinned documents: the first turn shows more than its hits, the follow-up reuses all of it.
    pinned, passages = report["qa"]["pinned"], report["qa"]["bastion"]
    assert pinned["turns"][0]["prompt_tokens"] > passages["turns"][0]["prompt_tokens"]
    assert pinned["follow_up_cached_share"] > 0.5


def test_ingest_bench(capsys: pytest.CaptureFixture[str]) -> None:
    ingest.main(["--corpus", str(CORPUS), "--pattern", "*.md", "--max-files", "2"])
    report = _details(capsys)
    assert report["documents_indexed"] == 2 and report["chunks"] > 0
    assert report["bastion_chunks_per_s"] > 0 and report["raw_encode_chunks_per_s"] > 0
    assert report["cpu_side_chunks_per_s"] > 0


def test_query_latency_bench(capsys: pytest.CaptureFixture[str]) -> None:
    query_latency.main(["--sizes", "300", "--queries", "3"])
    row = _details(capsys)["sizes"]["300"]
    for store in ("edge", "qdrant_local"):
        assert set(row[store]) >= {"dense", "sparse", "hybrid", "hybrid+acl"}
        assert all(row[store][case]["n"] == 3 for case in ("dense", "sparse", "hybrid", "hybrid+acl"))


def test_quantization_bench_compares_both_layouts(capsys: pytest.CaptureFixture[str]) -> None:
    quantization.main(["--points", "600", "--queries", "5", "--clusters", "20"])
    report = _details(capsys)
    assert set(report["layouts"]) == {"float", "int8"}
    assert set(report["layouts"]["int8"]["search"]) == {"rescore", "no_rescore", "rescore_oversample2"}
    for layout in report["layouts"].values():
        assert layout["index_rss_mib"] >= 0 and layout["disk_mib"] > 0
        assert all(0 <= mode["recall_at_10"] <= 1 for mode in layout["search"].values())


def test_reindex_bench_times_whole_commands(capsys: pytest.CaptureFixture[str]) -> None:
    reindex.main(["--files", "3", "--repeat", "1", "--backends", "torch", "onnx"])
    report = _details(capsys)
    assert report["files"] == 3 and report["chunks"] > 0 and report["raw_pytorch_encode"]["chunks_per_s"] > 0
    assert set(report["first_index"]) == {"torch", "onnx"}
    assert all(row["vs_raw_pytorch"] > 0 for row in report["first_index"].values())
    assert report["help_s"] > 0 and report["noop_reindex_s"] > 0
    assert report["noop_reindex_heavy_imports"] == []


def test_embed_backends_bench_compares_quality_and_speed_with_pytorchs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    embed_backends.main(
        ["--suites", "retrieval-cwe", "--limit", "3", "--texts", "20", "--queries", "3", "--rounds", "1"]
    )
    report = _details(capsys)
    suite = report["suites"]["retrieval-cwe"]
    assert suite["queries"] == 3 and set(suite["ingest_s"]) == {"torch", "onnx", "onnx-int8"}
    for mode in ("dense", "hybrid"):
        assert "diff" not in suite[mode]["torch"]
        # The float graph ranks as PyTorch does (its vectors agree to 1e-6; a near-tie may still flip).
        assert abs(suite[mode]["onnx"]["diff"]) < 0.05
        low, high = suite[mode]["onnx-int8"]["diff_ci95"]
        assert low <= suite[mode]["onnx-int8"]["diff"] <= high
    assert report["ingest"]["texts"] == 20 and report["ingest"]["onnx"]["speedup"] > 0
    assert report["query"]["onnx-int8"]["n"] == 3


def test_quality_cwe_bench(capsys: pytest.CaptureFixture[str]) -> None:
    quality_cwe.main(["--limit", "5", "--max-documents", "30", "--modes", "hybrid", "sparse"])
    report = _details(capsys)
    assert report["documents"] == 30 and report["queries_used"] == 5
    for mode in ("hybrid", "sparse"):
        assert 0 <= report["modes"][mode]["ndcg@10"] <= 1


def test_embed_throughput_bench(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("\n\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(30)))
    embed_throughput.main(
        ["--corpus", str(tmp_path), "--device", "cpu", "--batch-sizes", "8", "--max-chunks", "20"]
    )
    report = _details(capsys)
    assert report["chunks"] > 0 and report["runs"][0]["device"] == "cpu"


@pytest.mark.llm
async def test_client_overhead_bench(llm_url: str) -> None:
    from evals.bench.client_overhead import measure as overhead

    report = await overhead(llm_url, 2)
    assert report["requests"] == 2
    assert report["raw_httpx_median_ms"] > 0 and report["bastion_client_median_ms"] > 0  # type: ignore[operator]
    assert 0.2 < report["ratio_bastion_to_raw"] < 5  # type: ignore[operator]  # the same server, within reason


@pytest.mark.llm
def test_parallel_load_bench(
    capsys: pytest.CaptureFixture[str], llama_binary: Path, llama_model: Path
) -> None:
    from evals.bench import parallel_load

    parallel_load.main(["--sessions", "1", "2", "--requests", "1", "--tokens", "4"])
    runs = _details(capsys)["runs"]
    assert [r["sessions"] for r in runs] == [1, 2] and all(r["completion_tokens_per_s"] > 0 for r in runs)


@pytest.mark.llm
async def test_agent_overhead_bench(llm_url: str) -> None:
    from evals.bench.agent_overhead import measure as overhead

    report = await overhead(llm_url, CORPUS, 2)
    assert report["questions"] == 2 and 0 <= report["overhead_share_mean"] < 1  # type: ignore[operator]


def _mistral_v15(effort: str) -> str:
    """Mistral Small 4's rendering of template_probe.MESSAGES, per mistral-common's v15 template."""
    return (
        "<s>[SYSTEM_PROMPT]SYSTEM-MARKER static instructions.[/SYSTEM_PROMPT]"
        f'[MODEL_SETTINGS]{{"reasoning_effort": "{effort}"}}[/MODEL_SETTINGS]'
        "[INST]FIRST-USER-MARKER question one[/INST]ASSISTANT-MARKER answer one</s>"
        "[INST]LAST-USER-MARKER question two[/INST]"
    )


def test_template_probe_finds_where_mistral_puts_the_effort() -> None:
    from evals.bench.template_probe import _first_difference, _region

    none, high = _mistral_v15("none"), _mistral_v15("high")
    offset = _first_difference([none], [high])
    assert offset is not None and none[:offset].endswith('{"reasoning_effort": "')
    assert _region(none, offset) == "after system message starts"
    assert _first_difference([none], [none]) is None


@pytest.mark.llm
async def test_template_probe_runs_against_the_local_server(llm_url: str) -> None:
    from evals.bench.template_probe import measure as probe

    report = await probe(llm_url)
    assert report["api"] == "apply-template"
    # SmolLM2's ChatML template ignores the effort: switching it never costs the local cache.
    assert report["reasoning_effort_high"] == {
        "first_difference": None,
        "region": "identical",
        "breaks_cache_before_last_user_message": False,
    }


def test_router_bench_scores_both_strategies_on_held_out_labels() -> None:
    from agents import default_labels
    from evals.bench.router import measure as route

    report = route(default_labels(), None, CORPUS)
    assert report["train"] + report["heldout"] == report["labelled"] == 80
    for strategy in ("rules", "learned"):
        scores = report[strategy]
        assert 0 <= scores["share_high"] <= 1 and 0.5 < scores["accuracy"] <= 1
    assert "session" not in report  # the model part runs only with --url


@pytest.mark.llm
def test_api_load_bench_reports_each_concurrency_and_the_overhead(llm_url: str) -> None:
    from evals.bench.api_load import measure as load

    report = load(llm_url, requests=4, chat_requests=2)
    for route in ("search", "chat"):
        assert set(report[route]) == {"1", "4", "16"}
        assert all(r["requests_per_s"] > 0 and r["p50_ms"] > 0 for r in report[route].values())
    assert all("api_overhead_p50_ms" in r for r in report["chat"].values())
    assert report["search_in_process_p50_ms"] > 0
