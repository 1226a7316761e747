"""`bastion api` as clients meet it: a real server process on the real local stack, driven by the
`openai` Python client and plain httpx. Keys decide who is asking; nothing else does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bastion.api import cache_salt
from bastion.keys import KeyInfo
from bastion.settings import Settings
from tests.bastion.conftest import Api
from tests.bastion.test_cli import bastion
from tests.conftest import CORPUS

pytestmark = pytest.mark.llm


def _extension(response: Any) -> dict[str, Any]:
    extra: dict[str, Any] = response.model_extra or {}
    return dict(extra["bastion"])


def test_health_readiness_and_the_openapi_schema_need_no_key(api: Api) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/readyz").json()
    assert ready["ready"] and ready["chunks"] > 0
    schema = httpx.get(f"{api.url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/search"} <= schema["paths"].keys()


def test_missing_wrong_and_revoked_keys_get_401(api: Api) -> None:
    assert httpx.get(f"{api.url}/v1/models").status_code == 401
    for key in ("not-a-key", api.keys["gone"], api.keys["alice"][:-2] + "xx"):
        with pytest.raises(openai.AuthenticationError):
            api.client(key).models.list()
    assert [m.id for m in api.client("alice").models.list()] == ["bastion-qa", "bastion-chat", "bastion-code"]


def test_the_openai_client_gets_a_cited_answer_and_the_thread_continues(api: Api) -> None:
    client = api.client("alice")
    question = "How long is CCTV footage kept?"
    first = client.chat.completions.create(
        model="bastion-qa", messages=[{"role": "user", "content": question}]
    )
    text = first.choices[0].message.content or ""
    ext = _extension(first)
    assert not ext["refused"] and ext["citations"], ext["flags"]
    assert "Sources:" in text and f"[{ext['citations'][0]['number']}]" in text
    for citation in ext["citations"]:  # where the server keeps its files is nobody's business
        assert not Path(citation["source"]).is_absolute() and str(api.data_dir) not in citation["source"]
        assert str(CORPUS) not in text
    assert first.usage is not None and first.usage.prompt_tokens > 0
    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "And who may view it?"},
    ]
    second = client.chat.completions.create(model="bastion-qa", messages=history)
    assert _extension(second)["thread_id"] == ext["thread_id"]  # the re-sent history found its thread
    assert _extension(second)["steps"][0]["step"] == "rewrite"


def test_streaming_delivers_the_same_shapes(api: Api) -> None:
    client = api.client("alice")
    chunks = list(
        client.chat.completions.create(
            model="bastion-qa",
            messages=[{"role": "user", "content": "What is the minimum password length?"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop" and final.usage is not None
    assert text and _extension(final)["thread_id"]
    chat = list(
        client.chat.completions.create(
            model="bastion-chat",
            messages=[{"role": "user", "content": "Say hi."}],
            stream=True,
            reasoning_effort="none",
        )
    )
    pieces = [c.choices[0].delta.content for c in chat if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # token by token, not one block
    assert _extension(chat[-1])["reasoning_effort"] == "none"


def test_another_group_never_sees_these_documents(api: Api) -> None:
    outsider = api.client("mallory")
    found = httpx.post(
        f"{api.url}/v1/search",
        json={"query": "CCTV footage retention", "limit": 10},
        headers={"Authorization": f"Bearer {api.keys['mallory']}"},
    )
    assert found.status_code == 200 and found.json() == {"mode": "hybrid", "results": []}
    insider = httpx.post(
        f"{api.url}/v1/search",
        json={"query": "CCTV footage retention", "limit": 3},
        headers={"Authorization": f"Bearer {api.keys['alice']}"},
    ).json()["results"]
    assert insider and all("acl" not in r for r in insider)
    for stream in (False, True):
        response = outsider.chat.completions.create(
            model="bastion-qa",
            messages=[{"role": "user", "content": "How long is CCTV footage kept?"}],
            stream=stream,
        )
        if stream:
            chunks = list(response)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            ext = _extension(chunks[-1])
        else:
            text, ext = response.choices[0].message.content or "", _extension(response)
        assert ext["refused"] and ext["citations"] == [] and "Not found" in text
        assert not any(chunk["text"][:40] in text for chunk in insider)


def test_bad_requests_are_400_in_openais_error_shape(api: Api) -> None:
    client = api.client("alice")
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="bastion-qa", messages=[{"role": "assistant", "content": "hi"}])


def test_every_exchange_is_in_the_audit_log_and_the_chain_verifies(api: Api) -> None:
    api.client("alice").chat.completions.create(
        model="bastion-chat", messages=[{"role": "user", "content": "Hello"}]
    )
    verified = bastion("audit", "verify", "--json", data_dir=api.data_dir)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"]
    every = [
        json.loads(line) for line in bastion("audit", "export", data_dir=api.data_dir).stdout.splitlines()
    ]
    records = [r for r in every if r["event"] == "answer"]
    last = records[-1]
    assert (last["user"], last["agent"], last["question"]) == ("alice", "bastion-chat", "Hello")
    assert last["efforts"] and last["answer_sha256"] and last["key_id"] == api.keys["alice_id"]
    assert {r["user"] for r in records} <= {"alice", "mallory"}
    assert all(r["question_sha256"] and r["answer_sha256"] for r in records)
    qa = [r for r in records if r["agent"] == "bastion-qa" and r["user"] == "alice"]
    assert qa and all(r["chunk_ids"] for r in qa)  # what retrieval returned, cited or not
    refused = [r for r in records if r["user"] == "mallory" and r["agent"] == "bastion-qa"]
    assert refused and all(r["refused"] and r["chunk_ids"] == [] for r in refused)


def test_cache_salts_separate_group_sets() -> None:
    def who(user: str, *groups: str) -> KeyInfo:
        return KeyInfo(key_id="k", user=user, groups=sorted(groups), role="user", created_at=0)

    s = Settings()
    assert cache_salt(s, who("a", "hr", "legal")) == cache_salt(s, who("b", "legal", "hr"))
    assert cache_salt(s, who("a", "hr")) != cache_salt(s, who("a", "legal"))
    per_user = Settings(api={"cache_salt": "user"})
    assert cache_salt(per_user, who("a", "hr")) != cache_salt(per_user, who("b", "hr"))
    assert cache_salt(Settings(api={"cache_salt": "none"}), who("a")) is None


def test_metrics_count_requests_tokens_efforts_and_retrieval(api: Api) -> None:
    api.client("alice").chat.completions.create(
        model="bastion-qa", messages=[{"role": "user", "content": "Who approves a stay abroad?"}]
    )
    text = httpx.get(f"{api.url}/metrics").text
    assert 'bastion_http_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert 'bastion_model_tokens_total{agent="bastion-qa",kind="prompt"}' in text
    assert 'bastion_model_tokens_total{agent="bastion-qa",kind="cached"}' in text
    assert 'bastion_model_calls_total{agent="bastion-qa",effort="none"}' in text
    assert "bastion_retrieval_seconds_count" in text
    assert 'route="/v1/models",status="401"' in text  # refused calls are counted too


def test_the_code_model_answers_about_the_configured_repository_with_line_citations(api: Api) -> None:
    client = api.client("alice")
    assert "bastion-code" in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(
        model="bastion-code", messages=[{"role": "user", "content": "Which function computes VAT?"}]
    )
    ext = _extension(answer)
    assert ext["mode"] == "whole" and ext["packed_files"] == 1
    lines = (api.data_dir / "repo" / "billing" / "invoice.py").read_text().splitlines()
    assert ext["citations"], answer  # the capable model cites the line it names
    for c in ext["citations"]:
        assert c["path"] == "billing/invoice.py" and 1 <= c["start_line"] <= c["end_line"] <= len(lines)
        assert f"{c['path']}:{c['start_line']}-{c['end_line']}" in (answer.choices[0].message.content or "")


def test_searches_document_changes_and_refused_keys_are_audited(api: Api) -> None:
    def records() -> list[dict[str, Any]]:
        lines = bastion("audit", "export", data_dir=api.data_dir).stdout.splitlines()
        return [json.loads(line) for line in lines]

    before = len(records())
    alice, root = (
        {"Authorization": f"Bearer {api.keys['alice']}"},
        {"Authorization": f"Bearer {api.keys['root']}"},
    )
    found = httpx.post(f"{api.url}/v1/search", json={"query": "password length"}, headers=alice).json()
    files = {"file": ("audit-me.md", b"# Audit\n\nThis page exists to be audited.\n", "text/markdown")}
    doc = httpx.post(f"{api.url}/v1/documents", files=files, data={"groups": "staff"}, headers=root).json()
    httpx.post(f"{api.url}/v1/documents/{doc['id']}/reindex", headers=root)
    httpx.delete(f"{api.url}/v1/documents/{doc['id']}", headers=root)
    # The burst and the 403 come from loopback addresses no other test uses: refusals are recorded at
    # most once a minute per client, and earlier tests' refusals from 127.0.0.1 must not hide these.
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as stranger:
        for _ in range(5):  # a burst of bad keys from one client: one record, not five
            refused = stranger.get(f"{api.url}/v1/models", headers={"Authorization": "Bearer bst_nope_nope"})
            assert refused.status_code == 401
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"), headers=alice) as staff:
        assert staff.get(f"{api.url}/v1/documents").status_code == 403

    new = records()[before:]
    search = next(r for r in new if r["event"] == "search")
    assert search["user"] == "alice" and search["question"] == "password length"
    assert search["chunk_ids"] == [hit["chunk_id"] for hit in found["results"]]
    assert [r["target"].split()[0] for r in new if r["event"] in ("upload", "reindex", "delete")] == [
        doc["id"]
    ] * 3
    assert [r["user"] for r in new if r["event"] in ("upload", "reindex", "delete")] == ["root"] * 3
    failed = [r for r in new if r["event"] == "auth_failed"]
    burst = [r for r in failed if "127.0.0.2" in r["detail"]]
    assert [(r["user"], r["target"], r["detail"]) for r in burst] == [
        (None, "/v1/models", "1 refused request(s) from 127.0.0.2")  # the first is recorded, the rest wait
    ]
    assert [(r["user"], r["detail"]) for r in failed if "127.0.0.3" in r["detail"]] == [
        ("alice", "1 refused request(s) from 127.0.0.3 (not an administrator)")
    ]
    assert bastion("audit", "verify", data_dir=api.data_dir).returncode == 0
