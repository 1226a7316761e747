"""What every request needs, opened once per process and kept warm: keys, audit log, retriever, model
client, checkpointer and the agents; and the cache salt that keeps tenants' KV cache apart."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from agents import ChatAgent, CodeAgent, QAAgent
from bastion.api._threads import ConversationMap
from bastion.audit import AuditEvent, AuditLog, AuditRecord, sha256_text
from bastion.errors import ConfigError
from bastion.keys import KeyInfo, KeyStore
from bastion.settings import Settings
from bastion.wiring import (
    audit_log,
    build_code_agent,
    chat_client,
    configured_chat_agent,
    configured_qa_agent,
    key_store,
    make_embedder,
    make_indexer,
    make_retriever,
    model_url,
    open_checkpointer,
    open_manifest,
    open_store,
)
from retrieval import Indexer, Manifest, Retriever
from serving import ChatClient

log = logging.getLogger("bastion.api")


@dataclass
class Services:
    settings: Settings
    keys: KeyStore
    audit: AuditLog
    conversations: ConversationMap
    retriever: Retriever
    indexer: Indexer
    manifest: Manifest
    write_lock: asyncio.Lock  # one index write at a time: uploads, deletes and re-indexes
    client: ChatClient
    threads: BaseCheckpointSaver[str]  # conversations: documents deleted here are forgotten there too
    qa: QAAgent
    qa_easy: QAAgent  # for clients that ask for reasoning_effort "none": the router's upper bound
    chat: ChatAgent
    chat_easy: ChatAgent
    code: CodeAgent | None  # only with BASTION_API_CODE_REPO


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Everything a request needs, opened once per process and kept warm."""
    async with AsyncExitStack() as stack:
        embedder = make_embedder(settings)
        store = stack.enter_context(open_store(settings, dimension=embedder.dimension))
        client = await stack.enter_async_context(chat_client(settings, model_url(settings, log.info)))
        saver = await stack.enter_async_context(open_checkpointer(settings))
        keys = stack.enter_context(key_store(settings))
        audit = stack.enter_context(audit_log(settings))
        conversations = ConversationMap(settings.files.conversations)
        stack.callback(conversations.close)
        retriever = make_retriever(settings, embedder, store)
        manifest = stack.enter_context(open_manifest(settings))
        indexer = make_indexer(settings, embedder, store, manifest)
        code = None
        if settings.api.code_repo is not None:
            if not settings.api.code_repo.is_dir():
                raise ConfigError(f"BASTION_API_CODE_REPO={settings.api.code_repo} is not a folder.")
            code = await build_code_agent(settings, client, saver, embedder, log.info)
        qa = configured_qa_agent(settings, client, retriever, saver, embedder)
        yield Services(
            settings=settings,
            keys=keys,
            audit=audit,
            conversations=conversations,
            retriever=retriever,
            indexer=indexer,
            manifest=manifest,
            write_lock=asyncio.Lock(),
            client=client,
            threads=saver,
            qa=qa,
            qa_easy=configured_qa_agent(settings, client, retriever, saver, embedder, easy=True),
            chat=configured_chat_agent(settings, client, saver, embedder),
            chat_easy=configured_chat_agent(settings, client, saver, embedder, easy=True),
            code=code,
        )


async def audit_event(services: Services, who: KeyInfo | None, event: AuditEvent, **fields: Any) -> None:
    """Append one record of what `who` did (None: no valid key) to the audit log."""
    identity: dict[str, Any] = (
        {"user": who.user, "groups": who.groups, "key_id": who.key_id} if who else {"user": None}
    )
    await asyncio.to_thread(services.audit.append, AuditRecord(event=event, **identity, **fields))


def public_source(services: Services, source: str) -> str:
    """A document's path as a client sees it: relative to the uploaded-documents folder, or to
    BASTION_API_SOURCE_ROOT, never the server's absolute path (it tells an attacker the layout)."""
    path = Path(source)
    roots = [services.settings.data_dir.resolve() / "documents"]
    if services.settings.api.source_root is not None:
        roots.append(services.settings.api.source_root.resolve())
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def question_fields(services: Services, text: str) -> dict[str, Any]:
    """A question or query as the audit keeps it: always its hash, its text unless redacted."""
    return {
        "question_sha256": sha256_text(text),
        "question": text if services.settings.api.audit_text else None,
    }


def cache_salt(settings: Settings, who: KeyInfo) -> str | None:
    """Callers with different salts never share KV cache on SGLang: by group set, by user, or none."""
    mode = settings.api.cache_salt
    if mode == "none":
        return None
    basis = f"user:{who.user}" if mode == "user" else "groups:" + ",".join(sorted(who.groups))
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


# -- routes ------------------------------------------------------------------------------------
