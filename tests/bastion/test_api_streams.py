"""A real `bastion api` process in front of a model server that misbehaves on purpose: a stream cut
mid-answer, a server that never answers, an internal error with an internal address in its body, and
a client that walks away mid-stream. Each must reach the client as a clear error (never the upstream's
body), end a stream with an error event and `[DONE]`, be audited, and leave no half turn stored.

The faulty server is a fault injector, not a stand-in: llama-server cannot be told to fail this way."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bastion.conftest import running_api
from tests.bastion.test_cli import bastion

SECRET = "upstream-secret-detail at http://10.9.8.7:30000/internal"


def _sse(content: str) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}  # fmt: skip
    return f"data: {json.dumps(chunk)}\n\n".encode()


RECEIVED: list[dict[str, Any]] = []  # every chat request a model server here was sent


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, vision: bool = False
) -> None:
    """One request per connection. The last user message says how to misbehave."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *headers = head.decode().split("\r\n")
        length = next((int(h.split(":")[1]) for h in headers if h.lower().startswith("content-length")), 0)
        body = json.loads(await reader.readexactly(length)) if length else {}
        path = request_line.split()[1]

        async def send(status: str, payload: bytes, kind: str = "application/json") -> None:
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(payload)}\r\n"
                "connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()

        if path.startswith("/health"):
            return await send("200 OK", b'{"status":"ok"}')
        if path.startswith("/v1/models"):
            return await send("200 OK", b'{"object":"list","data":[{"id":"m","object":"model"}]}')
        if path.startswith("/props"):
            props = {"default_generation_settings": {"n_ctx": 8192}, "modalities": {"vision": vision}}
            return await send("200 OK", json.dumps(props).encode())
        if not path.endswith("/chat/completions"):
            return await send("404 Not Found", b'{"error":{"message":"not found"}}')
        RECEIVED.append(body)
        last = str(body["messages"][-1]["content"])
        if "ERR" in last:
            return await send(
                "500 Internal Server Error", json.dumps({"error": {"message": SECRET}}).encode()
            )
        if "SLOW" in last:
            await asyncio.sleep(60)  # longer than the API's model timeout
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        for n in range(40):
            writer.write(_sse(f"word{n} "))
            await writer.drain()
            if "CUT" in last and n == 3:
                writer.transport.abort()  # the connection dies mid-answer
                return
            await asyncio.sleep(0.25 if "DRIP" in last else 0.0)
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextmanager
def _model_server(vision: bool = False) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    handle = functools.partial(_handle, vision=vision)
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1"

    async def shutdown() -> None:  # the slow handler still sleeps: cancel it rather than abandon it
        server.close()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture(scope="module")
def faulty_model() -> Iterator[str]:
    with _model_server() as url:
        yield url


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, faulty_model: str
) -> Iterator[tuple[str, dict[str, str], Path]]:
    with _api_before(faulty_model, tmp_path_factory.mktemp("faulty")) as running:
        yield running


@contextmanager
def _api_before(model_url: str, data: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    keys = {}
    for user, extra in (("ann", []), ("boss", ["--admin"])):
        made = bastion("keys", "create", "--user", user, "--groups", "staff", *extra, "--json", data_dir=data)
        keys[user] = json.loads(made.stdout)["key"]
    env = {
        **os.environ,
        "BASTION_DATA_DIR": str(data),
        "BASTION_MODEL_URL": model_url,
        "BASTION_MODEL_TIMEOUT_S": "3",
        "BASTION_MODEL_RETRIES": "1",
    }
    with running_api(data, env) as (url, _):
        yield url, keys, data


def _chat(url: str, key: str, text: str, *, stream: bool) -> httpx.Response:
    body = {"model": "bastion-chat", "messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def _audited(data: Path) -> list[dict[str, object]]:
    exported = bastion("audit", "export", data_dir=data)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def _threads_hold(data: Path, text: str) -> bool:
    """Whether any stored checkpoint or pending write holds `text` (what a later turn or a backup
    reads; the write-ahead log's superseded frames are reused at SQLite's next checkpoint)."""
    if not (data / "threads.sqlite").exists():
        return False
    with sqlite3.connect(data / "threads.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "checkpoints" not in tables:  # created on the first stored turn
            return False
        rows = db.execute("SELECT checkpoint, metadata FROM checkpoints").fetchall()
        rows += db.execute("SELECT value, CAST(channel AS BLOB) FROM writes").fetchall()
    return any(text.encode() in bytes(v) for row in rows for v in row if v is not None)


def test_a_stream_cut_mid_answer_ends_with_an_error_event_and_done_and_is_audited(
    api: tuple[str, dict[str, str], Path],
) -> None:
    url, keys, data = api
    answer = _chat(url, keys["ann"], "Tell me a story. CUT-7f3a", stream=True)
    assert answer.status_code == 200  # the status line left before the failure
    lines = [line for line in answer.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]", lines[-3:]
    error = json.loads(lines[-2].removeprefix("data: "))["error"]
    assert error["type"] == "api_error" and "10.9.8.7" not in answer.text
    failed = [r for r in _audited(data) if r["event"] == "answer_failed" and r["user"] == "ann"]
    assert failed, "a failed stream must leave an audit record"
    assert not _threads_hold(data, "CUT-7f3a"), "a failed turn is never stored"


def test_a_client_walking_away_mid_stream_is_audited(api: tuple[str, dict[str, str], Path]) -> None:
    url, keys, data = api
    body = {"model": "bastion-chat", "messages": [{"role": "user", "content": "DRIP slowly"}], "stream": True}
    headers = {"Authorization": f"Bearer {keys['boss']}"}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        for line in r.iter_lines():
            if "word1" in line:
                break  # and close the connection mid-answer
    for _ in range(40):  # the server notices the disconnect at its next write
        records = [r for r in _audited(data) if r["event"] == "answer_failed" and r["user"] == "boss"]
        if records:
            break
    assert records and "client disconnected" in str(records[-1]["detail"]), records


def test_a_model_timeout_is_a_504_and_an_upstream_error_names_nothing_internal(
    api: tuple[str, dict[str, str], Path],
) -> None:
    url, keys, data = api
    slow = _chat(url, keys["ann"], "SLOW please", stream=False)
    assert slow.status_code == 504, slow.text
    assert slow.json()["error"]["type"] == "api_error" and "127.0.0.1" not in slow.text
    for who in ("ann", "boss"):
        failed = _chat(url, keys[who], "ERR please", stream=False)
        assert 500 <= failed.status_code < 600 and failed.status_code != 500, failed.text
        assert "error" in failed.json()
        if who == "ann":  # never the upstream's body or address to a non-administrator
            assert "upstream-secret-detail" not in failed.text and "10.9.8.7" not in failed.text
    log = (data / "api.log").read_text()
    assert "upstream-secret-detail" in log, "the full error goes to the server's log instead"
    assert not _threads_hold(data, "SLOW please") and not _threads_hold(data, "ERR please")


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)  # one pixel


def _pictured(model: str, text: str, url: str) -> dict[str, Any]:
    picture = {"type": "image_url", "image_url": {"url": url}}
    return {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}, picture]}],
    }


def test_images_sent_to_a_server_without_vision_are_refused_never_dropped(
    api: tuple[str, dict[str, str], Path],
) -> None:
    url, keys, data = api
    auth = {"Authorization": f"Bearer {keys['ann']}"}
    png = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    sent = len(RECEIVED)
    for model in ("bastion-qa", "bastion-chat"):
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json=_pictured(model, "IMG-5e1 what does this show?", png),
            headers=auth,
        )
        assert answer.status_code == 400, answer.text
        assert "does not read images" in answer.json()["error"]["message"]
    # Pictures Bastion cannot send are refused whatever the server, each with the reason.
    gif_called_png = f"data:image/png;base64,{base64.b64encode(b'GIF89a...').decode()}"
    refused = [
        ("bastion-code", png, "takes no images"),
        ("bastion-qa", "https://example.org/chart.png", "does not fetch images from URLs"),
        ("bastion-chat", "data:image/png;base64,%%%", "not valid base64"),
        ("bastion-chat", gif_called_png, "not a PNG image"),
        ("bastion-qa", "data:image/tiff;base64,AAAA", "unsupported image type"),
    ]
    for model, picture, why in refused:
        body = _pictured(model, "IMG-5e1 what does this show?", picture)
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth)
        assert answer.status_code == 400 and why in answer.json()["error"]["message"], answer.text
    assert len(RECEIVED) == sent, "nothing reached the model server"
    assert not _threads_hold(data, "IMG-5e1")


def test_a_picture_reaches_a_vision_server_with_the_question_is_audited_by_hash_and_never_stored(
    tmp_path: Path,
) -> None:
    with (
        _model_server(vision=True) as model_url,
        _api_before(model_url, tmp_path / "data") as (url, keys, data),
    ):
        png = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
        body = _pictured("bastion-chat", "PIC-7a2 what colour is this?", png)
        sent = len(RECEIVED)
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {keys['ann']}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"].startswith("word0")
        (request,) = RECEIVED[sent:]
        assert request["messages"][-1]["content"] == [
            {"type": "text", "text": "PIC-7a2 what colour is this?"},
            {"type": "image_url", "image_url": {"url": png}},
        ]
        record = next(r for r in _audited(data) if r["event"] == "answer")
        assert record["image_sha256s"] == [hashlib.sha256(PNG).hexdigest()]
        assert _threads_hold(data, "PIC-7a2") and not _threads_hold(data, png[30:80])
