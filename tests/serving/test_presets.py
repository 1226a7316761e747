"""Every deployment path's preset: its command passes its server's own flag list where one runs or is
recorded here, and its requests carry only the fields that server accepts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from serving import PRESETS, ChatRequest, Message, SGLangFlags, server_args_of

FLAGS_FILE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"
)


def _wire(name: str) -> dict[str, object]:
    request = ChatRequest(
        messages=[Message(role="user", content="hi")], reasoning_effort="high", cache_salt="a1b2c3"
    )
    return request.to_wire(model="m", dialect=PRESETS[name].dialect, stream=False)


def test_each_path_gets_only_the_fields_it_accepts() -> None:
    # SGLang and vLLM: top-level reasoning_effort and cache_salt; vLLM 400s on chat_template_kwargs.
    for name in ("sglang", "vllm"):
        body = _wire(name)
        assert body["reasoning_effort"] == "high" and body["cache_salt"] == "a1b2c3"
        assert "chat_template_kwargs" not in body
    # Mistral's API: 422 on any field it does not know, so no cache_salt.
    api = _wire("mistral-api")
    assert api["reasoning_effort"] == "high" and "cache_salt" not in api
    # llama.cpp: the effort through the template; no salted cache to ask for.
    local = _wire("llama.cpp")
    assert local["chat_template_kwargs"] == {"reasoning_effort": "high"}
    assert "reasoning_effort" not in local and "cache_salt" not in local
    # NIM: neither the reasoning field nor cache_salt is documented for this model, so neither is sent.
    nim = _wire("nim")
    assert not {"reasoning_effort", "chat_template_kwargs", "cache_salt"} & set(nim)


def test_the_sglang_preset_is_the_validated_2xh200_command() -> None:
    if not FLAGS_FILE.exists():
        pytest.skip(f"SGLang's flag list is not beside this checkout ({FLAGS_FILE})")
    command = PRESETS["sglang"].command
    assert command is not None
    SGLangFlags.from_file(FLAGS_FILE).validate(server_args_of(command))


def test_the_llama_cpp_preset_uses_only_flags_the_real_llama_server_has(llama_binary: Path) -> None:
    shown = subprocess.run([str(llama_binary), "--help"], capture_output=True, text=True, timeout=60)
    known = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", shown.stdout + shown.stderr))
    command = PRESETS["llama.cpp"].command
    assert command is not None and command[0] == "llama-server"
    flags = [part for part in command[1:] if part.startswith("-") and not part.startswith("${")]
    assert flags and not [f for f in flags if f not in known], known


def test_hosted_presets_take_their_key_from_the_environment_and_research_serves_nothing() -> None:
    for name in ("nim", "mistral-api"):
        preset = PRESETS[name]
        assert preset.kind == "hosted" and preset.command is None
        assert preset.settings["BASTION_MODEL_API_KEY"].startswith("${"), "a key is referenced, never written"
        assert preset.settings["BASTION_MODEL_URL"].startswith("https://")
    assert PRESETS["transformers"].kind == "research" and not PRESETS["transformers"].settings
