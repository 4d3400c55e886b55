"""detect_language(): French or English from function words; ties and empty text."""

from __future__ import annotations

import time

import pytest

from textmodels.language import detect_language

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Comment demander une aide au logement quand on est étudiant ?", "fr"),
        ("Qu'est-ce que la médiation familiale ?", "fr"),
        ("How do I apply for housing benefit as a student?", "en"),
        ("The elastic stop nut is a standard nut with the height increased.", "en"),
        ("Le Boots self-locking nut est utilisé dans les avions.", "fr"),
    ],
)
def test_sentences(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_no_letters_is_undetermined() -> None:
    assert detect_language("") == "und"
    assert detect_language("2024-03-03 | 1 234,56 € | 42") == "und"


def test_ties_use_french_diacritics_then_the_default() -> None:
    assert detect_language("Tarifs 2024") == "en"
    assert detect_language("Tarifs 2024", default="fr") == "fr"
    assert detect_language("Démarches administratives") == "fr"


def test_long_text_is_sampled_so_detection_stays_fast() -> None:
    text = "Les demandes sont traitées par la caisse dans un délai de deux mois. " * 200_000

    started = time.perf_counter()
    assert detect_language(text) == "fr"
    assert time.perf_counter() - started < 0.5
