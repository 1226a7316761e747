"""What the QA agent sends besides the answer: the rewrite's test, the verdict's question."""

from __future__ import annotations

import pytest

from agents._claims import Claim
from agents._qa_prompts import is_search_query, verify_request

HISTORY = "What is the minimum password length? Passwords must be at least 14 characters long."


@pytest.mark.parametrize(
    "query",
    [
        "minimum_password_length: 800",  # what SmolLM2 wrote in the demo
        "password: 14",
        '{"query": "password"}',
        "Lorem ipsum dolor sit amet",  # no word of the question or the conversation
        "",
    ],
)
def test_a_rewrite_that_is_not_a_search_query_is_rejected(query: str) -> None:
    assert not is_search_query(query, "And for contractors?", HISTORY)


@pytest.mark.parametrize(
    "query",
    ["minimum password length for contractors", "Do contractors' passwords need 14 characters?"],
)
def test_a_rewrite_that_spells_out_the_follow_up_is_kept(query: str) -> None:
    assert is_search_query(query, "And for contractors?", HISTORY)


def test_the_verdict_is_asked_about_each_claim_with_the_text_it_rests_on() -> None:
    claims = [
        Claim(text="CCTV is kept 30 days.", citations=[2], quote="CCTV footage:\n 30 days."),
        Claim(text="No quote here.", citations=[1]),
    ]
    request = verify_request("How long is CCTV kept?", claims)
    assert "Question: How long is CCTV kept?" in request
    assert '- CCTV is kept 30 days. (passage 2 says: "CCTV footage: 30 days.")' in request
    assert "- No quote here.\n" in request and '{"answers_question": true or false}' in request
