"""When the client sends a request again: which failures, how many times, and how long it waits."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

# Overloaded or restarting servers and gateways answer these; the request did no work there.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class RetryPolicy(BaseModel):
    """Retries for connection errors and 429/502/503/504, with exponential backoff and jitter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=10)
    backoff_s: float = Field(default=0.5, ge=0.0)
    max_backoff_s: float = Field(default=8.0, ge=0.0)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass  # an HTTP date; fall back to our own schedule
        base: float = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)
