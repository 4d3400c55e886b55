"""What the type classifier reads of a document: its terms and its embedding.

* ``terms``: the document's analysed terms (the sparse encoder's: stopwords dropped, Snowball
  stems, accents stripped) and the pairs of consecutive ones, hashed into ``DIM`` buckets with
  their counts;
* ``head``: the terms of its first lines, in buckets of their own. A document names its kind in
  its title ("FACTURE N° ...", "BULLETIN DE PAIE", "STATEMENT OF ACCOUNT"), which body terms
  drown (an invoice cites the quote it follows, an order asks for an invoice);
* ``embedding``: the mean of its chunks' vectors (read back from the vector store, not embedded
  again), L2-normalised; ``None`` when there is none.

A label's text (a type's name and description) is analysed both as French and as English, so a
bilingual description meets documents in either language. Everything is JSON-ready: the catalog
keeps each document's features, the classifier is fitted from them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from textmodels.language import detect_language
from textmodels.sparse import SparseEncoder

# 2^18 buckets: a tenant's vocabulary of stems and stem pairs (~10^5) collides rarely.
DIM = 1 << 18
HEAD_LINES = 6
# Distinct bucket spaces for pairs and head terms (odd multipliers mod 2^18 are bijections).
_PAIR = 0x9E3779B1
_HEAD = 7919
# A document's first characters say what it is; the rest only adds cost (~0.5 ms per 10 kB).
MAX_CHARS = 60_000


def bucket(term_id: int) -> int:
    return term_id % DIM


def _pair(a: int, b: int) -> int:
    return (a * _PAIR + b) % DIM


def head_bucket(term_id: int) -> int:
    return (term_id * _HEAD + 1) % DIM


@dataclass(frozen=True)
class Features:
    """One document's features (see the module's docstring)."""

    terms: dict[int, float] = field(default_factory=dict)
    head: dict[int, float] = field(default_factory=dict)
    embedding: list[float] | None = None
    language: str = "und"

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": {str(k): v for k, v in self.terms.items()},
            "head": {str(k): v for k, v in self.head.items()},
            "embedding": self.embedding,
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Features:
        emb = data.get("embedding")
        return cls(
            terms={int(k): float(v) for k, v in (data.get("terms") or {}).items()},
            head={int(k): float(v) for k, v in (data.get("head") or {}).items()},
            embedding=[float(x) for x in emb] if emb else None,
            language=str(data.get("language") or "und"),
        )


def mean_vector(vectors: Sequence[Sequence[float]]) -> list[float] | None:
    """The L2-normalised mean of the vectors; ``None`` for none."""
    if not vectors:
        return None
    dim = len(vectors[0])
    total = [0.0] * dim
    for v in vectors:
        for i, x in enumerate(v):
            total[i] += x
    norm = math.sqrt(sum(x * x for x in total)) or 1.0
    return [x / norm for x in total]


def document_features(
    text: str,
    sparse: SparseEncoder,
    *,
    embedding: list[float] | None = None,
    language: str | None = None,
) -> Features:
    text = text[:MAX_CHARS]
    lang = language or detect_language(text)
    ids = sparse.term_ids(text, lang)
    terms: Counter[int] = Counter(bucket(t) for t in ids)
    terms.update(_pair(a, b) for a, b in pairwise(ids))
    lines = [ln for ln in text.split("\n") if ln.strip()][:HEAD_LINES]
    head = Counter(head_bucket(t) for t in sparse.term_ids("\n".join(lines), lang))
    return Features(
        terms={k: float(v) for k, v in terms.items()},
        head={k: float(v) for k, v in head.items()},
        embedding=embedding,
        language=lang,
    )


def label_terms(text: str, sparse: SparseEncoder) -> set[int]:
    """A label's term buckets, analysed as French and as English (bilingual descriptions)."""
    return {bucket(t) for lang in ("fr", "en") for t in sparse.term_ids(text, lang)}


def label_features(text: str, sparse: SparseEncoder) -> Features:
    """A label's text as a pseudo-document: its terms both as body and as head terms."""
    terms = label_terms(text, sparse)
    return Features(
        terms={t: 1.0 for t in terms},
        head={head_bucket(t): 1.0 for t in terms},
    )
