"""Runs inside the reference environment (scripts/reference-servers.sh), never in the project's: checks
request bodies and launch commands with SGLang's and vLLM's own code, from their pinned releases.

stdin: {"requests": [body, ...], "vllm_commands": [argv, ...]}
stdout: {"requests": [{"sglang": error|null, "sglang_unknown": [...], "vllm": error|null,
          "vllm_unknown": [...], "sglang_image_urls": [...]}, ...],
         "vllm_commands": [{"error": str|null, "reasoning_parser": bool, "tool_call_parser": bool,
          "attention_backend": bool}, ...]}
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

CACHE = Path(os.environ["BASTION_REFERENCE_DIR"])


def _sglang_protocol() -> types.ModuleType:
    # The request model alone: its only in-package import is a JSON-schema-to-string helper, given
    # here the behaviour of SGLang's own (json.dumps of a dict, a string as is).
    utils = types.ModuleType("sglang.utils")
    utils.convert_json_schema_to_str = lambda s: s if isinstance(s, str) else json.dumps(s)  # type: ignore[attr-defined]
    package = types.ModuleType("sglang")
    package.__path__ = []
    sys.modules.update({"sglang": package, "sglang.utils": utils})
    path = CACHE / "sglang" / "sglang" / "srt" / "entrypoints" / "openai" / "protocol.py"
    spec = importlib.util.spec_from_file_location("sglang_protocol", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["sglang_protocol"] = module
    spec.loader.exec_module(module)
    return module


def _fields(model: Any) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()} | set(model.model_fields)


def check_request(body: dict[str, Any], sglang: Any, vllm: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"sglang": None, "vllm": None, "sglang_unknown": [], "sglang_image_urls": []}
    try:
        parsed = sglang.ChatCompletionRequest.model_validate(body)
        for message in parsed.messages:
            for part in message.content if isinstance(message.content, list) else []:
                if getattr(part, "type", None) == "image_url":
                    result["sglang_image_urls"].append(part.image_url.url)
    except Exception as exc:  # what SGLang would answer with a 400
        result["sglang"] = str(exc)[:2000]
    # SGLang ignores fields it does not know, silently: a misspelt one would simply do nothing.
    result["sglang_unknown"] = sorted(set(body) - _fields(sglang.ChatCompletionRequest))
    try:
        vllm.ChatCompletionRequest.model_validate(body)
    except Exception as exc:
        result["vllm"] = str(exc)[:2000]
    # vLLM takes unknown fields too, with a warning in its log for each request.
    result["vllm_unknown"] = sorted(set(body) - _fields(vllm.ChatCompletionRequest))
    return result


def check_vllm_command(argv: list[str]) -> dict[str, Any]:
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    verdict: dict[str, Any] = {"error": None}
    if argv[:2] != ["vllm", "serve"]:
        return {**verdict, "error": f"not a `vllm serve` command: {argv[:2]}"}
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser.parse_args(argv[2:])
    except SystemExit:
        return {**verdict, "error": errors.getvalue().strip()[-2000:]}
    verdict["reasoning_parser"] = (
        not args.reasoning_parser or args.reasoning_parser in ReasoningParserManager.list_registered()
    )
    verdict["tool_call_parser"] = (
        not args.tool_call_parser or args.tool_call_parser in ToolParserManager.list_registered()
    )
    verdict["attention_backend"] = (
        not args.attention_backend or args.attention_backend in AttentionBackendEnum.__members__
    )
    return verdict


def main() -> None:
    wanted = json.load(sys.stdin)
    sglang = _sglang_protocol()
    from vllm.entrypoints.openai.chat_completion import protocol as vllm

    out = {
        "requests": [check_request(body, sglang, vllm) for body in wanted.get("requests", [])],
        "vllm_commands": [check_vllm_command(argv) for argv in wanted.get("vllm_commands", [])],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
