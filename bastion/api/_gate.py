"""The gate in front of every route: who is asking, and how much they may send, decided from the
headers before a byte of the body is read.

FastAPI parses a JSON body and spools a multipart upload to disk before any dependency runs, so a
key check written as a dependency comes after the work it should have prevented (a 200 MB body
without a key grew the server by 615 MB before its 401). This pure ASGI middleware answers 401 and
403 from the `Authorization` header alone, 413 from `Content-Length`, and counts the bytes of a body
sent without one, cutting it off at the limit. What it learns about the caller is handed to the
routes in the request's state, so a key is looked up once per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bastion.keys import KeyInfo, KeyStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"})
"""Routes anyone may call; none of them reads a body."""

UPLOAD_OVERHEAD = 64 << 10
"""Room for the multipart envelope and the form fields around an upload of the largest allowed size."""

CALLER = "bastion.caller"
"""The key in the request's state under which the gate leaves the caller's KeyInfo."""


class BodyTooLarge(Exception):
    """A body sent without `Content-Length` (chunked) went past its route's limit while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


def is_upload(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/") == "/v1/documents"


def _admin_only(path: str) -> bool:
    return path == "/v1/documents" or path.startswith("/v1/documents/")


def _human(size: int) -> str:
    return f"{size >> 20} MB" if size >= 1 << 20 else f"{size >> 10} KB"


class RequestGate:
    """ASGI middleware: authenticate from headers, then bound the body; the app runs only after both."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Callable[[Scope], KeyStore],
        body_limit: Callable[[Scope], int],
        upload_limit: Callable[[Scope], int],
        refused: Callable[[Scope, int, KeyInfo | None], Awaitable[None]] | None = None,
    ) -> None:
        self.app, self._keys = app, keys
        self._body_limit, self._upload_limit = body_limit, upload_limit
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path not in PUBLIC_PATHS:
            who = await self._authenticate(scope)
            if who is None:
                await _refuse(send, 401, "Missing or invalid API key: send `Authorization: Bearer <key>`.")
                if self._refused is not None:
                    await self._refused(scope, 401, None)
                return
            if _admin_only(path) and who.role != "admin":
                await _refuse(
                    send, 403, "Only administrator keys may manage documents (bastion keys create --admin)."
                )
                if self._refused is not None:
                    await self._refused(scope, 403, who)
                return
            scope.setdefault("state", {})[CALLER] = who
        upload = is_upload(method, path)
        limit = self._upload_limit(scope) + UPLOAD_OVERHEAD if upload else self._body_limit(scope)
        what = "an upload" if upload else "a request body"
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, f"{_human(declared)} is over the limit for {what} ({_human(limit)}).")
            return

        received = 0
        overflowed = answered = False

        async def counted() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflowed = True
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            # A framework may catch the overflow while parsing (FastAPI turns it into "There was an
            # error parsing the body", 400); whatever it answers, the client is told the real reason.
            nonlocal answered
            if overflowed:
                if not answered and message["type"] == "http.response.start":
                    answered = True
                    await _refuse(send, 413, f"The body is over the limit for {what} ({_human(limit)}).")
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if answered:  # too late for a status; the connection is closed instead
                raise
            await _refuse(send, 413, f"The body is over the limit for {what} ({_human(limit)}).")

    async def _authenticate(self, scope: Scope) -> KeyInfo | None:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await asyncio.to_thread(self._keys(scope).authenticate, token)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    """An error in OpenAI's shape, sent without reading the body; the server closes the connection
    rather than drain what the client is still sending."""
    kind = {401: "authentication_error", 403: "permission_error", 413: "request_too_large"}[status]
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FailureCounter:
    """Failed authentications worth an audit record: the first from a client, then at most one a
    minute with the count since, so a flood of bad keys cannot flood the log."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every, self._clock = every_s, clock
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def note(self, client: str) -> int | None:
        """Count one failure; the number of failures to record now, or None to wait."""
        self._pending[client] = self._pending.get(client, 0) + 1
        now = self._clock()
        if now - self._last.get(client, -self._every) < self._every:
            return None
        if len(self._last) > 10_000:  # a spray of addresses: forget the oldest half
            for old in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                self._last.pop(old)
                self._pending.pop(old, None)
        self._last[client] = now
        return self._pending.pop(client)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
