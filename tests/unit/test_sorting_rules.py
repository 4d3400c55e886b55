"""Matching rules with Paperless-ngx's semantics, and the vocabulary's checks."""

from __future__ import annotations

import time

import pytest

from core.errors import InvalidInput
from sorting.rules import REGEX_TIMEOUT_S, match_entries, matches, search_user_pattern, words
from sorting.vocabulary import Rule, entry_from, slug

pytestmark = pytest.mark.unit

TEXT = "FACTURE N° 2024/0978\nRèglement par virement bancaire. Total TTC 6 537,66 €"


def rule(algorithm: str, pattern: str, **kw: object) -> Rule:
    return Rule(algorithm, pattern, **kw)  # type: ignore[arg-type]


def test_any_matches_one_whole_word_and_all_needs_every_one() -> None:
    assert matches(rule("any", "devis facture"), TEXT) == "contains: FACTURE"
    assert matches(rule("any", "fact"), TEXT) is None  # whole words only
    assert matches(rule("all", "facture virement"), TEXT)
    assert matches(rule("all", "facture devis"), TEXT) is None


def test_quoted_phrases_stay_together_and_match_across_whitespace() -> None:
    assert words('  total  "par   virement" ') == ["total", r"par\s+virement"]
    assert matches(rule("all", '"par virement" total'), TEXT)
    assert matches(rule("any", '"virement par"'), TEXT) is None


def test_exact_regex_fuzzy_and_case() -> None:
    assert matches(rule("exact", "total ttc"), TEXT)
    assert matches(rule("exact", "total ttc", case_insensitive=False), TEXT) is None
    assert matches(rule("regex", r"N° \d{4}/\d+"), TEXT) == r"matches /N° \d{4}/\d+/: N° 2024/0978"
    assert matches(rule("regex", "("), TEXT) is None  # broken: never matches
    assert matches(rule("fuzzy", "Reglement par virmeent"), TEXT)
    assert matches(rule("fuzzy", "contrat de bail"), TEXT) is None
    assert matches(rule("none", "facture"), TEXT) is None


def test_a_runaway_regular_expression_stops_in_time_and_does_not_match() -> None:
    """(a|aa)+$ on 40 a's and a b backtracks ~fib(40) times (minutes, in ``re`` and in
    ``regex`` alike); the user's pattern gets REGEX_TIMEOUT_S, then it is a non-match."""
    hostile = "a" * 40 + "b"
    started = time.monotonic()
    assert matches(rule("regex", r"(a|aa)+$"), hostile) is None
    took = time.monotonic() - started
    # It ran, and was stopped. The regex package checks its time limit against its own coarse
    # clock: a clean-clone CI run saw it stop at 0.487 s of wall time for 0.5 s.
    assert 0.9 * REGEX_TIMEOUT_S <= took < REGEX_TIMEOUT_S + 2
    assert search_user_pattern(r"a{3}b", hostile) is not None


def test_a_rule_may_read_the_file_name() -> None:
    by_name = rule("regex", r"^FAC-\d+", target="filename")
    assert matches(by_name, "anything", "FAC-2024-001.pdf")
    assert matches(by_name, "FAC-12 in the text", "scan.pdf") is None


def test_match_entries_returns_the_first_matching_rule_of_each_entry() -> None:
    invoice = entry_from(
        {"kind": "type", "name": "Facture", "rules": [{"algorithm": "any", "pattern": "facture"}]}
    )
    quote = entry_from(
        {"kind": "type", "name": "Devis", "rules": [{"algorithm": "any", "pattern": "devis"}]}
    )
    found = match_entries([quote, invoice], TEXT)
    assert [m.key for m in found] == ["facture"]


def test_entries_are_checked_with_a_clear_error() -> None:
    assert slug("Bon de commande") == "bon_de_commande"
    assert entry_from({"kind": "type", "name": "Bon de Commande"}).key == "bon_de_commande"
    cases = [
        ({"kind": "nope", "name": "x"}, "kind"),
        ({"kind": "type", "name": ""}, "name"),
        ({"kind": "type", "name": "x", "key": "Bad Key"}, "key"),
        ({"kind": "tag", "name": "x", "rules": [{"algorithm": "regex", "pattern": "("}]}, "rules"),
        ({"kind": "tag", "name": "x", "rules": [{"algorithm": "any", "pattern": " "}]}, "rules"),
        ({"kind": "field", "name": "Due", "field_kind": "colour"}, "field_kind"),
        ({"kind": "field", "name": "Total TTC", "key": "total_ttc", "field_kind": "amount"}, "key"),
        ({"kind": "tag", "name": "x", "identifiers": ["123"]}, "identifiers"),
        ({"kind": "tag", "name": "x", "collection": "c"}, "collection"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInput) as caught:
            entry_from(data)
        assert caught.value.field == field, data
