"""Probing model servers: the real llama-server, and SGLang from recorded responses."""

from __future__ import annotations

import json

import httpx
import pytest

from serving import ChatClient, MetricsSnapshot, parse_metrics, probe

# Recorded from SGLang 0.5.x (abridged to the fields Bastion reads; real responses hold many more).
SGLANG_SERVER_INFO = {
    "model_path": "mistralai/Mistral-Small-4-119B-2603",
    "tp_size": 2,
    "context_length": 262144,
    "reasoning_parser": "mistral",
    "tool_call_parser": "mistral",
    "enable_cache_report": True,
    "enable_metrics": True,
    "version": "0.5.23",
}
SGLANG_MODEL_INFO = {"model_path": "mistralai/Mistral-Small-4-119B-2603", "is_generation": True,
                     "has_image_understanding": True}  # fmt: skip
SGLANG_METRICS = """# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 120000.0
sglang:generation_tokens_total{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 9000.0
sglang:cached_tokens_total{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 90000.0
sglang:cache_hit_rate{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 0.75
sglang:num_running_reqs{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 3.0
sglang:num_queue_reqs{model_name="mistral-small-4",engine_type="unified",tp_rank="0"} 1.0
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="mistral-small-4"} 10.0
"""


def _sglang() -> httpx.MockTransport:
    stream = "".join(
        f"data: {json.dumps(c)}\n\n"
        for c in [
            {"choices": [{"index": 0, "delta": {"content": "one two"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": " three"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
        ]
    )
    routes = {
        "/v1/models": httpx.Response(200, json={"object": "list", "data": [{"id": "mistral-small-4"}]}),
        "/server_info": httpx.Response(200, json=SGLANG_SERVER_INFO),
        "/model_info": httpx.Response(200, json=SGLANG_MODEL_INFO),
        "/metrics": httpx.Response(200, text=SGLANG_METRICS),
        "/v1/chat/completions": httpx.Response(200, text=stream + "data: [DONE]\n\n",
                                               headers={"content-type": "text/event-stream"}),
    }  # fmt: skip
    return httpx.MockTransport(lambda request: routes.get(request.url.path, httpx.Response(404)))


async def test_probe_reads_sglang_capabilities_and_metrics() -> None:
    async with ChatClient("http://gpu:30000/v1", transport=_sglang()) as client:
        info = await probe(client)
    assert (info.kind, info.models, info.context_length) == ("sglang", ["mistral-small-4"], 262144)
    assert (info.vision, info.reasoning_parser, info.tool_call_parser, info.cache_report) == (
        True,
        "mistral",
        "mistral",
        True,
    )
    assert info.metrics == MetricsSnapshot(
        prompt_tokens_total=120000,
        cached_tokens_total=90000,
        generation_tokens_total=9000,
        cache_hit_rate=0.75,
        requests_running=3,
        requests_waiting=1,
    )
    assert info.smoke is not None and info.smoke.completion_tokens == 3


# vLLM's shapes, from its source (vllm/entrypoints/openai: /version and ModelCard.max_model_len).
VLLM_CARD = {"id": "mistral-small-4", "object": "model", "owned_by": "vllm", "max_model_len": 262144}
VLLM_MODELS = {"object": "list", "data": [VLLM_CARD]}


async def test_probe_recognises_vllm_by_its_version_endpoint() -> None:
    routes = {
        "/v1/models": httpx.Response(200, json=VLLM_MODELS),
        "/version": httpx.Response(200, json={"version": "0.29.0"}),
    }
    transport = httpx.MockTransport(lambda request: routes.get(request.url.path, httpx.Response(404)))
    async with ChatClient("http://gpu:8000/v1", transport=transport) as client:
        info = await probe(client, smoke=False)
    assert (info.kind, info.version, info.context_length) == ("vllm", "0.29.0", 262144)
    assert info.cache_report is None, "unknown until a request shows cached tokens"


@pytest.mark.llm
async def test_probe_reads_the_real_llama_server(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        info = await probe(client)
    assert info.kind == "llama.cpp" and info.context_length == 8192 and info.vision is False
    assert info.models and info.cache_report is True
    assert info.metrics is not None and info.metrics.generation_tokens_total is not None
    assert info.smoke is not None and info.smoke.completion_tokens > 0 and info.smoke.first_token_ms > 0


def test_metrics_absent_from_a_server_stay_unknown() -> None:
    snapshot = parse_metrics("llamacpp:prompt_tokens_total 30\nllamacpp:prompt_tokens_cached_total 10\n")
    assert snapshot.cache_hit_rate == pytest.approx(0.25)
    assert snapshot.requests_running is None
    assert parse_metrics("") == MetricsSnapshot()
