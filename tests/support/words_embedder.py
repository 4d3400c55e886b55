"""Deterministic bag-of-words vectors (hashing): an embedder for tests of the code around a
model (RAGAS's cosine similarity, batching), where what a real model would say does not matter."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

from textmodels.embedding import Pooled, embed_spans_alone
from textmodels.sentences import Span


class WordsEmbedder:
    model_id = "words"
    dim = 64

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for t in texts:
            v = [0.0] * self.dim
            for w in re.findall(r"\w+", t.lower()):
                v[zlib.crc32(w.encode()) % self.dim] += 1.0
            norm = math.sqrt(sum(x * x for x in v))
            # L2-normalised, as the Embedder Protocol promises (tests/support/embedder_conformance)
            out.append([x / norm for x in v] if norm else [1.0] + [0.0] * (self.dim - 1))
        return out

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed(texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        return embed_spans_alone(self, texts, spans)
