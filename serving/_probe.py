"""What is this model server? Probes an OpenAI-compatible server (SGLang or llama-server) for its
model, context, vision, parsers, cache reporting and metrics, reads its Prometheus metrics into one
typed snapshot, and times a short streamed completion."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serving._client import ChatClient
from serving._types import ChatRequest, Message

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([^\s]+)")


class MetricsSnapshot(BaseModel):
    """The server's counters under one set of names (None: this server does not export it)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens_total: float | None = None
    cached_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    cache_hit_rate: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None


# Ours ← (SGLang's name, llama-server's name).
_NAMES = {
    "prompt_tokens_total": ("sglang:prompt_tokens_total", "llamacpp:prompt_tokens_total"),
    "cached_tokens_total": ("sglang:cached_tokens_total", "llamacpp:prompt_tokens_cached_total"),
    "generation_tokens_total": ("sglang:generation_tokens_total", "llamacpp:tokens_predicted_total"),
    "cache_hit_rate": ("sglang:cache_hit_rate", None),
    "requests_running": ("sglang:num_running_reqs", "llamacpp:requests_processing"),
    "requests_waiting": ("sglang:num_queue_reqs", "llamacpp:requests_deferred"),
}


def parse_metrics(text: str) -> MetricsSnapshot:
    """Sum each metric over its label sets (SGLang labels by model and engine), then map the names."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        totals[match.group(1)] = totals.get(match.group(1), 0.0) + value
    values: dict[str, float | None] = {}
    for ours, (sglang, llama) in _NAMES.items():
        values[ours] = totals.get(sglang) if sglang in totals else totals.get(llama) if llama else None
    if values["cache_hit_rate"] is None and values["cached_tokens_total"] is not None:
        # llama-server counts processed and cached prompt tokens apart; SGLang exports the rate itself.
        cached, processed = values["cached_tokens_total"] or 0.0, values["prompt_tokens_total"] or 0.0
        values["cache_hit_rate"] = cached / (cached + processed) if cached + processed else None
    return MetricsSnapshot(**values)


class SmokeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    first_token_ms: float
    total_ms: float
    completion_tokens: int
    tokens_per_s: float | None


class ServerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    kind: Literal["sglang", "vllm", "llama.cpp", "openai-compatible"]
    version: str | None = None
    models: list[str]
    context_length: int | None
    vision: bool | None
    reasoning_parser: str | None
    tool_call_parser: str | None
    cache_report: bool | None
    metrics: MetricsSnapshot | None
    smoke: SmokeResult | None


async def probe(client: ChatClient, *, smoke: bool = True) -> ServerInfo:
    models_response = await client.get("/models")
    models_json: dict[str, Any] = models_response.json() if models_response.status_code == 200 else {}
    data = models_json.get("data") or []
    models = [str(m.get("id")) for m in data if m.get("id")]
    context = next((m.get("meta", {}).get("n_ctx") for m in data if m.get("meta")), None)
    kind: Literal["sglang", "vllm", "llama.cpp", "openai-compatible"] = "openai-compatible"
    vision = reasoning = tools = cache_report = None
    version: str | None = None

    server_info = await client.get("/server_info", root=True)
    if server_info.status_code == 200:
        kind = "sglang"
        info = server_info.json()
        context = info.get("context_length") or context
        reasoning, tools = info.get("reasoning_parser"), info.get("tool_call_parser")
        cache_report = bool(info.get("enable_cache_report"))
        model_info = await client.get("/model_info", root=True)
        if model_info.status_code == 200:
            vision = bool(model_info.json().get("has_image_understanding"))
    else:
        props = await client.get("/props", root=True)
        vllm = None if props.status_code == 200 else await client.get("/version", root=True)
        if vllm is not None and vllm.status_code == 200 and "version" in _json(vllm):
            # vLLM answers /version with {"version": …} and puts the window in /v1/models.
            kind, version = "vllm", str(_json(vllm)["version"])
            context = next((m.get("max_model_len") for m in data if m.get("max_model_len")), context)
            cache_report = None  # vLLM reports cached tokens only with --enable-prompt-tokens-details
        elif props.status_code == 200:
            kind = "llama.cpp"
            settings = props.json()
            context = (settings.get("default_generation_settings") or {}).get("n_ctx") or context
            vision = bool((settings.get("modalities") or {}).get("vision"))
            cache_report = True  # llama-server always reports cached prompt tokens

    metrics_response = await client.get("/metrics", root=True)
    metrics = parse_metrics(metrics_response.text) if metrics_response.status_code == 200 else None
    smoke_result = None
    if smoke:
        # A gateway (smg, vLLM's router) routes by the `model` field a lone server lets us omit.
        unnamed = client.model is None and bool(models)
        if unnamed:
            client.model = models[0]
        try:
            smoke_result = await _smoke(client)
        finally:
            if unnamed:
                client.model = None
    return ServerInfo(
        url=client.base_url,
        kind=kind,
        version=version,
        models=models,
        context_length=int(context) if context else None,
        vision=vision,
        reasoning_parser=reasoning,
        tool_call_parser=tools,
        cache_report=cache_report,
        metrics=metrics,
        smoke=smoke_result,
    )


async def _smoke(client: ChatClient) -> SmokeResult:
    request = ChatRequest(
        messages=[Message(role="user", content="Count from one to ten in words.")],
        max_tokens=24,
        temperature=0.0,
        reasoning_effort="none",
    )
    started = time.perf_counter()
    first: float | None = None
    completion = 0
    async for event in client.stream(request):
        if first is None and (event.content or event.reasoning_content):
            first = time.perf_counter()
        if event.usage is not None:
            completion = event.usage.completion_tokens
    ended = time.perf_counter()
    first = first or ended
    generating = ended - first
    return SmokeResult(
        first_token_ms=round((first - started) * 1000, 1),
        total_ms=round((ended - started) * 1000, 1),
        completion_tokens=completion,
        tokens_per_s=round(completion / generating, 1) if completion and generating > 0 else None,
    )


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
