"""docker-compose.yml cannot run here (no Docker engine), so it is checked against what can be: its
SGLang command must be exactly what the 2xH200 profile generates (and so valid for SGLang 0.5.23's
real flag list), and its Bastion service may only set settings Bastion has."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.cli.model import API_KEY_REF
from bastion.settings import Settings
from serving import (
    PROFILES,
    GatewayConfig,
    SGLangFlags,
    gateway_args_of,
    launch_commands,
    server_args_of,
    validate_gateway_args,
)

REPO = Path(__file__).resolve().parents[1]
FLAGS_FILE = REPO.parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_sglang_service_runs_the_generated_2xh200_command(compose: dict[str, Any]) -> None:
    service = compose["services"]["sglang"]
    in_file = [*service["entrypoint"], *[str(part) for part in service["command"]]]
    [generated] = launch_commands(PROFILES["2xh200"], api_key=API_KEY_REF)
    assert in_file == generated, "regenerate the compose command: bastion model launch-sglang --print"
    devices = service["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["driver"] == "nvidia" and devices["count"] == PROFILES["2xh200"].gpus


def test_sglang_service_command_is_valid_for_sglang(compose: dict[str, Any]) -> None:
    if not FLAGS_FILE.exists():
        pytest.skip(f"SGLang's flag list is not beside this checkout ({FLAGS_FILE})")
    command = [
        *compose["services"]["sglang"]["entrypoint"],
        *map(str, compose["services"]["sglang"]["command"]),
    ]
    SGLangFlags.from_file(FLAGS_FILE).validate(server_args_of(command))


def test_gateway_service_runs_the_generated_gateway_in_front_of_sglang(compose: dict[str, Any]) -> None:
    service = compose["services"]["gateway"]
    in_file = [*service["entrypoint"], *[str(part) for part in service["command"]]]
    sglang = compose["services"]["sglang"]["command"]
    generated = GatewayConfig(
        worker_urls=[f"http://sglang:{sglang[sglang.index('--port') + 1]}"], api_key=API_KEY_REF
    ).command()
    assert in_file == generated, "regenerate the gateway command from serving.GatewayConfig"
    validate_gateway_args(gateway_args_of(in_file))
    assert service["depends_on"]["sglang"]["condition"] == "service_healthy"
    assert "/health" in " ".join(service["healthcheck"]["test"])


def test_bastion_service_settings_are_valid_and_point_at_the_servers(compose: dict[str, Any]) -> None:
    env = compose["services"]["bastion"]["environment"]
    command = compose["services"]["sglang"]["command"]
    gateway = compose["services"]["gateway"]["command"]
    assert env["BASTION_MODEL_URL"] == f"http://gateway:{gateway[gateway.index('--port') + 1]}/v1"
    assert env["BASTION_MODEL_TOKENIZER_URL"] == f"http://sglang:{command[command.index('--port') + 1]}/v1"
    assert env["BASTION_MODEL_NAME"] == command[command.index("--served-model-name") + 1]
    sections = {"model", "local", "retrieval", "agent", "api"}
    for key, value in env.items():
        name = key.removeprefix("BASTION_").lower()
        section, _, field = name.partition("_")
        if section in sections:
            model = Settings.model_fields[section].annotation
            assert field in model.model_fields, f"{key} is not a Bastion setting"  # type: ignore[union-attr]
        else:
            assert name in Settings.model_fields, f"{key} is not a Bastion setting"
        assert value is not None


def test_api_service_serves_bastion_api_on_its_published_port_with_a_health_check(
    compose: dict[str, Any],
) -> None:
    api = compose["services"]["api"]
    assert api["command"][0] == "api" and api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    port = api["command"][api["command"].index("--port") + 1]
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"])
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    # The API and the one-off CLI service share one configuration and one data volume.
    assert api["environment"] == compose["services"]["bastion"]["environment"]
    assert "bastion-data:/data" in api["volumes"] and api["environment"]["BASTION_DATA_DIR"] == "/data"


def test_bastion_runs_as_a_non_root_user_and_publishes_only_on_this_host(compose: dict[str, Any]) -> None:
    for name in ("api", "bastion"):
        assert compose["services"][name]["user"] == "10001:10001", name
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    assert [line for line in dockerfile if line.startswith("USER ")] == ["USER 10001:10001"]
    # Every published port binds to 127.0.0.1 unless the operator says otherwise.
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith(("127.0.0.1:", "${BASTION_API_BIND:-127.0.0.1}:")), (name, mapping)


def test_compose_file_validates_with_docker_compose(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (scripts/test.sh installs Debian's)")
    env = {"PATH": os.environ["PATH"], "SGLANG_API_KEY": "k1", "QDRANT_API_KEY": "k2", "HOME": str(tmp_path)}
    ok = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "config", "-q"], env=env,
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    env.pop("SGLANG_API_KEY")
    missing = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "config", "-q"], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert missing.returncode != 0 and "SGLANG_API_KEY" in missing.stderr, (
        "secrets are required, not defaulted"
    )
