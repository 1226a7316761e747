"""Documents through the API, for administrators: upload, list, get, delete, re-index.

An upload is size-limited while it streams in, its type is checked from its bytes (a `.pdf` that is
not a PDF is refused), its name is reduced to a safe base name, and it is written to a temporary
file and moved into `<data dir>/documents/<id>/` in one rename, so a failed upload leaves nothing
behind. Its groups go into a `NAME.groups` file beside it, which the indexer reads on every
re-index. The document is searchable once the response returns.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from pydantic import ValidationError

from bastion.api._auth import Admin
from bastion.api._services import Services, audit_event
from bastion.wiring import forget_documents
from retrieval import SUPPORTED_SUFFIXES, Manifest, Principal, RetrievalError, VectorStore

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ID = re.compile(r"^[0-9a-f]{16}$")
_CHUNK = 1 << 20
_SIGNATURES = {
    ".pdf": b"%PDF-",
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".jpeg": b"\xff\xd8\xff",
}


def documents_root(services: Services) -> Path:
    return services.settings.files.documents.resolve()


def safe_name(filename: str | None) -> str:
    """A base name made of safe characters, with a suffix Bastion can read, or a 415."""
    base = Path((filename or "").replace("\\", "/")).name
    name = _SAFE.sub("_", base).lstrip("._")[:120]
    suffix = Path(name).suffix.lower()
    if not name or suffix not in SUPPORTED_SUFFIXES:
        raise HTTPException(
            415, f"Unsupported file type {suffix or '(none)'!r}: send one of {sorted(SUPPORTED_SUFFIXES)}."
        )
    return name


def check_content(name: str, head: bytes, path: Path) -> None:
    """The bytes must be what the name says: binary formats by signature, the rest as UTF-8 text."""
    suffix = Path(name).suffix.lower()
    signatures = {
        ".pdf": (b"%PDF-",),
        ".png": (b"\x89PNG\r\n\x1a\n",),
        ".jpg": (b"\xff\xd8\xff",),
        ".jpeg": (b"\xff\xd8\xff",),
    }
    if suffix in signatures:
        if not head.startswith(signatures[suffix]):
            raise HTTPException(
                415, f"{name} is not a {suffix[1:].upper()} file (its content says otherwise)."
            )
        return
    if suffix == ".docx":
        try:
            with zipfile.ZipFile(path) as archive:
                if "word/document.xml" not in archive.namelist():
                    raise HTTPException(415, f"{name} is a ZIP archive but not a Word document.")
        except zipfile.BadZipFile as exc:
            raise HTTPException(415, f"{name} is not a Word (.docx) document.") from exc
        return
    if b"\0" in head:
        raise HTTPException(415, f"{name} should be text but contains binary data.")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(415, f"{name} should be UTF-8 text but is not.") from exc


def _temp_file(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=root, prefix=".upload-")
    os.close(handle)
    return Path(name)


def _place(temp: Path, root: Path, name: str, head: bytes, groups: frozenset[str]) -> tuple[Path, Path]:
    """Check the received bytes, then move them into their own folder in one rename."""
    check_content(name, head, temp)
    folder = root / uuid.uuid4().hex[:16]
    folder.mkdir()
    target = folder / name
    if groups:
        (folder / f"{name}.groups").write_text("\n".join(sorted(groups)) + "\n")
    os.replace(temp, target)
    return folder, target


def _owner(acl: list[str]) -> str | None:
    """A document without groups belongs to whoever uploaded it; a re-index keeps that owner."""
    return next((a.removeprefix("user:") for a in acl if a.startswith("user:")), None)


def _info(services: Services, doc_id: str) -> dict[str, Any]:
    folder = documents_root(services) / doc_id
    files = [p for p in folder.glob("*") if p.suffix != ".groups"] if folder.is_dir() else []
    if not _ID.match(doc_id) or not files:
        raise HTTPException(404, f"No document {doc_id!r}.")
    path = files[0]
    entry = next((e for e in services.manifest.entries(under=str(folder)) if e.source == str(path)), None)
    groups_file = path.with_name(path.name + ".groups")
    groups = groups_file.read_text().split() if groups_file.exists() else []
    return {
        "id": doc_id,
        "name": path.name,
        "bytes": path.stat().st_size,
        "groups": groups,
        "source": str(path),
        "chunks": entry.chunks if entry else 0,
        "indexed_at": entry.indexed_at if entry else None,
        "sha256": entry.sha256 if entry else None,
        # A document without groups belongs to whoever uploaded it; a re-index keeps that owner.
        "owner": next(
            (a.removeprefix("user:") for a in (entry.acl if entry else []) if a.startswith("user:")), None
        ),
    }


def recover_uploads(root: Path, store: VectorStore, manifest: Manifest) -> list[str]:
    """Roll back uploads a crash interrupted: a document folder whose file the manifest does not
    list as indexed (killed between the move and the index), and temporary files of uploads still
    streaming in. Their clients never got a 201, so removing them loses nothing anyone was promised;
    keeping them listed with 0 chunks promised a document nobody could find. Returns the ids."""
    if not root.is_dir():
        return []
    for temp in root.glob(".upload-*"):
        temp.unlink(missing_ok=True)
    indexed = {e.source: e for e in manifest.entries(under=str(root))}
    rolled_back = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _ID.match(p.name)):
        files = [p for p in folder.iterdir() if p.suffix != ".groups"]
        entry = indexed.get(str(files[0])) if len(files) == 1 else None
        if entry is not None and entry.chunks > 0:
            continue
        for file in files:
            store.delete_source(str(file))
            manifest.forget(str(file))
        shutil.rmtree(folder)
        rolled_back.append(folder.name)
    return rolled_back


def _all(services: Services) -> list[dict[str, Any]]:
    root = documents_root(services)
    ids = sorted(p.name for p in root.iterdir() if p.is_dir() and _ID.match(p.name)) if root.is_dir() else []
    return [_info(services, i) for i in ids]


def routes() -> APIRouter:
    """The documents routes: administrator keys only."""
    router = APIRouter(prefix="/v1/documents", tags=["documents"])

    @router.post("", status_code=201)
    async def upload(
        request: Request,
        who: Admin,
        file: UploadFile,
        groups: Annotated[str, Form(description="comma-separated groups that may read it")] = "",
    ) -> dict[str, Any]:
        services: Services = request.app.state.services
        wanted = frozenset(g.strip() for g in groups.split(",") if g.strip())
        try:
            Principal(user=who.user, groups=wanted)  # the same rules for group names everywhere
        except ValidationError as exc:
            raise HTTPException(400, f"groups: {exc.errors()[0]['msg']}") from exc
        name = safe_name(file.filename)
        limit_mb = services.settings.api.max_upload_mb
        root = documents_root(services)
        temp = await asyncio.to_thread(_temp_file, root)
        try:
            head, size = b"", 0
            with temp.open("wb") as out:
                while chunk := await file.read(_CHUNK):
                    size += len(chunk)
                    if size > limit_mb << 20:
                        raise HTTPException(413, f"{name} is over the {limit_mb} MB upload limit.")
                    head = head or chunk[:16]
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(os.fsync, out.fileno())
            if size == 0:
                raise HTTPException(400, f"{name} is empty.")
            folder, target = await asyncio.to_thread(_place, temp, root, name, head, wanted)
        finally:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
        try:
            async with services.write_lock:
                await asyncio.to_thread(services.indexer.index, [target], owner=who.user, groups=wanted)
        except Exception as exc:
            # A document the indexer cannot read is not kept half-added.
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
            if isinstance(exc, RetrievalError):
                raise HTTPException(422, f"{name} could not be indexed: {exc}") from exc
            raise
        info = await asyncio.to_thread(_info, services, folder.name)
        readers = ",".join(sorted(wanted)) or "(owner only)"
        detail = f"groups {readers}; {info['chunks']} chunks; sha256 {info['sha256']}"
        await audit_event(services, who, "upload", target=f"{info['id']} {name}", detail=detail)
        return info

    @router.get("")
    async def list_documents(request: Request, who: Admin) -> dict[str, Any]:
        services: Services = request.app.state.services
        root = documents_root(services)
        ids = (
            sorted(p.name for p in root.iterdir() if p.is_dir() and _ID.match(p.name))
            if root.is_dir()
            else []
        )
        return {"documents": [await asyncio.to_thread(_info, services, i) for i in ids]}

    @router.get("/{doc_id}")
    async def get_document(request: Request, who: Admin, doc_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(_info, request.app.state.services, doc_id)

    @router.delete("/{doc_id}")
    async def delete_document(request: Request, who: Admin, doc_id: str) -> dict[str, Any]:
        services: Services = request.app.state.services
        info = await asyncio.to_thread(_info, services, doc_id)
        async with services.write_lock:
            await asyncio.to_thread(services.retriever.store.delete_source, info["source"])
            await asyncio.to_thread(services.manifest.forget, info["source"])
            # Conversations that showed its passages hold its text: they go too.
            threads = await forget_documents(services.threads, [info["source"]])
        await asyncio.to_thread(shutil.rmtree, documents_root(services) / doc_id)
        detail = f"{len(threads)} conversation(s) that quoted it forgotten"
        await audit_event(services, who, "delete", target=f"{doc_id} {info['name']}", detail=detail)
        return {"deleted": doc_id, "conversations_forgotten": len(threads)}

    @router.post("/{doc_id}/reindex")
    async def reindex(request: Request, who: Admin, doc_id: str) -> dict[str, Any]:
        services: Services = request.app.state.services
        info = await asyncio.to_thread(_info, services, doc_id)
        async with services.write_lock:
            owner = info["owner"] or who.user
            report = await asyncio.to_thread(
                services.indexer.index, [Path(info["source"])], owner=owner, groups=frozenset(info["groups"])
            )
        detail = f"{report.chunks_written} chunks written, {report.chunks_deleted} removed"
        await audit_event(services, who, "reindex", target=f"{doc_id} {info['name']}", detail=detail)
        return {**(await asyncio.to_thread(_info, services, doc_id)), "chunks_written": report.chunks_written}

    return router
