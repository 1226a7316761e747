"""Reading what the model server answered: JSON bodies, error bodies and statuses turned into typed
errors, and stream chunks turned into events. Both llama-server and SGLang speak this dialect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from serving._errors import (
    BadRequestError,
    ConnectError,
    ContextLengthError,
    ResponseError,
    ServerError,
    ServingError,
    TimeoutError,
)
from serving._types import StreamEvent, ToolCallDelta, Usage

# Substrings that llama-server ("exceed_context_size_error") and SGLang ("longer than the model's
# context length") put in the 400 they return for an over-long prompt.
_CONTEXT_MARKERS = ("exceed_context_size", "context length", "context size", "maximum context")


def status_error(response: httpx.Response, base_url: str, attempts: int) -> ServingError:
    """The typed error for a non-2xx answer: its message says what to check."""
    detail = error_detail(response)
    status = response.status_code
    if status == 400 and any(marker in detail.lower() for marker in _CONTEXT_MARKERS):
        return ContextLengthError(
            f"The prompt does not fit the model's context window: {detail}. "
            "Shorten the question or conversation, or retrieve fewer passages.",
            status_code=status,
        )
    if status == 400 and "model" in detail and ("missing field" in detail or "required" in detail):
        # A gateway (SGLang's smg, vLLM) routes by the `model` field that a lone server lets us leave out.
        return BadRequestError(
            f"The model server at {base_url} needs the model's name (HTTP 400): {detail}. "
            "Set BASTION_MODEL_NAME to one of the ids GET /v1/models lists.",
            status_code=status,
        )
    if status == 404 or (status == 400 and "model_not_found" in detail):
        return BadRequestError(
            f"The model server at {base_url} has no such model or endpoint (HTTP 404): {detail}. "
            "Check BASTION_MODEL_NAME against the server's served model name (GET /v1/models).",
            status_code=status,
        )
    if status in (401, 403):
        return BadRequestError(
            f"The model server at {base_url} refused our credentials (HTTP {status}): {detail}. "
            "Check BASTION_MODEL_API_KEY.",
            status_code=status,
        )
    if status < 500 and status != 429:
        return BadRequestError(
            f"The model server rejected the request (HTTP {status}): {detail}", status_code=status
        )
    return ServerError(
        f"The model server at {base_url} failed (HTTP {status}) after {attempts} "
        f"attempts: {detail}. Check its log.",
        status_code=status,
    )


def dropped_unanswered(exc: httpx.RemoteProtocolError) -> bool:
    """True when the server closed the connection before sending any response to this request.

    That happens when a pooled keep-alive connection is closed by the server just as we reuse
    it: the request never reached the model, so sending it again cannot duplicate work.
    """
    return "without sending a response" in str(exc)


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ResponseError(f"The model server answered non-JSON: {response.text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ResponseError(f"The model server answered JSON that is not an object: {str(data)[:200]}")
    return data


def error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        parts = [str(error.get(k)) for k in ("type", "message") if error.get(k)]
        return ": ".join(parts) or json.dumps(error)[:500]
    return str(error)[:500]


def stream_event(data: dict[str, Any]) -> StreamEvent | None:
    if "error" in data:
        raise ServerError(f"The model server reported an error mid-stream: {data['error']}", status_code=500)
    usage = Usage.from_wire(data["usage"], data.get("timings")) if data.get("usage") else None
    choices = data.get("choices") or []
    if not choices:
        return StreamEvent(usage=usage) if usage else None
    delta = choices[0].get("delta") or {}
    event = StreamEvent(
        content=delta.get("content") or "",
        reasoning_content=delta.get("reasoning_content") or "",
        tool_calls=[
            ToolCallDelta(
                index=int(call.get("index") or 0),
                id=call.get("id"),
                name=(call.get("function") or {}).get("name"),
                arguments=(call.get("function") or {}).get("arguments") or "",
            )
            for call in delta.get("tool_calls") or []
        ],
        finish_reason=choices[0].get("finish_reason"),
        usage=usage,
    )
    # The first chunk usually carries only the role: nothing a caller needs.
    return event if event != StreamEvent() else None


def connect_error(base_url: str, attempts: int, exc: Exception) -> ConnectError:
    return ConnectError(
        f"Cannot reach the model server at {base_url} ({exc.__class__.__name__}) after "
        f"{attempts} attempts. Is it running? Locally: `bastion model serve`; "
        "otherwise check BASTION_MODEL_URL."
    )


def timeout_error(base_url: str, exc: Exception) -> TimeoutError:
    return TimeoutError(
        f"The model server at {base_url} did not answer in time ({exc.__class__.__name__}). "
        "Raise BASTION_MODEL_TIMEOUT_S or ask for fewer tokens."
    )


@contextmanager
def typed_errors(base_url: str, attempts: int, what: str) -> Iterator[None]:
    """httpx's errors as Bastion's, for single requests that are not retried."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise connect_error(base_url, attempts, exc) from exc
    except httpx.TimeoutException as exc:
        raise timeout_error(base_url, exc) from exc
    except httpx.HTTPError as exc:
        raise ServingError(f"{what} failed: {exc}") from exc
