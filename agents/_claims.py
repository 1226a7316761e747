"""The QA answer as claim-citation pairs: the json_schema the model fills, and the checks it must pass.

The model returns `{"answerable", "claims": [{"text", "citations", "quote"}]}`. The verdict comes
first, before any claim is written: a model that starts writing claims has committed to answering
(with the verdict last, a 1.5B model declined 0 of 4 unanswerable questions; asked first, the same
model declines them, docs/answer-quality.md). Each claim is written in the model's own words and then
backed by a quote *picked* from the shown passages' sentences and list items (`agents/_quotes.py`).

Nothing in it is trusted: a citation must name a passage the model was shown, a quote must be a unit
of a cited passage, a claim left without a valid citation is dropped, a claim whose quote does not
say what the claim says is flagged, and an answer left with no supported claim is a refusal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents._citations import Citation, citation_of
from agents._quotes import SUPPORT_THRESHOLD, support, units_of
from retrieval import Chunk
from serving import JsonSchema

MAX_CLAIMS = 3
MAX_CLAIM_CHARS = 300

# Flags that make the escalation strategy retry the answer with reasoning_effort="high".
ESCALATING_FLAGS = frozenset(
    {
        "model_refused",
        "dropped_claims",
        "unsupported",
        "unsupported_claim",
        "malformed_output",
    }
)


class Claim(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    citations: list[int] = Field(default_factory=list)
    quote: str = ""  # found by the checks, never taken from the model


class Draft(BaseModel):
    """What the model said, before any check."""

    model_config = ConfigDict(extra="ignore")

    answerable: bool = True
    claims: list[Claim] = Field(default_factory=list)


class Checked(BaseModel):
    """What survives the checks: the answer shown, its citations, and why anything was changed."""

    answer: str
    claims: list[Claim]
    citations: list[Citation]
    refused: bool
    flags: list[str]
    # The best support any claim found (agents/_quotes.py), None when the model declined: the figure
    # the decline threshold is tuned on (the grounding suite records it per question).
    support: float | None = None


def quotable(passages: dict[int, Chunk]) -> list[str]:
    """What a quote may be: the shown passages' sentences and list items (with their lead-in)."""
    return list(units_of(passages))


def answer_schema(passages: dict[int, Chunk]) -> JsonSchema:
    """Enforced by both llama-server and SGLang: a verdict, then claims that can only cite passages
    that were shown. No quote: the checks find it (see `check`)."""
    numbers = sorted(passages)
    claim = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_CLAIM_CHARS},
            "citations": {
                "type": "array",
                "items": {"type": "integer", "enum": numbers},
                "minItems": 1,
                "maxItems": min(3, len(numbers)),
            },
        },
        "required": ["text", "citations"],
        "additionalProperties": False,
    }
    return JsonSchema(
        name="cited_claims",
        schema={
            "type": "object",
            "properties": {
                "answerable": {"type": "boolean"},
                "claims": {"type": "array", "items": claim, "minItems": 0, "maxItems": MAX_CLAIMS},
            },
            "required": ["answerable", "claims"],
            "additionalProperties": False,
        },
    )


_CLAIM = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"citations"\s*:\s*\[([\d,\s]*)\]', re.DOTALL)


def parse_draft(content: str) -> tuple[Draft, bool]:
    """The model's draft and whether it had to be recovered from broken JSON (e.g. cut by max_tokens)."""
    try:
        return Draft.model_validate(json.loads(content)), False
    except (ValueError, ValidationError):
        pass
    claims = []
    for match in _CLAIM.finditer(content):
        try:
            text = json.loads(f'"{match.group(1)}"')
        except ValueError:
            text = match.group(1)
        numbers = [int(n) for n in re.findall(r"\d+", match.group(2))]
        claims.append(Claim(text=text, citations=numbers))
    return Draft(answerable=bool(claims), claims=claims), True


_MARKER = re.compile(r"\s*\[\d{1,3}\]")


_EDGE_PUNCTUATION = " \"'.,;:\u201c\u201d\u2018\u2019"  # straight and curly quotes


def normalise(text: str) -> str:
    return " ".join(text.casefold().split()).strip(_EDGE_PUNCTUATION)


def check(
    draft: Draft,
    passages: dict[int, Chunk],
    *,
    refusal: str,
    question: str = "",
    threshold: float = SUPPORT_THRESHOLD,
    pictures: Collection[int] = (),
) -> Checked:
    """`passages` maps the numbers the model was shown to their chunks; a claim whose best quote
    supports it less than `threshold` is unsupported, unless it cites one of `pictures` (passages the
    model saw as images): no text can back a claim about what a picture shows, so it stands on the
    picture alone and is flagged `image_claim`."""
    if not draft.answerable:
        return _refused(refusal, ["model_refused"])
    flags: list[str] = []
    units = units_of(passages)
    kept: list[Claim] = []
    dropped, unsupported, from_pictures, corrected, best = [], [], [], False, 0.0
    seen: set[str] = set()
    for index, claim in enumerate(draft.claims, start=1):
        text = _MARKER.sub("", claim.text).strip()
        if not text or normalise(text) in seen:
            continue  # small models repeat themselves; a repeated claim adds nothing
        seen.add(normalise(text))
        numbers = list(dict.fromkeys(n for n in claim.citations if n in passages))
        if not numbers:
            dropped.append(index)
            continue
        # The quote is ours to find: the unit of a cited passage that best supports the claim, else of
        # another shown passage (then the citation moves there: the model numbered the wrong one).
        score, exact, holders = _best_unit(text, question, numbers, units)
        if score < threshold:
            score, exact, holders = max(
                (score, exact, holders), _best_unit(text, question, list(passages), units), key=lambda b: b[0]
            )
        best = max(best, score)
        seen_pictures = [n for n in numbers if n in pictures]
        if score < threshold and seen_pictures:
            from_pictures.append(index)
            kept.append(Claim(text=text, citations=seen_pictures))
            continue
        if score < threshold:
            unsupported.append(index)
            kept.append(Claim(text=text, citations=numbers))
            continue
        if not set(holders) & set(numbers):
            corrected = True  # the model numbered the wrong passage: cite where the quote is
        # A claim cites what backs it: the passages holding its quote, not every number the model
        # listed beside it.
        kept.append(
            Claim(text=text, citations=[n for n in holders if n in numbers] or holders[:1], quote=exact)
        )
    if dropped:
        flags.append(f"dropped_claims:{','.join(map(str, dropped))}")
    if unsupported:
        flags.append(f"unsupported_claim:{','.join(map(str, unsupported))}")
    if from_pictures:
        flags.append(f"image_claim:{','.join(map(str, from_pictures))}")
    if corrected:
        flags.append("corrected_citations")
    if not kept or len(unsupported) == len(kept):
        # Nothing the passages say backs the answer: a claim that only restates the question, or
        # states a figure no passage gives, is how a small model answers what no passage says.
        return _refused(refusal, [*flags, "unsupported"], support=best)
    numbers = list(dict.fromkeys(n for c in kept for n in c.citations))
    # A claim may cite several passages; its quote belongs only to those that contain it.
    quotes = {n: c.quote for c in kept for n in c.citations if c.quote and c.quote in passages[n].text}
    citations = [citation_of(n, passages[n], quotes.get(n)) for n in numbers]
    answer = " ".join(_with_markers(c) for c in kept)
    return Checked(answer=answer, claims=kept, citations=citations, refused=False, flags=flags, support=best)


def _best_unit(
    claim: str, question: str, numbers: list[int], units: dict[str, tuple[str, list[int]]]
) -> tuple[float, str, list[int]]:
    """(support, exact text, holders) of the unit of passages `numbers` that best supports the claim;
    the first in passage order among equals; (0, "", []) when there is none."""
    best: tuple[float, str, list[int]] = (0.0, "", [])
    for shown, (exact, holders) in units.items():
        if set(holders) & set(numbers):
            score = support(claim, shown, question)
            if score > best[0]:
                best = (score, exact, [n for n in holders if n in numbers] or holders)
    return best


def _with_markers(claim: Claim) -> str:
    return f"{claim.text} " + "".join(f"[{n}]" for n in claim.citations)


def _refused(refusal: str, flags: list[str], support: float | None = None) -> Checked:
    return Checked(answer=refusal, claims=[], citations=[], refused=True, flags=flags, support=support)


def reply_json(checked: Checked) -> str:
    """The assistant turn as later prompts show it: the checked answer in the schema's own shape, as
    canonical compact JSON, so it renders identically every turn and shows the model its format."""
    body = {"answerable": not checked.refused, "claims": [c.model_dump() for c in checked.claims]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
