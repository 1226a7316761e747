"""The coding assistant as a LangGraph graph: route → context → answer → check → finish.

Whole-codebase mode packs the repository into the system message (`_repo.pack_text`) when the
server's tokenizer says it fits the context budget; later turns append what changed, and the
conversation, after it, so the long prefix stays byte-identical and cached. When it does not fit,
the system message holds a repository map instead and each turn adds the code chunks retrieval
finds. Answers cite `path` and a line range; both are checked against the files.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from agents._errors import QuestionError, RepositoryError, ThreadAccessError, thread_values
from agents._forget import kept_only_if_done
from agents._repo import RepoFile, delta_text, map_text, pack_text, repo_map, scan
from agents._router import RouteDecision, Router, StepRecord, decide, route_effort, total_usage
from retrieval import Principal, Retriever
from serving import ChatClient, ChatRequest, Effort, JsonSchema, Message, Usage

SYSTEM = (
    "You are a coding assistant for the repository below. Answer from its code only, and cite the "
    "files and line ranges you rely on (lines are numbered). A file listed again under 'changed' "
    "replaces its earlier version; one listed under 'deleted' is gone. Reply in JSON: "
    '{"answer": "<the answer>", "citations": [{"path": "<file>", "start_line": <n>, "end_line": <n>}], '
    '"confident": <true or false>}.'
)


class CodeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    context_tokens: int = 8192  # the server's context window (262144 for Mistral Small 4 on SGLang)
    reserve_tokens: int = 1536  # room for the transcript, the question and the answer
    max_tokens: int = 320
    temperature: float = 0.0
    # Repack when the appended changes (stale versions stay in the prefix) outgrow this share of the
    # pack, or when pack and changes together would no longer fit the budget.
    repack_share: float = 1.0
    top_k: int = 4  # code chunks per turn in map mode


class CodeCitation(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    start_line: int
    end_line: int
    text: str  # those lines, as they are now


class CodeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    thread_id: str
    question: str
    answer: str
    citations: list[CodeCitation]
    mode: Literal["whole", "map"]
    packed_files: int
    repacked: bool
    flags: list[str]
    reasoning_effort: Effort
    effort_reason: str
    steps: list[StepRecord]
    usage: Usage
    timings: dict[str, float]


class _State(TypedDict, total=False):
    owner: str
    agent: str  # which agent's thread this is: another's turns have another shape
    repo: str
    question: str
    effort: Effort
    effort_reason: str
    log: list[str]  # the system message after SYSTEM: pack or map, then deltas and turns, in order
    turns: list[str]  # each turn's transcript, kept to re-append after a repack
    packed: dict[str, str]  # path → sha256 of each file as the prompt now shows it
    pack_chars: int
    pack_tokens: int
    delta_chars: int
    mode: Literal["whole", "map"]
    repacked: bool
    chunks: str  # map mode: this turn's retrieved code
    draft: str
    result: dict[str, Any]
    flags: list[str]
    steps: list[dict[str, Any]]
    timings: dict[str, float]


@dataclass(frozen=True)
class _Context:
    root: Path
    files: dict[str, RepoFile]
    principal: Principal
    cache_salt: str | None = None


# Builds a retriever over a repository's code chunks for map mode, readable by its owner:
# (root, files, owner) -> Retriever.
RetrieverFactory = Callable[[Path, dict[str, RepoFile], str], Retriever]


class CodeAgent:
    def __init__(
        self,
        client: ChatClient,
        *,
        options: CodeOptions | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        router: Router = route_effort,
        retriever_for: RetrieverFactory | None = None,
    ) -> None:
        self.client = client
        self.options = options or CodeOptions()
        self.router = router
        self.retriever_for = retriever_for
        self._retrievers: dict[tuple[Path, str, frozenset[tuple[str, str]]], Retriever] = {}
        graph = StateGraph(_State, context_schema=_Context)
        graph.add_node("route", self._route)
        graph.add_node("context", self._context)
        graph.add_node("answer", self._answer)
        graph.add_node("check", self._check)
        graph.add_edge(START, "route")
        graph.add_edge("route", "context")
        graph.add_edge("context", "answer")
        graph.add_edge("answer", "check")
        graph.add_edge("check", END)
        self.graph = graph.compile(checkpointer=checkpointer)

    async def ask(
        self,
        question: str,
        repo: Path,
        principal: Principal,
        *,
        thread_id: str | None = None,
        cache_salt: str | None = None,
    ) -> CodeResult:
        question = question.strip()
        if not question:
            raise QuestionError("the question is empty")
        root = await asyncio.to_thread(repo.resolve)
        files = await asyncio.to_thread(scan, root)
        if not files:
            raise RepositoryError(f"{repo} has no source files to read (after .gitignore and filters)")
        thread_id = thread_id or uuid.uuid4().hex[:12]
        config: Any = {"configurable": {"thread_id": thread_id}}
        previous = await thread_values(self.graph, thread_id, principal.user, "code")
        if previous.get("repo") not in (None, str(root)):
            raise ThreadAccessError(
                f"Thread {thread_id!r} is about {previous['repo']}, not {repo}; start a new thread."
            )
        started = time.perf_counter()
        turn: _State = {
            "question": question,
            "owner": principal.user,
            "agent": "code",
            "repo": str(root),
            "flags": [],
            "steps": [],
            "repacked": False,
            "chunks": "",
            "timings": {},
        }
        context = _Context(root=root, files=files, principal=principal, cache_salt=cache_salt)
        async with kept_only_if_done(self.graph.checkpointer, thread_id):
            state = await self.graph.ainvoke(turn, config, context=context)
        steps = [StepRecord.model_validate(s) for s in state["steps"]]
        result = state["result"]
        return CodeResult(
            thread_id=thread_id,
            question=question,
            answer=result["answer"],
            citations=[CodeCitation.model_validate(c) for c in result["citations"]],
            mode=state["mode"],
            packed_files=len(state["packed"]),
            repacked=state["repacked"],
            flags=state["flags"],
            reasoning_effort=state["effort"],
            effort_reason=state["effort_reason"],
            steps=steps,
            usage=total_usage(steps),
            timings={**state["timings"], "total_ms": (time.perf_counter() - started) * 1000},
        )

    async def _route(self, state: _State) -> dict[str, Any]:
        decision = await asyncio.to_thread(decide, self.router, "code", state["question"])
        return {"effort": decision.effort, "effort_reason": decision.reason}

    async def _context(self, state: _State, runtime: Runtime[_Context]) -> dict[str, Any]:
        """Keep the packed prefix when only a few files changed; pack (or map) afresh otherwise."""
        files = runtime.context.files
        started = time.perf_counter()
        update: dict[str, Any] = {}
        log, packed = state.get("log"), state.get("packed")
        if log and packed is not None and state.get("mode") == "whole":
            delta, current = delta_text(packed, files)
            delta_chars = state.get("delta_chars", 0) + len(delta)
            pack_chars = state.get("pack_chars", 0) or 1
            budget = self.options.context_tokens - self.options.reserve_tokens
            estimate = state.get("pack_tokens", 0) * (pack_chars + delta_chars) / pack_chars
            if delta_chars <= self.options.repack_share * pack_chars and estimate <= budget:
                if delta:
                    update = {"log": [*log, delta], "packed": current, "delta_chars": delta_chars}
                return {**update, "timings": {"context_ms": (time.perf_counter() - started) * 1000}}
        if not log or state.get("mode") == "whole" or set(packed or {}) != set(files):
            update = await self._pack(Path(state["repo"]).name, files)
            update["repacked"] = bool(log)
            update["log"] = [*update["log"], *(state.get("turns") or [])]
        mode = update.get("mode", state.get("mode"))
        if mode == "map":
            update["chunks"] = await self._retrieve(state["question"], files, runtime.context)
        update["timings"] = {"context_ms": (time.perf_counter() - started) * 1000}
        return update

    async def _pack(self, name: str, files: dict[str, RepoFile]) -> dict[str, Any]:
        text = pack_text(name, files)
        budget = self.options.context_tokens - self.options.reserve_tokens
        tokens = await self.client.count_tokens(f"{SYSTEM}\n\n{text}")
        packed = {p: f.sha256 for p, f in files.items()}
        if tokens <= budget:
            return {
                "log": [text],
                "packed": packed,
                "pack_chars": len(text),
                "pack_tokens": tokens,
                "delta_chars": 0,
                "mode": "whole",
            }
        entries = repo_map(files)
        while entries:
            text = map_text(entries)
            if await self.client.count_tokens(f"{SYSTEM}\n\n{text}") <= budget // 2:
                break
            entries = entries[: len(entries) * 3 // 4]  # least referenced files leave the map first
        return {"log": [text], "packed": packed, "pack_chars": len(text), "delta_chars": 0, "mode": "map"}

    async def _retrieve(self, question: str, files: dict[str, RepoFile], context: _Context) -> str:
        if self.retriever_for is None:
            return ""
        key = (context.root, context.principal.user, frozenset((p, f.sha256) for p, f in files.items()))
        if key not in self._retrievers:
            self._retrievers = {
                key: await asyncio.to_thread(self.retriever_for, context.root, files, context.principal.user)
            }
        retriever = self._retrievers[key]
        hits = await asyncio.to_thread(
            retriever.search, question, context.principal, limit=self.options.top_k
        )
        blocks = []
        for hit in hits:
            source = Path(hit.chunk.source)
            path = source.relative_to(context.root).as_posix() if source.is_absolute() else source.as_posix()
            if path not in files:
                continue  # indexed but filtered out of the repository (.gitignore, vendored, …)
            first = files[path].text.count("\n", 0, hit.chunk.start) + 1
            lines = hit.chunk.text.splitlines()
            numbered = "\n".join(f"{first + i}| {line}" for i, line in enumerate(lines))
            blocks.append(f"=== {path} lines {first}-{first + len(lines) - 1} ===\n{numbered}")
        return "Relevant code:\n\n" + "\n\n".join(blocks) if blocks else ""

    async def _answer(self, state: _State, runtime: Runtime[_Context]) -> dict[str, Any]:
        decision = RouteDecision(effort=state["effort"], reason=state["effort_reason"])
        user = f"{state['chunks']}\n\nQuestion: {state['question']}" if state["chunks"] else state["question"]
        request = ChatRequest(
            messages=[
                Message(role="system", content="\n\n".join([SYSTEM, *state["log"]])),
                Message(role="user", content=user),
            ],
            reasoning_effort=decision.effort,
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            response_format=_schema(sorted(runtime.context.files)),
            cache_salt=runtime.context.cache_salt,
        )
        result = await self.client.complete(request)
        record = StepRecord(
            step="code",
            effort=decision.effort,
            reason=decision.reason,
            usage=result.usage,
            latency_ms=result.latency_ms,
        )
        flags = ["truncated"] if result.finish_reason == "length" else []
        return {
            "draft": result.content,
            "flags": state["flags"] + flags,
            "steps": [*state["steps"], record.model_dump()],
            "timings": {**state["timings"], "generate_ms": result.latency_ms},
        }

    async def _check(self, state: _State, runtime: Runtime[_Context]) -> dict[str, Any]:
        files = runtime.context.files
        flags = list(state["flags"])
        try:
            data = json.loads(state["draft"])
            answer, cited = str(data["answer"]).strip(), list(data.get("citations") or [])
            if not data.get("confident", True):
                flags.append("model_unsure")
        except (ValueError, KeyError, TypeError):
            answer, cited = state["draft"].strip(), []
            flags.append("malformed_output")
        citations, invalid = [], []
        for item in cited:
            try:
                path, start, end = str(item["path"]), int(item["start_line"]), int(item["end_line"])
            except (KeyError, TypeError, ValueError):
                invalid.append("?")
                continue
            file = files.get(path)
            if file is None or not 1 <= start <= end <= file.line_count:
                invalid.append(f"{path}:{start}-{end}")
                continue
            text = "\n".join(file.text.splitlines()[start - 1 : end])
            citations.append(CodeCitation(path=path, start_line=start, end_line=end, text=text))
        if invalid:
            flags.append(f"dropped_citations:{','.join(invalid)}")
        if not citations:
            flags.append("uncited")
        reply = json.dumps(
            {"answer": answer, "citations": [c.model_dump(exclude={"text"}) for c in citations]},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        transcript = f"User: {state['question']}\nAssistant: {reply}"
        result = {"answer": answer, "citations": [c.model_dump() for c in citations]}
        return {
            "result": result,
            "flags": flags,
            "log": [*state["log"], transcript],
            "turns": [*(state.get("turns") or []), transcript],
        }


def _schema(paths: list[str]) -> JsonSchema:
    citation = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "enum": paths},
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1},
        },
        "required": ["path", "start_line", "end_line"],
        "additionalProperties": False,
    }
    return JsonSchema(
        name="code_answer",
        schema={
            "type": "object",
            "properties": {
                "answer": {"type": "string", "minLength": 1, "maxLength": 1500},
                "citations": {"type": "array", "items": citation, "maxItems": 4},
                "confident": {"type": "boolean"},
            },
            "required": ["answer", "citations", "confident"],
            "additionalProperties": False,
        },
    )
