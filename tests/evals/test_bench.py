from __future__ import annotations

import pytest

from evals.bench.cache_reuse import TURNS, measure
from tests.conftest import CORPUS

pytestmark = pytest.mark.llm


async def test_cache_reuse_bench_reports_every_turn_and_real_reuse(llm_url: str) -> None:
    report = await measure(llm_url, CORPUS)
    turns = report["turns"]
    assert isinstance(turns, list) and len(turns) == len(TURNS)
    assert all(t["prompt_tokens"] > 0 for t in turns)
    share = report["follow_up_cached_share"]
    assert isinstance(share, float) and 0 < share < 1
