"""Access rechecked on every turn, against the real `bastion api` process: a conversation re-sent by a
client shows nothing its asker may no longer read, deleted documents leave no text in stored threads,
and a history sent to another model starts that model's own thread instead of failing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.bastion.conftest import Api
from tests.bastion.test_cli import bastion

pytestmark = pytest.mark.llm

DRONES = (
    b"# Drone Rules\n\n"
    b"Drones may fly over the Halvorsen loading yard only with a written permit from the Facilities desk.\n"
)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _chat(
    api: Api, key: str, messages: list[dict[str, str]], model: str = "bastion-qa", **extra: Any
) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/chat/completions",
        json={"model": model, "messages": messages, **extra},
        headers=_auth(key),
        timeout=600,
    )


def _search(api: Api, key: str, query: str) -> list[dict[str, Any]]:
    found = httpx.post(f"{api.url}/v1/search", json={"query": query, "limit": 3}, headers=_auth(key))
    results: list[dict[str, Any]] = found.json()["results"]
    return results


def _shown(api: Api, user: str) -> list[str]:
    """The chunk ids the last QA answer for `user` was shown, from the audit log."""
    lines = bastion("audit", "export", data_dir=api.data_dir).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    return list(
        next(r for r in reversed(records) if r["user"] == user and r["agent"] == "bastion-qa")["chunk_ids"]
    )


def test_a_user_moved_to_other_groups_cannot_reread_a_passage_by_resending_the_conversation(api: Api) -> None:
    question = "How long is CCTV footage kept?"
    first = _chat(api, api.keys["alice"], [{"role": "user", "content": question}])
    assert first.status_code == 200, first.text
    passages = _search(api, api.keys["alice"], "CCTV footage retention")
    assert set(_shown(api, "alice")) & {p["chunk_id"] for p in passages}  # turn 1 showed the CCTV passage
    # Same user name, new key in a group that reads nothing of the corpus (alice moved to contractors).
    made = bastion(
        "keys", "create", "--user", "alice", "--groups", "contractors", "--json", data_dir=api.data_dir
    )
    moved_key = json.loads(made.stdout)["key"]
    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "And who may view it?"},
    ]
    for stream in (False, True):
        second = _chat(api, moved_key, history, stream=stream)
        assert second.status_code == 200, second.text
        if stream:
            events = [line[6:] for line in second.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            ext = json.loads(events[-2])["bastion"]
            text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
        else:
            ext, text = second.json()["bastion"], second.json()["choices"][0]["message"]["content"]
        assert ext["thread_id"] == first.json()["bastion"]["thread_id"]  # the same conversation…
        assert ext["refused"] and ext["citations"] == []  # …but its passages are no longer shown
        assert not any(p["text"][:40] in text for p in passages)


def test_a_deleted_document_leaves_no_text_in_stored_conversations(api: Api) -> None:
    root = _auth(api.keys["root"])
    files = {"file": ("drone-rules.md", DRONES, "text/markdown")}
    doc = httpx.post(
        f"{api.url}/v1/documents", files=files, data={"groups": "staff"}, headers=root, timeout=120
    )
    assert doc.status_code == 201, doc.text
    question = "Who gives permits to fly drones over the loading yard?"
    first = _chat(api, api.keys["alice"], [{"role": "user", "content": question}])
    assert first.status_code == 200, first.text
    drone_chunks = {
        p["chunk_id"]
        for p in _search(api, api.keys["alice"], "drone permit loading yard")
        if "loading yard" in p["text"]
    }
    assert drone_chunks and drone_chunks <= set(_shown(api, "alice"))

    deleted = httpx.delete(f"{api.url}/v1/documents/{doc.json()['id']}", headers=root)
    assert deleted.status_code == 200 and deleted.json()["conversations_forgotten"] >= 1
    stored = b"".join(p.read_bytes() for p in api.data_dir.glob("threads.sqlite*"))
    assert b"written permit from the Facilities" not in stored

    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "Where exactly may they fly?"},
    ]
    again = _chat(api, api.keys["alice"], history)
    assert again.status_code == 200, again.text
    assert all(
        c["source"].rsplit("/", 1)[-1] != "drone-rules.md" for c in again.json()["bastion"]["citations"]
    )


def test_a_history_sent_to_another_model_starts_that_models_own_thread(api: Api) -> None:
    said = [{"role": "user", "content": "Say hello in one word."}]
    chat = _chat(api, api.keys["alice"], said, model="bastion-chat", reasoning_effort="none")
    assert chat.status_code == 200, chat.text
    history = [*said, {"role": "assistant", "content": chat.json()["choices"][0]["message"]["content"]}]
    qa = _chat(
        api, api.keys["alice"], [*history, {"role": "user", "content": "How long is CCTV footage kept?"}]
    )
    assert qa.status_code == 200, qa.text
    assert qa.json()["bastion"]["thread_id"] != chat.json()["bastion"]["thread_id"]
    qa_history = [
        {"role": "user", "content": "How long is CCTV footage kept?"},
        {"role": "assistant", "content": qa.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "Thanks. Say bye in one word."},
    ]
    streamed = _chat(
        api, api.keys["alice"], qa_history, model="bastion-chat", stream=True, reasoning_effort="none"
    )
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert '"error"' not in streamed.text


def test_the_code_repository_answers_only_keys_in_its_groups(api: Api) -> None:
    models = httpx.get(f"{api.url}/v1/models", headers=_auth(api.keys["mallory"])).json()["data"]
    assert "bastion-code" not in [m["id"] for m in models]
    refused = _chat(
        api, api.keys["mallory"], [{"role": "user", "content": "What does vat() do?"}], model="bastion-code"
    )
    assert refused.status_code == 403 and "BASTION_API_CODE_REPO_GROUPS" in refused.text
    assert refused.json()["error"]["type"] == "permission_error"
