from __future__ import annotations

import pytest

from agents import route_effort


@pytest.mark.parametrize(
    "question",
    [
        "What is the minimum password length?",
        "How long is CCTV footage kept?",
        "Who approves a stay abroad?",
    ],
)
def test_single_fact_lookups_get_no_reasoning(question: str) -> None:
    assert route_effort(question).effort == "none"


@pytest.mark.parametrize(
    "question",
    [
        "Compare the retention of CCTV footage and backups.",
        "Why must incidents be reported within an hour?",
        "Calculate the total allowance in the first year.",
        "How long is leave? And can it be carried over?",
        " ".join(["word"] * 40) + "?",
    ],
)
def test_synthesis_comparison_and_multi_part_questions_get_high(question: str) -> None:
    decision = route_effort(question)
    assert decision.effort == "high"
    assert decision.reason
