"""Our requests and launch commands, checked by the servers' own code from their pinned releases
(SGLang 0.5.23's request model, vLLM 0.34.0's request model, argument parser and parser registries;
scripts/reference-servers.sh fetches them). Neither server runs here: what this proves is that they
would accept what Bastion sends and starts them with, not what a model then does with it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from serving import (
    PRESETS,
    PROFILES,
    ChatRequest,
    ImagePart,
    JsonSchema,
    Message,
    TextPart,
    Tool,
    vllm_commands,
)
from tests.conftest import CACHE_DIR
from tests.retrieval.fixtures import make_png

REFERENCE = CACHE_DIR / "reference-servers"
CHECKER = Path(__file__).with_name("reference_check.py")


def _check(requests: list[dict[str, Any]], commands: list[list[str]]) -> dict[str, Any]:
    python = REFERENCE / "env" / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"the reference servers are not installed in {REFERENCE}: run scripts/reference-servers.sh"
        )
    done = subprocess.run(
        [str(python), str(CHECKER)],
        input=json.dumps({"requests": requests, "vllm_commands": commands}),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BASTION_REFERENCE_DIR": str(REFERENCE), "VLLM_TARGET_DEVICE": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _bodies(picture: ImagePart) -> dict[str, dict[str, Any]]:
    """What the agents send, in SGLang's and vLLM's dialect (the same): a QA answer call, a pictured
    streamed question, and a tool call."""
    dialect = PRESETS["sglang"].dialect
    schema = JsonSchema(
        name="cited_claims", schema={"type": "object", "properties": {"a": {"type": "string"}}}
    )
    answer = ChatRequest(
        messages=[Message(role="system", content="passages"), Message(role="user", content="question")],
        reasoning_effort="none",
        max_tokens=320,
        temperature=0.0,
        response_format=schema,
        cache_salt="9f86d081884c7d659a2feaa0c55ad015",
    )
    pictured = ChatRequest(
        messages=[
            Message(role="system", content="passages"),
            Message(role="user", content=[TextPart(text="What does it show?"), picture]),
        ],
        reasoning_effort="high",
        max_tokens=320,
    )
    tools = ChatRequest(
        messages=[Message(role="user", content="find it")],
        tools=[Tool(name="search", description="search", parameters={"type": "object", "properties": {}})],
        tool_choice="auto",
    )
    return {
        "answer": answer.to_wire(model="mistral-small-4", dialect=dialect, stream=False),
        "pictured": pictured.to_wire(model="mistral-small-4", dialect=dialect, stream=True),
        "tools": tools.to_wire(model="mistral-small-4", dialect=dialect, stream=False),
    }


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    png = make_png(tmp_path_factory.mktemp("pictures") / "chart.png", 8, 4)
    picture = ImagePart.from_file(png)
    bodies = _bodies(picture)
    # Controls: the checks must be able to fail.
    misspelt = {**bodies["answer"], "reasoning_efort": "none"}
    slashed_salt = {**bodies["answer"], "cache_salt": "tenant/a"}
    wrong_part = {
        **bodies["answer"],
        "messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}],
    }
    key = "${VLLM_API_KEY:?set VLLM_API_KEY}"
    commands = {
        name: [c for c in vllm_commands(profile, api_key=key) if c[0] != "smg"]
        for name, profile in PROFILES.items()
    }
    controls = [
        ["vllm", "serve", "m", "--tensor-parallel-sizee", "2"],
        ["vllm", "serve", "m", "--reasoning-parser", "no-such-parser"],
    ]
    flat = [_runnable(c) for name in commands for c in commands[name]]
    checked = _check([*bodies.values(), misspelt, wrong_part, slashed_salt], [*flat, *controls])
    names = [*bodies, "misspelt", "wrong_part", "slashed_salt"]
    requests = dict(zip(names, checked["requests"], strict=True))
    return {
        "requests": requests,
        "commands": checked["vllm_commands"][: len(flat)],
        "controls": checked["vllm_commands"][len(flat) :],
        "picture": picture.image_url.url,
        "flat": flat,
    }


def _runnable(command: list[str]) -> list[str]:
    """The command as the shell would run it: the CUDA_VISIBLE_DEVICES prefix and the key variable
    resolved."""
    argv = [part for part in command if not part.startswith("CUDA_VISIBLE_DEVICES=")]
    return ["KEY" if part.startswith("${") else part for part in argv]


def test_sglang_and_vllm_accept_every_request_shape_bastion_sends(verdicts: dict[str, Any]) -> None:
    for name in ("answer", "pictured", "tools"):
        verdict = verdicts["requests"][name]
        assert verdict["sglang"] is None, (name, verdict["sglang"])
        assert verdict["vllm"] is None, (name, verdict["vllm"])
        # Every field is one the server reads: SGLang would drop an unknown one without a word.
        assert verdict["sglang_unknown"] == [], name
        assert verdict["vllm_unknown"] == [], name
    # The picture arrives as the image part SGLang's model reads, byte for byte.
    assert verdicts["requests"]["pictured"]["sglang_image_urls"] == [verdicts["picture"]]


def test_the_request_checks_catch_a_misspelt_field_and_a_malformed_part(verdicts: dict[str, Any]) -> None:
    assert verdicts["requests"]["misspelt"]["sglang_unknown"] == ["reasoning_efort"]
    # SGLang's model refuses a malformed content part; vLLM's request model lets any part through and
    # checks parts only when it renders the prompt, which needs the model: not provable here.
    assert verdicts["requests"]["wrong_part"]["sglang"] is not None


def test_a_cache_salt_vllm_would_refuse_is_refused_before_it_is_sent(verdicts: dict[str, Any]) -> None:
    assert "cache_salt" in verdicts["requests"]["slashed_salt"]["vllm"]
    for salt in ("tenant/a", "a@b", "x" * 129):
        with pytest.raises(ValidationError):
            ChatRequest(messages=[Message(role="user", content="hi")], cache_salt=salt)


def test_every_vllm_command_passes_vllms_own_parser_and_registries(verdicts: dict[str, Any]) -> None:
    assert len(verdicts["commands"]) == sum(p.replicas for p in PROFILES.values())
    for argv, verdict in zip(verdicts["flat"], verdicts["commands"], strict=True):
        assert verdict == {
            "error": None,
            "reasoning_parser": True,
            "tool_call_parser": True,
            "attention_backend": True,
        }, (argv, verdict)
    typo, unknown_parser = verdicts["controls"]
    assert "unrecognized arguments: --tensor-parallel-sizee" in typo["error"]
    assert unknown_parser["error"] is None and unknown_parser["reasoning_parser"] is False


def test_recommended_profiles_run_two_vllm_replicas_behind_the_gateway() -> None:
    for name in ("4xh200", "8xh100", "2xb200"):
        profile = PROFILES[name]
        *servers, gateway = vllm_commands(profile, api_key="k")
        assert len(servers) == 2 and gateway[:2] == ["smg", "launch"]
        tp = [s[s.index("--tensor-parallel-size") + 1] for s in servers]
        assert tp == [str(profile.tp_size)] * 2
        gpus = [s[0].removeprefix("CUDA_VISIBLE_DEVICES=").split(",") for s in servers]
        assert len(set(gpus[0]) | set(gpus[1])) == 2 * profile.gpus, "the replicas share no GPU"
        assert all(s[s.index("--host") + 1] == "127.0.0.1" for s in servers), "only the gateway listens out"
    assert (
        PRESETS["vllm"].command
        == vllm_commands(PROFILES["2xh200"], api_key="${VLLM_API_KEY:?set VLLM_API_KEY}")[0]
    )
