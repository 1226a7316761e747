"""Every deployment path of Mistral Small 4, as Bastion talks to it: how to start the server (or where
the hosted API is), the settings that point Bastion at it, and which request fields it accepts.

What a path does not accept is left out of the request, not sent and hoped for: Mistral's API answers
422 to any field it does not know (`cache_salt` included), and vLLM answers 400 to
`chat_template_kwargs` for Mistral's tokenizer. Each claim names its source; "unverified" marks what no
source settled, and those fields are left out too. Sources (read 2026-12): vLLM's Mistral Small 4
recipe (vllm-project/recipes, models/mistralai/Mistral-Small-4-119B-2603.yaml), vLLM's
`vllm/tokenizers/mistral.py` and chat protocol, llama.cpp's `tools/server/README.md` and PR #20649 (Mistral
Small 4 support), NVIDIA's NIM pages for mistral-small-4-119b-2603, and mistralai/client-python's
`ChatCompletionRequest`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving._sglang import PROFILES, SGLangProfile, launch_commands, replica_commands
from serving._types import Dialect


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    kind: Literal["server", "hosted", "research"]
    command: list[str] | None = Field(default=None, description="what starts the server, if Bastion may")
    settings: dict[str, str] = Field(description="the BASTION_* settings that point Bastion at it")
    dialect: Dialect
    notes: list[str] = Field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The settings, with the dialect spelled out where it differs from the default."""
        env = dict(self.settings)
        if self.dialect.reasoning != "field":
            env["BASTION_MODEL_REASONING"] = self.dialect.reasoning
        if not self.dialect.cache_salt:
            env["BASTION_MODEL_SEND_CACHE_SALT"] = "false"
        return env


_KEY = "${BASTION_MODEL_API_KEY:?set BASTION_MODEL_API_KEY}"


def vllm_commands(
    profile: SGLangProfile,
    *,
    api_key: str | None = None,
    host: str = "0.0.0.0",
    port: int = 8000,
    router_port: int = 8080,
) -> list[list[str]]:
    """`vllm serve` per replica of a hardware profile (the same profiles as SGLang's: tensor
    parallelism and GPUs per replica), from vLLM's Mistral Small 4 recipe, then SGLang's gateway in
    front when there are several. Checked by vLLM 0.34.0's own argument parser and parser registries
    (tests/serving/test_reference_servers.py)."""

    def server(server_host: str, server_port: int) -> list[str]:
        args = [
            "vllm", "serve", profile.model_path,
            "--served-model-name", profile.served_model_name,
            "--max-model-len", str(profile.context_length),
            "--tensor-parallel-size", str(profile.tp_size),
            "--tool-call-parser", "mistral", "--enable-auto-tool-choice",
            "--reasoning-parser", "mistral",
            "--max-num-batched-tokens", "16384", "--max-num-seqs", "128",
            "--gpu-memory-utilization", "0.8",
        ]  # fmt: skip
        if "h100" in profile.name or "h200" in profile.name:
            # The recipe's backend for FP8 is FlashAttention's MLA kernel, a Hopper one; on Blackwell
            # vLLM picks its own MLA backend.
            args += ["--attention-backend", "FLASH_ATTN_MLA"]
        if api_key is not None:
            args += ["--api-key", api_key]
        return [*args, "--host", server_host, "--port", str(server_port)]

    return replica_commands(
        server, profile.replicas, profile.gpus, host=host, port=port, router_port=router_port, api_key=api_key
    )


def _sglang() -> Preset:
    [command] = launch_commands(PROFILES["2xh200"], api_key="${SGLANG_API_KEY:?set SGLANG_API_KEY}")
    return Preset(
        name="sglang",
        title="SGLang on 2x H200 (the default production path)",
        kind="server",
        command=command,
        settings={"BASTION_MODEL_URL": "http://gpu-node:30000/v1", "BASTION_MODEL_NAME": "mistral-small-4"},
        dialect=Dialect(),
        notes=["Other hardware: `bastion model launch-sglang --profile NAME --print`."],
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _sglang(),
        Preset(
            name="vllm",
            title="vLLM >= 0.20 on 2x H200 (FP8), from vLLM's Mistral Small 4 recipe",
            kind="server",
            command=vllm_commands(PROFILES["2xh200"], api_key="${VLLM_API_KEY:?set VLLM_API_KEY}")[0],
            settings={
                "BASTION_MODEL_URL": "http://gpu-node:8000/v1",
                "BASTION_MODEL_NAME": "mistral-small-4",
            },
            # reasoning_effort none|high (other values 400); chat_template_kwargs is a 400 with
            # Mistral's tokenizer; cache_salt accepted (vLLM's extension).
            dialect=Dialect(),
            notes=[
                "vLLM < 0.20 breaks Mistral Small 4's tool and reasoning parsers (recipe).",
                "Tokenizer, config and load formats are picked automatically for this model.",
            ],
        ),
        Preset(
            name="llama.cpp",
            title="llama.cpp's llama-server with a GGUF of Mistral Small 4 (a workstation)",
            kind="server",
            command=[
                "llama-server",
                "-hf",
                "unsloth/Mistral-Small-4-119B-2603-GGUF:UD-Q4_K_M",
                "--jinja",
                "-c",
                "65536",
                "-ngl",
                "99",
                "--alias",
                "mistral-small-4",
                "--api-key",
                _KEY,
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
            ],
            settings={
                "BASTION_MODEL_URL": "http://workstation:8080/v1",
                "BASTION_MODEL_NAME": "mistral-small-4",
            },
            # Top-level reasoning_effort reaches the template only from build b10434; the template
            # variable works with --jinja in every build. cache_salt: no salted cache (ignored).
            dialect=Dialect(reasoning="template", cache_salt=False),
            notes=[
                "Vision needs --mmproj with a projector for this model (unverified that one exists).",
                "-hf downloads from Hugging Face: on an offline host copy the GGUF and use -m FILE.",
            ],
        ),
        Preset(
            name="nim",
            title="NVIDIA NIM, hosted (build.nvidia.com) or self-hosted (nvcr.io image, port 8000)",
            kind="hosted",
            settings={
                "BASTION_MODEL_URL": "https://integrate.api.nvidia.com/v1",
                "BASTION_MODEL_NAME": "mistralai/mistral-small-4-119b-2603",
                "BASTION_MODEL_API_KEY": "${NVIDIA_API_KEY:?set NVIDIA_API_KEY}",
            },
            # NIM is vLLM-based: per-request chat_template_kwargs are refused for Mistral tokenizers;
            # its reasoning field for this model and cache_salt are unverified, so neither is sent.
            dialect=Dialect(reasoning="off", cache_salt=False),
            notes=[
                "Self-hosted: nvcr.io/nim/mistralai/mistral-small-4-119b-2603, then "
                "BASTION_MODEL_URL=http://host:8000/v1 (NGC_API_KEY only pulls the image).",
                "Hosted means prompts leave your servers: not for data that must stay on them.",
            ],
        ),
        Preset(
            name="mistral-api",
            title="Mistral's La Plateforme (api.mistral.ai)",
            kind="hosted",
            settings={
                "BASTION_MODEL_URL": "https://api.mistral.ai/v1",
                "BASTION_MODEL_NAME": "mistral-small-2603",
                "BASTION_MODEL_API_KEY": "${MISTRAL_API_KEY:?set MISTRAL_API_KEY}",
            },
            # reasoning_effort none|high accepted; any unknown field (cache_salt) is a 422.
            dialect=Dialect(cache_salt=False),
            notes=["Hosted means prompts leave your servers: not for data that must stay on them."],
        ),
        Preset(
            name="transformers",
            title="Hugging Face Transformers (research only: not served)",
            kind="research",
            settings={},
            dialect=Dialect(reasoning="off", cache_salt=False, json_schema=False, tools=False),
            notes=[
                "Mistral3ForConditionalGeneration with AutoProcessor (transformers v5); reasoning via "
                "apply_chat_template(..., reasoning_effort='high').",
                "No server, batching or prefix cache: serve with SGLang or vLLM instead.",
            ],
        ),
    )
}
