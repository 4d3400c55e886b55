"""Sentence vectors pooled from the chunk's own model call (real MiniLM, offline)."""

from __future__ import annotations

import numpy as np
import pytest

from textmodels.embedding import SentenceTransformerEmbedder
from textmodels.sentences import sentence_spans, sentences


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_spans_are_where_the_sentences_lie() -> None:
    text = "One long\nsentence. Two;\n\n- item\n- other\n1. first"
    spans = sentence_spans(text)
    assert [" ".join(text[a:b].split()) for a, b in spans] == sentences(text)
    assert sentences(text) == ["One long sentence.", "Two;", "- item", "- other", "1. first"]


def test_the_text_vector_is_embed_s_and_each_sentence_gets_its_own(
    embedder: SentenceTransformerEmbedder,
) -> None:
    text = (
        "Before the flight, the pilot checks the fuel quantity. "
        "The engine is started with the magnetos on both. "
        "After landing, the aircraft taxis to the apron."
    )
    [(vector, parts)] = embedder.embed_spans([text], [sentence_spans(text)])
    assert float(np.dot(vector, embedder.embed([text])[0])) == pytest.approx(1.0, abs=1e-5)
    assert len(parts) == 3
    assert all(np.linalg.norm(p) == pytest.approx(1.0, abs=1e-5) for p in parts)
    query = embedder.embed(["how is the engine started"])[0]
    assert int(np.argmax([np.dot(query, p) for p in parts])) == 1
    assert embedder.embed_spans([text], [[]]) == [(vector, [])]


def test_sentences_past_the_model_input_get_no_vector(
    embedder: SentenceTransformerEmbedder,
) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(120))  # > 256 tokens
    spans = sentence_spans(text)
    [(_, parts)] = embedder.embed_spans([text], [spans])
    assert 0 < len(parts) < len(spans)
