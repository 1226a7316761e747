"""Prometheus metrics of the API, with prometheus-client (the reference implementation; its text format
is what every scraper reads). One registry per app, so tests and several apps in a process never
share counters."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import compile_path

from serving import Usage

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bastion_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "bastion_http_request_seconds",
            "Time to the response's first byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "bastion_model_tokens",
            "Model tokens by agent and kind (prompt, completion, cached)",
            ["agent", "kind"],
            registry=r,
        )
        self.efforts = Counter(
            "bastion_model_calls",
            "Model calls by agent and reasoning effort",
            ["agent", "effort"],
            registry=r,
        )
        self.retrieval = Histogram(
            "bastion_retrieval_seconds",
            "Time spent in retrieval per request",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def record_usage(self, agent: str, usage: Usage, efforts: Sequence[str]) -> None:
        self.tokens.labels(agent, "prompt").inc(usage.prompt_tokens)
        self.tokens.labels(agent, "completion").inc(usage.completion_tokens)
        if usage.cached_tokens is not None:
            self.tokens.labels(agent, "cached").inc(usage.cached_tokens)
        for effort in efforts:
            self.efforts.labels(agent, effort).inc()

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route's template (/v1/documents/{doc_id}), never the raw path: ids would explode the labels.
        route = getattr(request.scope.get("route"), "path", None) or _template(request)
        self.requests.labels(route, str(response.status_code)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
        return response

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


@cache
def _templates(app: Any) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((compile_path(path)[0], path) for path in app.openapi()["paths"])


def _template(request: Request) -> str:
    """The route a request was meant for when the gate refused it before routing."""
    path = request.scope["path"]
    return next((t for regex, t in _templates(request.app) if regex.match(path)), "unmatched")
