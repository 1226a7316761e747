"""Where does the server's chat template put the reasoning effort and the tools?

    python -m evals.bench.template_probe --url http://127.0.0.1:PORT/v1

Renders one conversation (system, user, assistant, user) through the server — llama-server's
`/apply-template`, or SGLang's `/v1/tokenize` with `messages` — at effort none and high, and with
and without a tool, and prints where each variant first differs from the plain rendering, as an
offset and as the message it falls in. A difference before the last user message means changing
that parameter between requests throws away the cached prefix from there on (docs/prompt-layout.md).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from evals.bench._common import emit, log

MESSAGES = [
    {"role": "system", "content": "SYSTEM-MARKER static instructions."},
    {"role": "user", "content": "FIRST-USER-MARKER question one"},
    {"role": "assistant", "content": "ASSISTANT-MARKER answer one"},
    {"role": "user", "content": "LAST-USER-MARKER question two"},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the documents.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}
MARKERS = ["SYSTEM-MARKER", "FIRST-USER-MARKER", "ASSISTANT-MARKER", "LAST-USER-MARKER"]


async def _render(http: httpx.AsyncClient, root: str, extra: dict[str, Any]) -> tuple[str, list[Any]]:
    """The rendered prompt as text (llama-server) or tokens (SGLang), and which API gave it."""
    body = {"messages": MESSAGES, **extra}
    effort = extra.get("reasoning_effort")
    if effort:
        body["chat_template_kwargs"] = {"reasoning_effort": effort}
    response = await http.post(f"{root}/apply-template", json=body)
    if response.status_code == 200:
        return "apply-template", [response.json()["prompt"]]
    response = await http.post(f"{root}/v1/tokenize", json=body)
    response.raise_for_status()
    return "tokenize", response.json()["tokens"]


def _first_difference(a: list[Any], b: list[Any]) -> int | None:
    if len(a) == 1 and len(b) == 1 and isinstance(a[0], str):
        a, b = list(a[0]), list(b[0])
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _region(prompt: str, offset: int | None) -> str:
    if offset is None:
        return "identical"
    seen = "before the system message"
    for marker in MARKERS:
        at = prompt.find(marker)
        if 0 <= at <= offset:
            seen = f"after {marker.split('-MARKER')[0].lower().replace('-', ' ')} message starts"
    return seen


async def measure(url: str) -> dict[str, object]:
    root = url.rstrip("/").removesuffix("/v1")
    async with httpx.AsyncClient(timeout=30) as http:
        api, base = await _render(http, root, {"reasoning_effort": "none"})
        variants: dict[str, dict[str, Any]] = {
            "reasoning_effort_high": {"reasoning_effort": "high"},
            "with_tools": {"reasoning_effort": "none", "tools": [TOOL]},
        }
        report: dict[str, object] = {"benchmark": "template_probe", "api": api}
        for name, extra in variants.items():
            _, other = await _render(http, root, extra)
            offset = _first_difference(base, other)
            entry: dict[str, object] = {"first_difference": offset}
            if api == "apply-template":
                entry["region"] = _region(base[0], offset)
                entry["breaks_cache_before_last_user_message"] = offset is not None and offset < base[0].find(
                    "LAST-USER-MARKER"
                )
            report[name] = entry
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    log(f"probing the chat template of {args.url}…")
    emit(asyncio.run(measure(args.url)))


if __name__ == "__main__":
    main()
