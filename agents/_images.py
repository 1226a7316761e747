"""Pictures in a turn: the asker's own, and retrieved image documents, for a model that reads images.

Images travel only in the answer call's last user message, after the system prefix, so the prefix
cache holds whether or not a turn has pictures (docs/prompt-layout.md). They are never stored in a
thread: a later turn shows the question's text, not its pixels.

A retrieved image is attached only when the file still holds the bytes that were indexed (the
sha256 the loader recorded): an image that changed since indexing is not shown as the indexed one,
and its passage stays a line of text. No claim about a picture can be checked against text, so the
answer checks accept a claim that cites an attached picture and flag it `image_claim`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from agents._prompts import render
from retrieval import Chunk
from serving import ImageError, ImagePart, Message, TextPart

MAX_ATTACHED = 4  # retrieved pictures per answer call: each costs the model ~1-3k tokens of vision input


def attachable(passages: dict[int, Chunk]) -> tuple[dict[int, ImagePart], list[int]]:
    """The shown passages that are pictures, as images to attach (newest first, at most
    MAX_ATTACHED), and the numbers of those that could not be (file gone, changed or unreadable)."""
    pictures = [n for n, chunk in sorted(passages.items(), reverse=True) if chunk.doc_type == "image"]
    attached: dict[int, ImagePart] = {}
    unavailable: list[int] = []
    for number in pictures[:MAX_ATTACHED]:
        image = _read(passages[number])
        if image is None:
            unavailable.append(number)
        else:
            attached[number] = image
    return dict(sorted(attached.items())), sorted(unavailable)


def _read(chunk: Chunk) -> ImagePart | None:
    expected = chunk.media.get("sha256")
    if not expected:
        return None  # indexed before the file's hash was kept: re-index to attach it
    try:
        data = Path(chunk.source).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        return None
    try:
        return ImagePart.from_bytes(data)  # its type by its bytes, as the server will read it
    except ImageError:
        return None


def turn_message(
    text: str, asked: Sequence[ImagePart] = (), attached: dict[int, ImagePart] | None = None
) -> Message:
    """The last user message: the step's text, then the asker's pictures, then each attached passage
    picture after a line naming its passage number (so the model can cite it). Text only when there
    are no pictures, so a turn without them is byte for byte what it was before images existed."""
    attached = attached or {}
    if not asked and not attached:
        return Message(role="user", content=text)
    parts: list[TextPart | ImagePart] = [TextPart(text=text), *asked]
    for number, image in attached.items():
        parts.append(TextPart(text=render("images_passage", number=str(number))))
        parts.append(image)
    return Message(role="user", content=parts)
