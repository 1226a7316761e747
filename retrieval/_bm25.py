"""BM25 as sparse vectors, with our own tokenizer, so Qdrant Edge and a Qdrant server score alike.

Documents get BM25's saturated, length-normalised term frequency per token; queries get 1.0 per
distinct token; the store's IDF modifier supplies the inverse document frequency at query time, so
the corpus statistics never have to be recomputed when documents come and go.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+", re.UNICODE)
# A short list: in policies and code, words like "not", "must" and "may" carry meaning; keep them.
_STOPWORD_LIST = (
    "a an and are as at be by for from has have in into is it its of on or that the their there these "
    "this to was were which with"
)
STOPWORDS = frozenset(_STOPWORD_LIST.split())
K1 = 1.2
B = 0.75
AVG_TOKENS = 80.0  # about what a 500-character chunk holds; BM25 only needs the order of magnitude


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


def tokenize(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [t for t in _TOKEN.findall(folded) if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


def token_id(token: str) -> int:
    # A stable 32-bit hash: the same token maps to the same dimension in every process and store.
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")


def document_vector(text: str) -> SparseVector:
    tokens = tokenize(text)
    counts = Counter(token_id(t) for t in tokens)
    norm = K1 * (1 - B + B * len(tokens) / AVG_TOKENS)
    items = sorted((i, tf * (K1 + 1) / (tf + norm)) for i, tf in counts.items())
    return SparseVector(indices=[i for i, _ in items], values=[v for _, v in items])


def query_vector(text: str) -> SparseVector:
    ids = sorted({token_id(t) for t in tokenize(text)})
    return SparseVector(indices=ids, values=[1.0] * len(ids))
