"""Quote units and the support check: what a quote may be, and whether it backs its claim."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents._quotes import MAX_QUOTE_CHARS, content_words, quote_units, support
from retrieval import Chunk

RETENTION = """## Retention Periods

Each period starts from its trigger event. The schedule is reviewed yearly.

The following periods apply:

- CCTV footage from the Oslo and Bergen offices: 30 days, after which it is automatically overwritten.
- Daily backups: 35 days.
1. Monthly backups: 13 months.

Records not listed here follow the detailed schedule held by the DPO (Data Protection Officer).
"""


def _chunk(text: str) -> Chunk:
    return Chunk(
        chunk_id="c",
        source="/d.md",
        start=0,
        end=len(text),
        text=text,
        position=0,
        content_sha256="h",
        acl=["*"],
    )


def test_list_items_come_whole_behind_their_lead_in_and_colons_do_not_cut() -> None:
    shown = [u.shown for u in quote_units(_chunk(RETENTION))]
    assert shown == [
        "Each period starts from its trigger event.",
        "The schedule is reviewed yearly.",
        "The following periods apply:",
        "The following periods apply: CCTV footage from the Oslo and Bergen offices: 30 days, after which it "
        "is automatically overwritten.",
        "The following periods apply: Daily backups: 35 days.",
        "The following periods apply: Monthly backups: 13 months.",
        "Records not listed here follow the detailed schedule held by the DPO (Data Protection Officer).",
    ]
    cctv = quote_units(_chunk(RETENTION))[3]
    assert cctv.exact.startswith("CCTV footage") and cctv.exact in RETENTION


def test_a_heading_ends_a_lead_in() -> None:
    text = "Rules:\n\n## Other\n\n- An item that has no lead-in here.\n"
    assert [u.shown for u in quote_units(_chunk(text))] == ["An item that has no lead-in here."]


@given(st.text(alphabet=st.sampled_from(list("ab .:-\n#1)Xy")), min_size=1, max_size=600))
def test_every_unit_stands_for_exact_text_of_its_passage(text: str) -> None:
    for unit in quote_units(_chunk(text)):
        assert unit.exact and unit.exact in text
        assert len(unit.shown) <= MAX_QUOTE_CHARS + 2


def test_support_needs_the_claims_figures_and_more_than_the_question() -> None:
    quote = "CCTV footage from the Oslo and Bergen offices: 30 days, after which it is overwritten."
    question = "How long is CCTV footage kept?"
    assert support("CCTV footage is kept for 30 days.", quote, question) == 1.0
    assert support("CCTV footage is kept for 90 days.", quote, question) == 0.0
    assert support("CCTV footage is kept.", quote, question) == 0.0  # restates the question
    assert support("It is overwritten after 30 days.", quote, question) == 1.0
    assert (
        support(
            "Claim files are kept for 35 days.", "Daily backups: 35 days.", "How long are claim files kept?"
        )
        == 0
    )
    assert (
        content_words("Approves the 7,500 NOK.")
        == content_words("approved 7500 nok")
        == {"approv", "7500", "nok"}
    )
    assert content_words("files closed policies") == content_words("file close policy")
