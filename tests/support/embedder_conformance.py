"""Embedder conformance: the behaviour every ``textmodels.embedding.Embedder`` owes its callers.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``embedder`` fixture (the implementation under test, models loaded once
per session by the subclass) and says, in two class attributes, what its model promises:

* ``reach_tokens``: how many of a text's tokens (as ``count_tokens`` counts them) the model
  reads; spans that start past it are left out of ``embed_spans``. ``None``: every span is read.
* ``pooled_equals_embed``: ``embed_spans``' vector of a text is ``embed``'s vector of it (cosine
  within 1e-5).

``tests/unit/test_embedder_conformance.py`` runs it on the hashing ``WordsEmbedder`` and the
wrappers around it; ``tests/integration/test_embedder_conformance.py`` on the packaged MiniLM,
the wrappers around it and multilingual-e5-small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from textmodels.embedding import Embedder
from textmodels.sentences import Span, sentence_spans

# Batches pad texts to a common length; the padded positions are masked, so a text's vector
# changes only by float rounding (MiniLM: cosine 1 - 1e-7 between batch and single).
SAME = 1 - 1e-5

TEXTS = [
    "The maintenance contract binds ACME Industries and the city of Lyon. It ends in 2026.",
    "Invoice INV-7 amounts to 120 EUR and is due within thirty days.",
    "Les congés payés sont de cinq semaines par an. Le télétravail est possible.",
    "Short.",
]
QUERY = "When does the maintenance contract with ACME end?"
RELEVANT = "The maintenance contract with ACME Industries ends on March 3, 2026."
UNRELATED = "Penguins huddle together through the long Antarctic winter."
# 7 MiniLM tokens, 7 words: hundreds of them outrun any model's window.
SENTENCE = "Sentence number {i} is right here."


def norm(v: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / ((norm(a) * norm(b)) or 1.0)


def long_text(sentences: int) -> tuple[str, list[Span]]:
    """``sentences`` numbered sentences and the span of each."""
    parts = [SENTENCE.format(i=i) for i in range(sentences)]
    text = " ".join(parts)
    spans: list[Span] = []
    start = 0
    for part in parts:
        spans.append((start, start + len(part)))
        start += len(part) + 1
    return text, spans


class EmbedderConformance:
    """Subclasses provide ``embedder`` and, where their model differs, the attributes below."""

    reach_tokens: int | None = None
    pooled_equals_embed: bool = True

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("a subclass provides the embedder under test")

    def assert_unit(self, embedder: Embedder, v: Sequence[float]) -> None:
        assert len(v) == embedder.dim
        assert all(math.isfinite(x) for x in v)
        assert norm(v) == pytest.approx(1.0, abs=1e-4)

    # -- identity ----------------------------------------------------------------------------

    def test_model_id_and_dim_are_stable(self, embedder: Embedder) -> None:
        assert isinstance(embedder.model_id, str) and embedder.model_id
        assert embedder.model_id == embedder.model_id
        assert isinstance(embedder.dim, int) and embedder.dim > 0
        assert embedder.dim == embedder.dim

    # -- embed -------------------------------------------------------------------------------

    def test_one_unit_vector_of_dim_per_text(self, embedder: Embedder) -> None:
        vectors = embedder.embed(TEXTS)
        assert len(vectors) == len(TEXTS)
        for v in vectors:
            self.assert_unit(embedder, v)

    def test_input_order_is_kept(self, embedder: Embedder) -> None:
        batch = embedder.embed(TEXTS)
        alone = [embedder.embed([t])[0] for t in TEXTS]
        backwards = embedder.embed(TEXTS[::-1])[::-1]
        for i in range(len(TEXTS)):
            assert cosine(batch[i], alone[i]) >= SAME, TEXTS[i]
            assert cosine(backwards[i], alone[i]) >= SAME, TEXTS[i]

    def test_the_same_text_gets_the_same_vector(self, embedder: Embedder) -> None:
        a, other, b = embedder.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
        again = embedder.embed([TEXTS[0]])[0]
        assert cosine(a, b) >= SAME
        assert cosine(a, again) >= SAME
        assert cosine(a, other) < 0.99  # a constant vector would pass the lines above

    def test_related_texts_are_nearer_than_unrelated_ones(self, embedder: Embedder) -> None:
        query, relevant, unrelated = embedder.embed([QUERY, RELEVANT, UNRELATED])
        assert cosine(query, relevant) > cosine(query, unrelated)

    def test_questions_embed_in_order_and_near_their_passage(self, embedder: Embedder) -> None:
        q, other = embedder.embed_queries([QUERY, UNRELATED])
        relevant, unrelated = embedder.embed([RELEVANT, UNRELATED])
        for v in (q, other):
            assert len(v) == embedder.dim
            assert abs(sum(x * x for x in v) - 1.0) < 1e-3
        assert cosine(q, relevant) > cosine(q, unrelated)
        assert cosine(other, unrelated) > cosine(q, unrelated)  # order kept
        assert embedder.embed_queries([QUERY])[0] == pytest.approx(q, abs=1e-5)

    def test_empty_input_gives_empty_output(self, embedder: Embedder) -> None:
        assert embedder.embed([]) == []
        assert embedder.embed_queries([]) == []
        assert embedder.embed_spans([], []) == []

    def test_a_text_longer_than_the_model_reads_still_embeds(self, embedder: Embedder) -> None:
        text, _ = long_text(400)  # ~2,800 tokens
        [v] = embedder.embed([text])
        self.assert_unit(embedder, v)

    # -- embed_spans -------------------------------------------------------------------------

    def test_pooled_vector_is_embeds_vector(self, embedder: Embedder) -> None:
        if not self.pooled_equals_embed:
            pytest.skip(f"{type(embedder).__name__} does not promise it")
        pooled = embedder.embed_spans(TEXTS, [sentence_spans(t) for t in TEXTS])
        plain = embedder.embed(TEXTS)
        for (whole, _), v, text in zip(pooled, plain, TEXTS, strict=True):
            assert cosine(whole, v) >= SAME, text

    def test_one_unit_span_vector_per_span_in_span_order(self, embedder: Embedder) -> None:
        spans = [sentence_spans(t) for t in TEXTS]
        assert [len(s) for s in spans] == [2, 1, 2, 1]
        pooled = embedder.embed_spans(TEXTS, spans)
        assert len(pooled) == len(TEXTS)
        for (whole, parts), own in zip(pooled, spans, strict=True):
            self.assert_unit(embedder, whole)
            assert len(parts) == len(own)
            for v in parts:
                self.assert_unit(embedder, v)
        first, second = pooled[0][1]
        assert cosine(first, second) < 0.99  # two different sentences, two vectors
        # the same spans asked in the opposite order: the same vectors, in that order
        [(_, backwards)] = embedder.embed_spans([TEXTS[0]], [spans[0][::-1]])
        assert cosine(backwards[0], second) >= SAME
        assert cosine(backwards[1], first) >= SAME

    def test_a_spans_vector_does_not_depend_on_the_other_spans(self, embedder: Embedder) -> None:
        text, spans = long_text(12)
        [(_, every)] = embedder.embed_spans([text], [spans])
        [(_, some)] = embedder.embed_spans([text], [spans[:5]])
        [(_, none)] = embedder.embed_spans([text], [[]])
        assert len(every) == 12 and len(some) == 5 and none == []
        for a, b in zip(every, some, strict=False):
            assert cosine(a, b) >= SAME

    def test_texts_are_embedded_independently(self, embedder: Embedder) -> None:
        spans = [sentence_spans(t) for t in TEXTS]
        together = embedder.embed_spans(TEXTS, spans)
        for i, (text, own) in enumerate(zip(TEXTS, spans, strict=True)):
            [(whole, parts)] = embedder.embed_spans([text], [own])
            assert cosine(whole, together[i][0]) >= SAME
            assert len(parts) == len(together[i][1])
            for a, b in zip(parts, together[i][1], strict=True):
                assert cosine(a, b) >= SAME

    def test_spans_out_of_the_models_reach_are_left_out(self, embedder: Embedder) -> None:
        text, spans = long_text(100)  # ~700 MiniLM tokens, ~1,000 of e5
        [(whole, parts)] = embedder.embed_spans([text], [spans])
        self.assert_unit(embedder, whole)
        for v in parts:
            self.assert_unit(embedder, v)
        if self.reach_tokens is None:
            assert len(parts) == len(spans)
            return
        # Tokens of the text before each span's end / start; 8 tokens of margin for the
        # tokenizer's merges across the cut and a prefix the implementation adds.
        margin = 8
        within = sum(
            1 for _, end in spans if embedder.count_tokens(text[:end]) <= self.reach_tokens - margin
        )
        reached = sum(
            1
            for start, _ in spans
            if embedder.count_tokens(text[:start]) < self.reach_tokens + margin
        )
        assert 0 < within <= len(parts) <= reached < len(spans)
        # the kept ones are the first spans' vectors, as asked on their own
        [(_, first)] = embedder.embed_spans([text], [spans[:within]])
        for a, b in zip(parts, first, strict=False):
            assert cosine(a, b) >= SAME

    def test_texts_and_spans_of_different_lengths_are_refused(self, embedder: Embedder) -> None:
        with pytest.raises(ValueError, match=r"zip\(\) argument \d is (shorter|longer)"):
            embedder.embed_spans(TEXTS[:2], [sentence_spans(TEXTS[0])])

    # -- count_tokens ------------------------------------------------------------------------

    def test_count_tokens_grows_with_the_text(self, embedder: Embedder) -> None:
        assert embedder.count_tokens("") == 0
        words = TEXTS[0].split()
        counts = [embedder.count_tokens(" ".join(words[:n])) for n in range(1, len(words) + 1)]
        assert counts[0] > 0
        assert counts == sorted(counts)  # never fewer tokens for more text
        assert counts[-1] > counts[0]
        assert embedder.count_tokens(TEXTS[2]) > 0  # French
        assert embedder.count_tokens(f"{TEXTS[0]} {TEXTS[0]}") > counts[-1]

    def test_count_tokens_is_deterministic(self, embedder: Embedder) -> None:
        assert [embedder.count_tokens(t) for t in TEXTS] == [
            embedder.count_tokens(t) for t in TEXTS
        ]
