"""Counting tokens with the model's own tokenizer: llama-server's `/tokenize`, SGLang's (or its
gateway's) `/v1/tokenize`, trying each server given until one answers."""

from __future__ import annotations

from typing import Any

import httpx

from serving._errors import BadRequestError, ConnectError, ResponseError, ServingError
from serving._wire import error_detail, json_object, status_error, typed_errors


async def count_tokens(
    http: httpx.AsyncClient,
    roots: list[str],
    text: str,
    *,
    model: str | None,
    configured: bool,
    attempts: int,
) -> int:
    """Tokens in `text` without special tokens, by the first of `roots` that can count them."""
    for i, root in enumerate(roots):
        last = i == len(roots) - 1
        try:
            response = await _tokenize_at(http, root, text, model, attempts)
        except ConnectError:
            if last:
                raise
            continue
        if response.status_code < 400:
            break
        if last:
            raise _tokenize_error(response, root, configured, attempts)
    data = json_object(response)
    if "count" in data:
        return int(data["count"])
    if isinstance(data.get("tokens"), list):
        return len(data["tokens"])
    raise ResponseError(f"{root} answered the tokenize request without tokens: {str(data)[:200]}")


async def _tokenize_at(
    http: httpx.AsyncClient, root: str, text: str, model: str | None, attempts: int
) -> httpx.Response:
    with typed_errors(root, attempts, f"Tokenizing with {root}"):
        response = await http.post(f"{root}/tokenize", json={"content": text, "add_special": False})
        if response.status_code == 404:
            body: dict[str, Any] = {"prompt": text, "add_special_tokens": False}
            if model:  # SGLang's gateway routes /v1/tokenize by model too
                body["model"] = model
            response = await http.post(f"{root}/v1/tokenize", json=body)
        return response


def _tokenize_error(response: httpx.Response, root: str, configured: bool, attempts: int) -> ServingError:
    if response.status_code in (400, 404, 422) and not configured:
        # SGLang's gateway without --tokenizer-path: "No tokenizers available" (400) or no route.
        return BadRequestError(
            f"{root} cannot count tokens (HTTP {response.status_code}: {error_detail(response)}). "
            "Behind a gateway, set BASTION_MODEL_TOKENIZER_URL to one replica's URL, or start the "
            "gateway with the model's tokenizer (smg --tokenizer-path).",
            status_code=response.status_code,
        )
    return status_error(response, root, attempts)
