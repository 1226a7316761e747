"""What errors look like to clients, against a real `bastion api` process whose model server is
gone: a 503 in OpenAI's shape that names no internal address, and paths never absolute."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bastion.conftest import running_api
from tests.bastion.test_cli import bastion


@pytest.fixture(scope="module")
def orphaned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], int]]:
    """An API whose model server does not exist (a closed port), over one indexed document."""
    data = tmp_path_factory.mktemp("orphaned")
    docs = data / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff get 25 days of annual leave.\n")
    assert bastion("index", str(docs), "--groups", "staff", data_dir=data).returncode == 0
    keys = {}
    for user, extra in (("ann", []), ("boss", ["--admin"])):
        made = bastion("keys", "create", "--user", user, "--groups", "staff", *extra, "--json", data_dir=data)
        keys[user] = json.loads(made.stdout)["key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again at once: nothing listens there
    env = {**os.environ, "BASTION_DATA_DIR": str(data), "BASTION_MODEL_URL": f"http://127.0.0.1:{dead}/v1"}
    with running_api(data, env, ready_status=503) as (url, _):
        yield url, keys, dead


def _ask(url: str, key: str) -> httpx.Response:
    body = {"model": "bastion-qa", "messages": [{"role": "user", "content": "How many days of leave?"}]}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def test_an_unavailable_model_server_is_a_503_that_names_no_internal_address(
    orphaned: tuple[str, dict[str, str], int],
) -> None:
    url, keys, dead = orphaned
    answer = _ask(url, keys["ann"])
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["type"] == "api_error" and "unavailable" in error["message"]
    assert str(dead) not in answer.text and "127.0.0.1" not in answer.text
    admin = _ask(url, keys["boss"])  # an administrator is told where it failed
    assert admin.status_code == 503 and str(dead) in admin.text


def test_search_results_show_paths_relative_never_the_servers_layout(
    orphaned: tuple[str, dict[str, str], int],
) -> None:
    url, keys, _ = orphaned
    found = httpx.post(
        f"{url}/v1/search", json={"query": "annual leave"}, headers={"Authorization": f"Bearer {keys['ann']}"}
    )
    assert found.status_code == 200 and found.json()["results"]
    for result in found.json()["results"]:
        assert result["source"] == "leave.md" and not Path(result["source"]).is_absolute()


@pytest.fixture(scope="module")
def uncapped(tmp_path_factory: pytest.TempPathFactory, llm_url: str) -> Iterator[tuple[str, str, Path]]:
    """An API whose question cap was raised far past the model's context (an operator's choice)."""
    data = tmp_path_factory.mktemp("uncapped")
    docs = data / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff get 25 days of annual leave.\n")
    assert bastion("index", str(docs), "--groups", "staff", data_dir=data).returncode == 0
    made = bastion("keys", "create", "--user", "ann", "--groups", "staff", "--json", data_dir=data)
    env = {
        **os.environ,
        "BASTION_DATA_DIR": str(data),
        "BASTION_MODEL_URL": llm_url,
        "BASTION_API_MAX_QUESTION_CHARS": "2000000",
        "BASTION_API_MAX_MESSAGE_CHARS": "2000000",
    }
    with running_api(data, env) as (url, _):
        yield url, json.loads(made.stdout)["key"], data


@pytest.mark.llm
def test_a_question_past_the_models_context_is_a_400_and_leaves_no_thread(
    uncapped: tuple[str, str, Path],
) -> None:
    url, key, data = uncapped
    marker = "zqxmarkerzqx"
    question = "How many days of leave? " + f"{marker} " * 70_000  # ~900 KB, under the 1 MB body cap
    for model in ("bastion-qa", "bastion-chat"):
        body = {"model": model, "messages": [{"role": "user", "content": question}]}
        answer = httpx.post(
            f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        assert answer.status_code == 400, answer.text
        assert "no longer fits the model's context" in answer.json()["error"]["message"]
    with sqlite3.connect(data / "threads.sqlite") as db:  # what a later turn or a backup would read
        rows = db.execute("SELECT checkpoint, metadata FROM checkpoints").fetchall()
        rows += db.execute("SELECT value, CAST(channel AS BLOB) FROM writes").fetchall()
    assert all(marker.encode() not in bytes(v) for row in rows for v in row if v is not None)
    exported = bastion("audit", "export", data_dir=data)
    events = [json.loads(line)["event"] for line in exported.stdout.splitlines()]
    assert events.count("answer_failed") == 2, events
