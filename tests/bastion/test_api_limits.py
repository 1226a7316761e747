"""Limits before work, against the real `bastion api` process: a request without a valid key, or with
a body over its limit, is answered from its headers, before the server reads (or spools) the body.

The bodies here are sent over a raw socket, a megabyte at a time, watching for the answer between
writes: the checks count how much had been sent when the answer came and how much the server grew,
not how long it took, so a loaded machine cannot make them fail.
"""

from __future__ import annotations

import json
import select
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.bastion.conftest import Api

pytestmark = pytest.mark.llm

MB = 1 << 20


@dataclass
class Answer:
    status: int
    body: dict[str, object]
    sent: int  # body bytes the server had been sent when its answer arrived
    peak_rss_growth: int  # bytes the API process grew by, at most, while the body was being sent


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.setblocking(True)
    sock.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        part = sock.recv(65536)
        if not part:
            break
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body or b"{}")


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _send(
    api: Api,
    path: str,
    total: int,
    *,
    key: str | None = None,
    content_type: str = "application/json",
    declare_length: bool = True,
    opening: bytes = b"",
) -> Answer:
    """POST `total` bytes of body, a megabyte per write, until the server answers or the body ends."""
    url = urlsplit(api.url)
    head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", f"Content-Type: {content_type}"]
    if key is not None:
        head.append(f"Authorization: Bearer {api.keys[key]}")
    head.append(f"Content-Length: {total}" if declare_length else "Transfer-Encoding: chunked")
    block = b"x" * MB
    before, peak, sent = _rss(api.pid), 0, 0
    pending = opening  # the start of the body, sent before the filler
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 60)
            peak = max(peak, _rss(api.pid) - before)
            if readable:
                break
            if not writable:
                continue
            piece, pending = (pending or block)[: min(MB, total - sent)], b""
            framed = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if not declare_length else piece
            try:
                sock.sendall(framed)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        if not declare_length and sent >= total:
            sock.sendall(b"0\r\n\r\n")
        status, body = _read_answer(sock)
    return Answer(status, body, sent, max(peak, _rss(api.pid) - before))


UPLOAD = "multipart/form-data; boundary=x"
FILE_PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.md"\r\n\r\n'
"""A well-formed start of an upload, so the server would really read the file if nothing stopped it."""


def _written(api: Api) -> set[Path]:
    """Files in the API's TMPDIR (where a multipart parser spools) and half-received uploads."""
    temp = {p for p in api.temp_dir.rglob("*") if p.is_file()}
    return temp | set((api.data_dir / "documents").glob(".upload-*"))


def test_a_huge_body_without_a_key_is_refused_before_it_is_read(api: Api) -> None:
    before = _written(api)
    for path in ("/v1/chat/completions", "/v1/search", "/v1/documents"):
        answer = _send(api, path, 300 * MB, content_type=UPLOAD, opening=FILE_PART)
        assert answer.status == 401 and answer.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        # The kernel's socket buffers take a few megabytes before anything is read; the rest never left.
        assert answer.sent < 64 * MB, f"{answer.sent >> 20} MB were sent before the 401"
        assert answer.peak_rss_growth < 50 * MB, f"the API grew by {answer.peak_rss_growth >> 20} MB"
    assert _written(api) == before


def test_uploads_are_refused_from_the_headers_for_non_administrators_and_oversize_files(api: Api) -> None:
    before = _written(api)
    forbidden = _send(api, "/v1/documents", 300 * MB, key="alice", content_type=UPLOAD, opening=FILE_PART)
    assert forbidden.status == 403 and forbidden.sent < 64 * MB
    declared = _send(api, "/v1/documents", 300 * MB, key="root", content_type=UPLOAD, opening=FILE_PART)
    assert declared.status == 413 and declared.sent < 64 * MB
    assert "25 MB" in str(declared.body["error"])
    # Without Content-Length the gate counts the bytes as they are read and stops at the limit.
    chunked = _send(
        api,
        "/v1/documents",
        300 * MB,
        key="root",
        content_type=UPLOAD,
        opening=FILE_PART,
        declare_length=False,
    )
    assert chunked.status == 413 and chunked.sent < 100 * MB
    assert chunked.peak_rss_growth < 50 * MB
    assert _written(api) == before


def test_json_bodies_over_the_limit_get_413_in_openais_shape(api: Api) -> None:
    declared = _send(api, "/v1/chat/completions", 2 * MB, key="alice")
    assert declared.status == 413 and declared.body["error"]["code"] == 413  # type: ignore[index]
    chunked = _send(api, "/v1/search", 64 * MB, key="alice", declare_length=False)
    assert chunked.status == 413 and chunked.sent < 32 * MB


def _chat(api: Api, messages: list[dict[str, str]]) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/chat/completions",
        json={"model": "bastion-qa", "messages": messages},
        headers={"Authorization": f"Bearer {api.keys['alice']}"},
        timeout=60,
    )


def test_conversations_and_questions_over_their_limits_are_400_naming_the_setting(api: Api) -> None:
    many = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 101
    too_many = _chat(api, [*many, {"role": "user", "content": "and?"}])
    assert too_many.status_code == 400 and "BASTION_API_MAX_MESSAGES" in too_many.text
    long_message = _chat(
        api, [{"role": "assistant", "content": "y" * 40_000}, {"role": "user", "content": "and?"}]
    )
    assert long_message.status_code == 400 and "BASTION_API_MAX_MESSAGE_CHARS" in long_message.text
    long_question = _chat(api, [{"role": "user", "content": "why " * 2_000}])
    assert long_question.status_code == 400 and "BASTION_API_MAX_QUESTION_CHARS" in long_question.text
    assert long_question.json()["error"]["type"] == "invalid_request_error"
    search = httpx.post(
        f"{api.url}/v1/search",
        json={"query": "q" * 5_000},
        headers={"Authorization": f"Bearer {api.keys['alice']}"},
    )
    assert search.status_code == 400 and "BASTION_API_MAX_QUESTION_CHARS" in search.text


def test_a_refused_request_is_counted_under_the_route_it_asked_for(api: Api) -> None:
    assert httpx.post(f"{api.url}/v1/search", json={"query": "x"}).status_code == 401
    assert 'route="/v1/search",status="401"' in httpx.get(f"{api.url}/metrics").text


def test_docs_pages_that_load_cdn_scripts_are_off_by_default(api: Api) -> None:
    assert httpx.get(f"{api.url}/docs").status_code == 404
    assert httpx.get(f"{api.url}/redoc").status_code == 404
    page = httpx.get(f"{api.url}/").text
    assert '<script src="http' not in page and "cdn" not in page.lower()
