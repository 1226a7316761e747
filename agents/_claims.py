"""The QA answer as claim-citation pairs: the json_schema the model fills, and the checks it must pass.

The model returns `{"claims": [{"quote", "text", "citations"}], "answerable", "confident"}`: the
judgements come after the claims, so a small model writes them with the evidence in view. Nothing in
it is trusted: a citation must name a passage the model was shown, a quote must occur in a cited
passage (after whitespace and case normalisation), a claim left without a valid citation is dropped,
and the refusal decision needs both the model's "not answerable" and the absence of any verified quote.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents._citations import Citation, citation_of
from retrieval import Chunk
from serving import JsonSchema

MAX_CLAIMS = 3
MAX_CLAIM_CHARS = 300
MAX_QUOTE_CHARS = 160
MIN_QUOTE_CHARS = 12
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")

# Flags that make the escalation strategy retry the answer with reasoning_effort="high".
ESCALATING_FLAGS = frozenset(
    {"model_refused", "model_unsure", "unverified_quote", "dropped_claims", "unsupported", "malformed_output"}
)


class Claim(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quote: str = ""
    text: str
    citations: list[int] = Field(default_factory=list)


class Draft(BaseModel):
    """What the model said, before any check."""

    model_config = ConfigDict(extra="ignore")

    answerable: bool = True
    claims: list[Claim] = Field(default_factory=list)
    confident: bool = True


class Checked(BaseModel):
    """What survives the checks: the answer shown, its citations, and why anything was changed."""

    answer: str
    claims: list[Claim]
    citations: list[Citation]
    refused: bool
    flags: list[str]


def quotable(passages: dict[int, Chunk]) -> list[str]:
    """The sentences of the shown passages, each cut to MAX_QUOTE_CHARS: what a quote may be."""
    sentences: dict[str, None] = {}
    for chunk in passages.values():
        for sentence in _SENTENCE_END.split(chunk.text):
            if sentence.lstrip().startswith("#"):
                continue  # a heading says what a section is about, not what it says
            sentence = " ".join(sentence.split()).lstrip("-*> ").strip()
            if len(sentence) >= MIN_QUOTE_CHARS:
                sentences.setdefault(sentence[:MAX_QUOTE_CHARS].rstrip(), None)
    return list(sentences)


def answer_schema(passages: dict[int, Chunk]) -> JsonSchema:
    """Enforced by both llama-server and SGLang: citations can only name passages that were shown,
    and each quote is chosen from their sentences rather than typed out.

    The quote comes first and is picked, not written: selecting evidence is within reach of even a
    135M model, where free copying drifts, and the claim that follows is written next to it. The
    judgements come last, with the evidence in view.
    """
    numbers = sorted(passages)
    quotes = quotable(passages)
    quote: dict[str, object] = {"type": "string", "enum": quotes} if quotes else {"type": "string"}
    claim = {
        "type": "object",
        "properties": {
            "quote": quote,
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_CLAIM_CHARS},
            "citations": {
                "type": "array",
                "items": {"type": "integer", "enum": sorted(numbers)},
                "minItems": 1,
                "maxItems": min(3, len(numbers)),
            },
        },
        "required": ["quote", "text", "citations"],
        "additionalProperties": False,
    }
    return JsonSchema(
        name="cited_claims",
        schema={
            "type": "object",
            "properties": {
                "claims": {"type": "array", "items": claim, "minItems": 1, "maxItems": MAX_CLAIMS},
                "answerable": {"type": "boolean"},
                "confident": {"type": "boolean"},
            },
            "required": ["claims", "answerable", "confident"],
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
    return Draft(answerable=bool(claims), claims=claims, confident=False), True


_MARKER = re.compile(r"\s*\[\d{1,3}\]")


_EDGE_PUNCTUATION = " \"'.,;:\u201c\u201d\u2018\u2019"  # straight and curly quotes


def normalise(text: str) -> str:
    return " ".join(text.casefold().split()).strip(_EDGE_PUNCTUATION)


def check(draft: Draft, passages: dict[int, Chunk], *, refusal: str) -> Checked:
    """`passages` maps the numbers the model was shown to their chunks."""
    flags: list[str] = []
    texts = {n: normalise(p.text) for n, p in passages.items()}
    kept: list[Claim] = []
    dropped, unverified, corrected, verified_any = [], [], False, False
    seen: set[str] = set()
    for index, claim in enumerate(draft.claims, start=1):
        text = _MARKER.sub("", claim.text).strip()
        if not text or normalise(text) in seen:
            continue  # small models repeat themselves; a repeated claim adds nothing
        seen.add(normalise(text))
        numbers = list(dict.fromkeys(n for n in claim.citations if n in passages))
        quote = normalise(claim.quote)
        if quote:
            holders = [n for n in sorted(passages) if quote in texts[n]]
            if any(n in holders for n in numbers):
                verified_any = True
            elif holders:
                # The quote is real but the model numbered the wrong passage: cite where it is.
                numbers, corrected, verified_any = holders[:1], True, True
            else:
                unverified.append(index)
                claim = claim.model_copy(update={"quote": ""})
        if not numbers:
            dropped.append(index)
            continue
        kept.append(Claim(quote=claim.quote if quote else "", text=text, citations=numbers))
    if dropped:
        flags.append(f"dropped_claims:{','.join(map(str, dropped))}")
    if unverified:
        flags.append(f"unverified_quote:{','.join(map(str, unverified))}")
    if corrected:
        flags.append("corrected_citations")
    if not draft.answerable and not verified_any:
        return _refused(refusal, [*flags, "model_refused"])
    if not kept:
        return _refused(refusal, [*flags, "unsupported"])
    if not draft.answerable or not draft.confident:
        flags.append("model_unsure")
    numbers = list(dict.fromkeys(n for c in kept for n in c.citations))
    # A claim may cite several passages; its quote belongs only to those that contain it.
    quotes = {n: c.quote for c in kept for n in c.citations if c.quote and normalise(c.quote) in texts[n]}
    citations = [citation_of(n, passages[n], quotes.get(n)) for n in numbers]
    answer = " ".join(_with_markers(c) for c in kept)
    return Checked(answer=answer, claims=kept, citations=citations, refused=False, flags=flags)


def _with_markers(claim: Claim) -> str:
    return f"{claim.text} " + "".join(f"[{n}]" for n in claim.citations)


def _refused(refusal: str, flags: list[str]) -> Checked:
    return Checked(answer=refusal, claims=[], citations=[], refused=True, flags=flags)


def reply_json(checked: Checked) -> str:
    """The assistant turn as later prompts show it: the checked answer in the schema's own shape, as
    canonical compact JSON, so it renders identically every turn and shows the model its format."""
    body = {
        "claims": [c.model_dump() for c in checked.claims],
        "answerable": not checked.refused,
        "confident": True,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
