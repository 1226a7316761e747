"""Claim checks: citations and quotes are verified against the passages shown, never trusted."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agents._claims import Claim, Draft, answer_schema, check, normalise, parse_draft, quotable, reply_json
from retrieval import Chunk

REFUSAL = "refused"


def _chunk(n: int, text: str) -> Chunk:
    return Chunk(
        chunk_id=f"c{n}",
        source=f"/docs/{n}.md",
        position=0,
        start=0,
        end=len(text),
        text=text,
        title=f"T{n}",
        content_sha256="h",
        acl=["*"],
    )


PASSAGES = {
    1: _chunk(1, "# Remote work\nStaff may work abroad for 20 days a year. HR approves each stay."),
    4: _chunk(4, "Passwords must have at least 14 characters."),
}


def test_a_verified_quote_keeps_its_claim_and_citation() -> None:
    draft = Draft(
        claims=[Claim(quote="staff may work abroad for 20 days a year", text="20 days.", citations=[1])]
    )
    checked = check(draft, PASSAGES, refusal=REFUSAL)
    assert (checked.answer, checked.refused, checked.flags) == ("20 days. [1]", False, [])
    assert checked.citations[0].quote == "staff may work abroad for 20 days a year"


def test_a_quote_found_in_another_passage_moves_the_citation_there() -> None:
    draft = Draft(claims=[Claim(quote="at least 14 characters", text="14.", citations=[1])])
    checked = check(draft, PASSAGES, refusal=REFUSAL)
    assert [c.number for c in checked.citations] == [4] and checked.flags == ["corrected_citations"]


def test_claims_citing_nothing_shown_are_dropped_and_all_dropped_is_a_refusal() -> None:
    draft = Draft(claims=[Claim(text="Invented.", citations=[2, 9]), Claim(text="Also.", citations=[4])])
    checked = check(draft, PASSAGES, refusal=REFUSAL)
    assert checked.answer == "Also. [4]" and checked.flags == ["dropped_claims:1"]
    checked = check(Draft(claims=[Claim(text="Invented.", citations=[3])]), PASSAGES, refusal=REFUSAL)
    assert checked.refused and checked.answer == REFUSAL and "unsupported" in checked.flags


def test_the_model_refusing_refuses_unless_a_quote_checks_out() -> None:
    made_up = Draft(answerable=False, claims=[Claim(quote="no such words", text="Hm.", citations=[1])])
    checked = check(made_up, PASSAGES, refusal=REFUSAL)
    assert checked.refused and {"model_refused", "unverified_quote:1"} <= set(checked.flags)
    real = Draft(answerable=False, claims=[Claim(quote="HR approves each stay", text="HR.", citations=[1])])
    checked = check(real, PASSAGES, refusal=REFUSAL)
    assert not checked.refused and "model_unsure" in checked.flags


def test_repeated_claims_and_inline_markers_are_cleaned() -> None:
    claim = Claim(text="HR approves [1].", citations=[1])
    checked = check(Draft(claims=[claim, claim]), PASSAGES, refusal=REFUSAL)
    assert checked.answer == "HR approves. [1]"


def test_broken_json_is_recovered_claim_by_claim() -> None:
    cut = '{"claims": [{"quote": "x", "text": "20 days", "citations": [1]}, {"quote": "y", "text": "HR appr'
    draft, malformed = parse_draft(cut)
    assert malformed and [(c.text, c.citations) for c in draft.claims] == [("20 days", [1])]
    assert not draft.confident


def test_the_schema_offers_the_passages_sentences_and_numbers_only() -> None:
    schema = answer_schema(PASSAGES).schema_
    claim = schema["properties"]["claims"]["items"]["properties"]
    assert claim["citations"]["items"]["enum"] == [1, 4]
    assert claim["quote"]["enum"] == quotable(PASSAGES)
    assert "Remote work" not in quotable(PASSAGES)  # headings are not evidence
    assert all(
        normalise(q) in " ".join(normalise(c.text) for c in PASSAGES.values()) for q in quotable(PASSAGES)
    )


def test_the_reply_sent_back_is_canonical_json_in_the_schema_order() -> None:
    checked = check(Draft(claims=[Claim(text="HR.", citations=[1])]), PASSAGES, refusal=REFUSAL)
    reply = reply_json(checked)
    assert reply == reply_json(checked) and list(json.loads(reply)) == ["claims", "answerable", "confident"]


_words = st.sampled_from(["staff", "may", "work", "abroad", "20", "days", "hr", "approves", "14", "x"])


@given(
    st.lists(
        st.builds(
            Claim,
            quote=st.lists(_words, max_size=5).map(" ".join),
            text=st.lists(_words, min_size=1, max_size=5).map(" ".join),
            citations=st.lists(st.integers(-2, 6), max_size=4),
        ),
        max_size=4,
    ),
    st.booleans(),
    st.booleans(),
)
def test_nothing_unchecked_survives(claims: list[Claim], answerable: bool, confident: bool) -> None:
    checked = check(
        Draft(claims=claims, answerable=answerable, confident=confident), PASSAGES, refusal=REFUSAL
    )
    if checked.refused:
        assert checked.citations == [] and checked.answer == REFUSAL
        return
    for citation in checked.citations:
        assert citation.number in PASSAGES and citation.text == PASSAGES[citation.number].text
        assert citation.quote is None or normalise(citation.quote) in normalise(citation.text)
    for claim in checked.claims:
        assert claim.citations and set(claim.citations) <= set(PASSAGES)
