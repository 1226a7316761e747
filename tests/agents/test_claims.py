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


QUESTION = "How long may staff work abroad?"


def test_a_verified_quote_keeps_its_claim_and_citation() -> None:
    quote = "Staff may work abroad for 20 days a year."
    draft = Draft(claims=[Claim(quote=quote, text="Up to 20 days a year.", citations=[1])])
    checked = check(draft, PASSAGES, refusal=REFUSAL, question=QUESTION)
    assert (checked.answer, checked.refused, checked.flags) == ("Up to 20 days a year. [1]", False, [])
    assert checked.citations[0].quote == quote


def test_a_quote_found_in_another_passage_moves_the_citation_there() -> None:
    draft = Draft(
        claims=[Claim(quote="Passwords must have at least 14 characters.", text="14.", citations=[1])]
    )
    checked = check(draft, PASSAGES, refusal=REFUSAL)
    assert [c.number for c in checked.citations] == [4] and checked.flags == ["corrected_citations"]


def test_claims_citing_nothing_shown_are_dropped_and_all_dropped_is_a_refusal() -> None:
    draft = Draft(
        claims=[Claim(text="Invented.", citations=[2, 9]), Claim(text="HR approves.", citations=[1])]
    )
    checked = check(draft, PASSAGES, refusal=REFUSAL)
    assert checked.answer == "HR approves. [1]" and checked.flags == ["dropped_claims:1"]
    checked = check(Draft(claims=[Claim(text="Invented.", citations=[3])]), PASSAGES, refusal=REFUSAL)
    assert checked.refused and checked.answer == REFUSAL and "unsupported" in checked.flags


def test_the_model_saying_not_answerable_is_a_refusal_whatever_it_quotes() -> None:
    # The verdict comes first: a verified quote written after "not answerable" does not overrule it.
    quote = "HR approves each stay."
    real = Draft(answerable=False, claims=[Claim(quote=quote, text="HR approves.", citations=[1])])
    checked = check(real, PASSAGES, refusal=REFUSAL)
    assert checked.refused and checked.flags == ["model_refused"] and checked.citations == []


def test_a_claim_its_quote_does_not_support_is_flagged_and_alone_it_is_a_refusal() -> None:
    wrong_figure = Claim(
        quote="Staff may work abroad for 20 days a year.", text="90 days a year.", citations=[1]
    )
    checked = check(Draft(claims=[wrong_figure]), PASSAGES, refusal=REFUSAL, question=QUESTION)
    assert checked.refused and {"unsupported_claim:1", "unsupported"} <= set(checked.flags)
    # A claim that restates the question answers nothing, however well it matches.
    echo = Claim(quote="HR approves each stay.", text="Staff may work abroad.", citations=[1])
    right = Claim(quote="Staff may work abroad for 20 days a year.", text="20 days a year.", citations=[1])
    checked = check(Draft(claims=[right, echo]), PASSAGES, refusal=REFUSAL, question=QUESTION)
    assert not checked.refused and checked.flags == ["unsupported_claim:2"]


def test_the_quote_is_found_by_the_checks_whatever_the_model_sent() -> None:
    claim = Claim(quote="no such words anywhere", text="HR approves each stay.", citations=[1])
    checked = check(Draft(claims=[claim]), PASSAGES, refusal=REFUSAL, question="Who approves a stay?")
    assert not checked.refused and checked.flags == []
    assert checked.citations[0].quote == "HR approves each stay."


def test_repeated_claims_and_inline_markers_are_cleaned() -> None:
    claim = Claim(text="HR approves [1].", citations=[1])
    checked = check(Draft(claims=[claim, claim]), PASSAGES, refusal=REFUSAL)
    assert checked.answer == "HR approves. [1]"


def test_broken_json_is_recovered_claim_by_claim() -> None:
    cut = '{"answerable": true, "claims": [{"text": "20 days", "citations": [1], "quote": "x"}, {"text": "HR'
    draft, malformed = parse_draft(cut)
    assert malformed and [(c.text, c.citations) for c in draft.claims] == [("20 days", [1])]


def test_the_schema_asks_a_verdict_first_and_citations_of_shown_passages_only() -> None:
    schema = answer_schema(PASSAGES).schema_
    assert list(schema["properties"]) == ["answerable", "claims"]  # the verdict before any claim
    claim = schema["properties"]["claims"]["items"]["properties"]
    assert list(claim) == ["text", "citations"]
    assert claim["citations"]["items"]["enum"] == [1, 4]
    assert "Remote work" not in quotable(PASSAGES)  # headings are not evidence
    assert all(
        normalise(q) in " ".join(normalise(c.text) for c in PASSAGES.values()) for q in quotable(PASSAGES)
    )


def test_the_reply_sent_back_is_canonical_json_in_the_schema_order() -> None:
    checked = check(Draft(claims=[Claim(text="HR approves.", citations=[1])]), PASSAGES, refusal=REFUSAL)
    reply = reply_json(checked)
    assert reply == reply_json(checked) and list(json.loads(reply)) == ["answerable", "claims"]


_words = st.sampled_from(["staff", "may", "work", "abroad", "20", "days", "hr", "approves", "14", "x"])


@given(
    st.lists(
        st.builds(
            Claim,
            text=st.lists(_words, min_size=1, max_size=5).map(" ".join),
            citations=st.lists(st.integers(-2, 6), max_size=4),
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_nothing_unchecked_survives(claims: list[Claim], answerable: bool) -> None:
    checked = check(Draft(claims=claims, answerable=answerable), PASSAGES, refusal=REFUSAL, question=QUESTION)
    if checked.refused:
        assert checked.citations == [] and checked.answer == REFUSAL
        return
    assert answerable
    for citation in checked.citations:
        assert citation.number in PASSAGES and citation.text == PASSAGES[citation.number].text
        assert citation.quote is None or citation.quote in citation.text  # exact, not normalised
    for claim in checked.claims:
        assert claim.citations and set(claim.citations) <= set(PASSAGES)
    assert checked.claims and "unsupported" not in checked.flags
