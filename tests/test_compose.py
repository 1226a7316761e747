"""docker-compose.yml cannot run here (no Docker engine), so its SGLang command is checked against
SGLang 0.5.23's real flag list, and its wiring against Bastion's own settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FLAGS_FILE = REPO.parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def _flags() -> dict[str, dict[str, Any]]:
    if not FLAGS_FILE.exists():
        pytest.skip(f"SGLang's flag list is not beside this checkout ({FLAGS_FILE})")
    table = json.loads(FLAGS_FILE.read_text())
    return {option: spec for key, spec in table.items() for option in key.split(" ")}


def test_sglang_command_uses_only_real_flags_and_choices(compose: dict[str, Any]) -> None:
    flags = _flags()
    command = [str(part) for part in compose["services"]["sglang"]["command"]]
    i = 0
    while i < len(command):
        flag = command[i]
        assert flag in flags, f"{flag} is not an SGLang 0.5.23 server flag"
        spec = flags[flag]
        takes_value = spec.get("nargs") != 0 and not isinstance(spec.get("default"), bool)
        if takes_value:
            value = command[i + 1]
            if spec.get("choices"):
                assert value in spec["choices"], f"{flag} {value}: not one of {spec['choices']}"
            i += 2
        else:
            i += 1
    assert "--enable-cache-report" in command, "Bastion measures cached tokens"
    assert command[command.index("--context-length") + 1] == "262144", "256k would mean 256000"


def test_bastion_service_settings_are_valid_and_point_at_the_servers(compose: dict[str, Any]) -> None:
    env = compose["services"]["bastion"]["environment"]
    assert all(key.startswith("BASTION_") for key in env)
    port = compose["services"]["sglang"]["command"][
        compose["services"]["sglang"]["command"].index("--port") + 1
    ]
    assert env["BASTION_MODEL_URL"] == f"http://sglang:{port}/v1"
    fields = {"data_dir", "model_url", "model_api_key", "model_name"} | {
        f"retrieval_{name}"
        for name in Settings.model_fields["retrieval"].annotation.model_fields  # type: ignore[union-attr]
    }
    for key in env:
        assert key.removeprefix("BASTION_").lower() in fields, f"{key} is not a Bastion setting"
    assert (
        compose["services"]["sglang"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"]
        == "nvidia"
    )
