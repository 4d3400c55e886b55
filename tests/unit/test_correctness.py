"""The answer-correctness metric: the reference's content words found in the answer, and its
numbers and dates matched exactly."""

from __future__ import annotations

import pytest

from evaluation.correctness import answer_correctness, figures

pytestmark = pytest.mark.unit


def test_numbers_and_dates_are_values_not_strings() -> None:
    assert figures("Le montant est de 1 234,56 € au 12 mars 2024, soit 15 %.", "fr") == {
        "1234.56",
        "15",
        "date:2024-03-12",
    }
    assert figures("EUR 1,234.56 due on March 12, 2024.", "en") == {"1234.56", "date:2024-03-12"}


def test_a_right_answer_scores_one_and_a_wrong_figure_loses_half() -> None:
    right = answer_correctness("Le délai de prescription est de 3 ans [1].", "un délai de 3 ans")
    assert right.score == 1.0 and right.figures == 1.0
    wrong = answer_correctness("Le délai de prescription est de 5 ans [1].", "un délai de 3 ans")
    assert wrong.figures == 0.0 and wrong.content == 1.0 and wrong.score == 0.5


def test_content_words_are_stemmed_and_accent_folded() -> None:
    got = answer_correctness(
        "La médiation familiale règle les conflits : ruptures, séparations, divorces.",
        "une autre voie dans le règlement de conflits comme les ruptures, séparations et divorces",
    )
    assert got.figures is None
    assert 0.6 < got.content < 1.0  # "voie", "autre"... are missing


def test_a_refusal_scores_zero() -> None:
    assert answer_correctness("", "trois mois de préavis").score == 0.0
