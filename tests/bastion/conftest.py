"""The API under test: one real `bastion api` process for the session, on the real local stack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.bastion.test_cli import bastion
from tests.conftest import CORPUS

BASTION = str(Path(sys.executable).with_name("bastion"))


class Api:
    def __init__(self, url: str, data_dir: Path, keys: dict[str, str], pid: int) -> None:
        self.url, self.data_dir, self.keys, self.pid = url, data_dir, keys, pid

    @property
    def temp_dir(self) -> Path:
        """The API process's TMPDIR: where a framework would spool an upload it had started to read."""
        return self.data_dir / "tmp"

    def client(self, who: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys.get(who, who), max_retries=0)


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory, capable_llm_url: str) -> Iterator[Api]:
    """On the capable model: the API's answers are checked by their citations, which a 135M model's
    claims rarely earn. Replies are capped at 160 tokens so chat turns stay short on 2 cores."""
    data_dir = tmp_path_factory.mktemp("api-data")
    assert bastion("index", str(CORPUS), "--groups", "staff", data_dir=data_dir).returncode == 0
    keys = {}
    for user, groups in (
        ("alice", "staff"),
        ("mallory", "contractors"),
        ("gone", "staff"),
        ("root", "admins"),
    ):
        admin = ["--admin"] if user == "root" else []
        made = bastion(
            "keys", "create", "--user", user, "--groups", groups, *admin, "--json", data_dir=data_dir
        )
        keys[user] = json.loads(made.stdout)["key"]
        keys[user + "_id"] = json.loads(made.stdout)["key_id"]
    assert bastion("keys", "revoke", keys["gone_id"], data_dir=data_dir).returncode == 0
    repo = data_dir / "repo"
    (repo / "billing").mkdir(parents=True)
    (repo / "billing" / "invoice.py").write_text(
        "def total(lines):\n    return sum(price * qty for price, qty in lines)\n\n\n"
        "def vat(amount, rate=0.25):\n    return round(amount * rate, 2)\n"
    )
    (data_dir / "tmp").mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(data_dir / "tmp"),
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_MODEL_URL": capable_llm_url,
        "BASTION_MODEL_MAX_TOKENS": "160",
        "BASTION_API_CODE_REPO": str(repo),
        "BASTION_API_CODE_REPO_GROUPS": "staff,admins",
    }
    with running_api(data_dir, env) as (url, pid):
        yield Api(url, data_dir, keys, pid)


@contextmanager
def running_api(data_dir: Path, env: dict[str, str], *, ready_status: int = 200) -> Iterator[tuple[str, int]]:
    """A real `bastion api` process on a free port, once /readyz answers `ready_status`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (data_dir / "api.log").open("w")
    process = subprocess.Popen([BASTION, "api", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # about 35 s when idle; a loaded machine takes longer
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == ready_status:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (data_dir / "api.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail("the API did not become ready:\n" + (data_dir / "api.log").read_text())
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
