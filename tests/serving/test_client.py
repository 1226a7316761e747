"""The client against the real llama-server, plus protocol shapes only SGLang produces (recorded)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from serving import (
    BadRequestError,
    ChatClient,
    ChatRequest,
    ConnectError,
    ContextLengthError,
    JsonSchema,
    Message,
    RetryPolicy,
    ServerError,
    Usage,
)

pytestmark = pytest.mark.llm

NO_WAIT = RetryPolicy(attempts=3, backoff_s=0.0)


def _ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], temperature=0.0, **kwargs)  # type: ignore[arg-type]


async def test_plain_completion_returns_text_and_usage(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        result = await client.complete(_ask("Say hello.", max_tokens=16, reasoning_effort="none"))
    assert result.content.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 16


async def test_stream_yields_text_then_usage(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        events = [e async for e in client.stream(_ask("Count from one to five.", max_tokens=24))]
    text = "".join(e.content for e in events)
    assert text.strip()
    assert sum(1 for e in events if e.content) > 1, "a stream should arrive in several pieces"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens > 0
    assert any(e.finish_reason for e in events)


async def test_json_schema_is_enforced(llm_url: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["colour", "confidence"],
        "additionalProperties": False,
    }
    request = _ask(
        "The sky is blue. What colour is the sky? Reply in JSON.",
        max_tokens=60,
        response_format=JsonSchema(name="colour", schema=schema),
    )
    async with ChatClient(llm_url) as client:
        result = await client.complete(request)
    data = json.loads(result.content)
    assert set(data) == {"colour", "confidence"}
    assert data["colour"] in ("red", "green", "blue")


async def test_repeated_prefix_is_served_from_cache(llm_url: str) -> None:
    prefix = " ".join(f"Rule {i}: staff must file form {i * 7} within {i} days." for i in range(60))
    async with ChatClient(llm_url) as client:
        first = await client.complete(_ask(prefix + "\nQuestion A: which form is rule 3?", max_tokens=4))
        second = await client.complete(_ask(prefix + "\nQuestion B: which form is rule 9?", max_tokens=4))
    assert first.usage.prompt_tokens > 500
    # Everything up to the differing question should be reused from the first request's KV cache.
    assert second.usage.cached_tokens >= 0.8 * first.usage.prompt_tokens


async def test_overlong_prompt_raises_context_length_error(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        with pytest.raises(ContextLengthError, match="context"):
            await client.complete(_ask("word " * 9000, max_tokens=4))


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_down_raises_connect_error_after_retries() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    async with ChatClient(url, retry=NO_WAIT) as client:
        assert not await client.health()
        with pytest.raises(ConnectError, match="Cannot reach the model server") as info:
            await client.complete(_ask("hi", max_tokens=4))
    assert "3 attempts" in str(info.value)


async def test_health_reports_a_running_server(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        assert await client.health()


# Protocol behaviour that needs a server misbehaving on purpose, or fields only SGLang sends:
# these run over httpx's MockTransport with response bodies recorded from SGLang 0.5.x.

SGLANG_REASONING_RESPONSE = {
    "id": "f1c2",
    "object": "chat.completion",
    "model": "mistralai/Mistral-Small-4-119B-2603",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The answer is 42 [1].",
                "reasoning_content": "The passage says 42.",
                "tool_calls": None,
            },
            "finish_reason": "stop",
            "matched_stop": 2,
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "total_tokens": 1230,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "reasoning_tokens": 12,
    },
}


def _transport(responses: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    return httpx.MockTransport(handler)


async def test_sglang_response_shape_is_parsed() -> None:
    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(200, json=SGLANG_REASONING_RESPONSE)], seen)
    async with ChatClient("http://sglang:30000/v1", transport=transport, model="mistral-small-4") as client:
        result = await client.complete(_ask("q", reasoning_effort="high", max_tokens=64))
    assert result.content == "The answer is 42 [1]."
    assert result.reasoning_content == "The passage says 42."
    assert result.usage == Usage(prompt_tokens=1200, completion_tokens=30, cached_tokens=1024)
    body = json.loads(seen[0].content)
    assert body["reasoning_effort"] == "high"
    assert body["model"] == "mistral-small-4"


async def test_retries_503_then_succeeds_and_gives_up_on_persistent_502() -> None:
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json=SGLANG_REASONING_RESPONSE)
    transport = _transport([httpx.Response(503, json={"error": "busy"}), ok], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        assert (await client.complete(_ask("q"))).content
    assert len(seen) == 2

    seen.clear()
    transport = _transport([httpx.Response(502, text="bad gateway") for _ in range(3)], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        with pytest.raises(ServerError, match="HTTP 502"):
            await client.complete(_ask("q"))
    assert len(seen) == 3


async def test_client_errors_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(401, json={"error": {"message": "bad key"}})], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        with pytest.raises(BadRequestError, match="BASTION_MODEL_API_KEY"):
            await client.complete(_ask("q"))
    assert len(seen) == 1


def test_effort_is_omitted_for_servers_that_do_not_take_it() -> None:
    request = _ask("q", reasoning_effort="none")
    assert request.to_wire(model=None, send_reasoning_effort=True, stream=False)["reasoning_effort"] == "none"
    assert "reasoning_effort" not in request.to_wire(model=None, send_reasoning_effort=False, stream=False)


def test_request_rejects_unknown_fields_and_bad_effort() -> None:
    with pytest.raises(ValueError):
        ChatRequest(messages=[Message(role="user", content="q")], reasoning_effort="medium")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ChatRequest(messages=[Message(role="user", content="q")], max_tokenz=5)  # type: ignore[call-arg]
