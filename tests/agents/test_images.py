"""Pictures through the agents: the asker's own and retrieved image documents, with the real MiniLM
and Qdrant Edge. No vision model exists in the registries, so the model server is a recording one
that answers in SGLang's shapes (`/model_info`, chat completions); what a real vision model makes of
the pixels is not tested here (the request shapes are checked against SGLang's and vLLM's own request
models in tests/serving/test_reference_servers.py)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents import ChatAgent, QAAgent, start_easy
from agents._claims import Draft, check
from retrieval import Chunk, EdgeStore, Indexer, Principal, Retriever, SentenceTransformerEmbedder
from serving import CapabilityError, ChatClient, ImagePart
from tests.conftest import CORPUS
from tests.retrieval.fixtures import make_png

ME = Principal(user="local")
PLAN_CLAIM = "The floor plan shows two exits on the east side."


def _server(seen: list[dict[str, Any]], *, vision: bool, answer: str = "text") -> httpx.MockTransport:
    """A vision server in SGLang's recorded shapes. `answer`: "text" cites the CCTV passage's words,
    "picture" makes a claim only the attached picture could back."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model_info":
            return httpx.Response(
                200, json={"model_path": "mistral-small-4", "has_image_understanding": vision}
            )
        body = json.loads(request.content)
        seen.append(body)
        if answer == "picture":
            last = body["messages"][-1]["content"]
            said = (
                " ".join(p["text"] for p in last if p["type"] == "text") if isinstance(last, list) else last
            )
            numbers = [int(n) for n in re.findall(r"Passage \[(\d+)\] is this picture", said)]
            number = numbers[0] if numbers else _number_of(body, "floor-plan.png")
            draft: dict[str, Any] = {
                "answerable": True,
                "claims": [{"text": PLAN_CLAIM, "citations": [number]}],
            }
        else:
            claim = {"text": "CCTV footage is kept for 30 days, then overwritten.", "citations": [1]}
            draft = {"answerable": True, "claims": [claim]}
        message = {"role": "assistant", "content": json.dumps(draft)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 900, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 0}}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    return httpx.MockTransport(handler)


def _number_of(body: dict[str, Any], name: str) -> int:
    """The passage number the prompt gave the file called `name`."""
    system = body["messages"][0]["content"]
    found = re.search(rf"\[(\d+)\][^\n]*\n?[^\[]*{re.escape(name)}", system)
    assert found, f"{name} is not among the passages shown"
    return int(found.group(1))


def _png_bytes(path: Path) -> bytes:
    return make_png(path, 40, 30).read_bytes()


def _data_url(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    make_png(docs / "floor-plan.png", 40, 30)
    return docs


async def test_the_askers_picture_follows_the_cached_prefix_and_is_never_stored(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, folder: Path
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([folder], owner="local")
    picture = _png_bytes(tmp_path / "photo.png")
    seen: list[dict[str, Any]] = []
    saver = InMemorySaver()
    async with ChatClient("http://recorded/v1", transport=_server(seen, vision=True)) as client:
        agent = QAAgent(client, Retriever(embedder, store), checkpointer=saver, router=start_easy)
        plain = await agent.ask("How long is CCTV footage kept?", ME)
        pictured = await agent.ask(
            "How long is CCTV footage kept?", ME, images=[ImagePart.from_bytes(picture, "image/png")]
        )
    store.close()
    without, with_picture = seen
    # The prefix the server caches is the same with or without a picture: it only follows it.
    assert with_picture["messages"][:-1] == without["messages"][:-1]
    assert isinstance(without["messages"][-1]["content"], str)
    parts = with_picture["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[0]["text"].startswith(without["messages"][-1]["content"])
    assert "attached 1 picture" in parts[0]["text"]
    assert parts[1]["image_url"]["url"] == _data_url(picture)
    assert not pictured.refused and pictured.citations == plain.citations
    # The thread keeps the question's text, never its pixels.
    state = await agent.graph.aget_state({"configurable": {"thread_id": pictured.thread_id}})
    stored = json.dumps(state.values, default=str)
    assert "How long is CCTV footage kept?" in stored
    assert base64.b64encode(picture).decode()[:40] not in stored


async def test_a_retrieved_picture_is_attached_cited_and_flagged_while_its_file_is_unchanged(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, folder: Path
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([folder], owner="local")
    plan = folder / "floor-plan.png"
    seen: list[dict[str, Any]] = []
    async with ChatClient(
        "http://recorded/v1", transport=_server(seen, vision=True, answer="picture")
    ) as client:
        agent = QAAgent(client, Retriever(embedder, store), router=start_easy)
        result = await agent.ask("What does the floor plan show?", ME)
        parts = seen[-1]["messages"][-1]["content"]
        number = int(re.findall(r"Passage \[(\d+)\] is this picture", parts[1]["text"])[0])
        assert parts[2]["image_url"]["url"] == _data_url(plan.read_bytes())
        assert not result.refused and result.flags == ["image_claim:1"]
        assert [(Path(c.source).name, c.number) for c in result.citations] == [("floor-plan.png", number)]
        # The file changed after indexing: its pixels are no longer the indexed picture, so it is not
        # attached, and the claim only the picture could back is refused.
        make_png(plan, 41, 30)
        changed = await agent.ask("What does the floor plan show?", ME)
        assert all(isinstance(m["content"], str) for m in seen[-1]["messages"])
        assert changed.refused and f"image_unavailable:{number}" in changed.flags
    store.close()


async def test_a_server_without_vision_refuses_pictures_before_anything_runs_or_is_stored(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, folder: Path
) -> None:
    store = EdgeStore(tmp_path / "index", dimension=384)
    Indexer(embedder, store).index([folder], owner="local")
    picture = ImagePart.from_bytes(_png_bytes(tmp_path / "photo.png"), "image/png")
    seen: list[dict[str, Any]] = []
    saver = InMemorySaver()
    async with ChatClient("http://recorded/v1", transport=_server(seen, vision=False)) as client:
        qa = QAAgent(client, Retriever(embedder, store), checkpointer=saver)
        with pytest.raises(CapabilityError, match="cannot read images"):
            await qa.ask("How long is CCTV footage kept?", ME, thread_id="t1", images=[picture])
        chat = ChatAgent(client, checkpointer=saver)
        with pytest.raises(CapabilityError, match="cannot read images"):
            [e async for e in chat.stream("What is in this photo?", ME, thread_id="t2", images=[picture])]
        # Without vision, a retrieved picture stays a line of text and nothing is attached.
        result = await qa.ask("What does the floor plan show?", ME)
    store.close()
    assert all(isinstance(m["content"], str) for body in seen for m in body["messages"])
    assert len(seen) == 1 and not any(f.startswith("image") for f in result.flags)
    assert not list(saver.list({"configurable": {"thread_id": "t1"}}))
    assert not list(saver.list({"configurable": {"thread_id": "t2"}}))


async def test_the_chat_agent_sends_the_picture_with_the_message_only(tmp_path: Path) -> None:
    picture = _png_bytes(tmp_path / "photo.png")
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model_info":
            return httpx.Response(200, json={"has_image_understanding": True})
        seen.append(json.loads(request.content))
        chunk = {"choices": [{"index": 0, "delta": {"content": "A white square."}, "finish_reason": "stop"}]}
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=events, headers={"content-type": "text/event-stream"})

    async with ChatClient("http://recorded/v1", transport=httpx.MockTransport(handler)) as client:
        agent = ChatAgent(client, checkpointer=InMemorySaver())
        events = [
            e
            async for e in agent.stream(
                "What is this?", ME, thread_id="t", images=[ImagePart.from_bytes(picture, "image/png")]
            )
        ]
        [e async for e in agent.stream("And its colour?", ME, thread_id="t")]
    assert events[-1].kind == "done"
    first, second = seen
    assert first["messages"][-1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": _data_url(picture)}},
    ]
    # The next turn carries the earlier turn's text, not its picture.
    assert second["messages"][-1]["content"] == "And its colour?"
    assert "What is this?" in second["messages"][0]["content"]
    assert "base64" not in json.dumps(second)


def _chunk(number: int, doc_type: str, text: str) -> Chunk:
    return Chunk(
        chunk_id=f"c{number}",
        source=f"/docs/{number}",
        start=0,
        end=len(text),
        text=text,
        position=0,
        content_sha256="x",
        acl=["user:local"],
        doc_type=doc_type,
    )


def test_a_claim_only_a_picture_backs_stands_only_when_the_picture_was_shown() -> None:
    passages = {
        1: _chunk(1, "text", "Visitors must sign in at reception."),
        2: _chunk(2, "image", "floor-plan.png: PNG image, 40x30 pixels"),
    }
    draft = Draft(answerable=True, claims=[{"text": PLAN_CLAIM, "citations": [1, 2]}])  # type: ignore[list-item]
    seen = check(draft, passages, refusal="no", pictures={2})
    assert not seen.refused and seen.flags == ["image_claim:1"]
    assert [c.number for c in seen.citations] == [2], "it cites the picture, not the text beside it"
    assert check(draft, passages, refusal="no").refused, "without the picture nothing backs it"
    text_only = Draft(answerable=True, claims=[{"text": PLAN_CLAIM, "citations": [1]}])  # type: ignore[list-item]
    assert check(text_only, passages, refusal="no", pictures={2}).refused
