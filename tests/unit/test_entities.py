"""RuleBasedEntityExtractor, key normalisation and co-occurrence relations."""

from __future__ import annotations

import pytest

from textmodels.entities import (
    EntityExtractor,
    RuleBasedEntityExtractor,
    normalise_key,
)

pytestmark = pytest.mark.unit

extractor = RuleBasedEntityExtractor()


def keys(text: str, language: str = "fr") -> dict[str, str]:
    """key -> kind of every entity found."""
    return {entity.key: entity.kind for entity in extractor.extract(text, language)}


def test_it_is_an_entity_extractor_with_a_config() -> None:
    assert isinstance(extractor, EntityExtractor)
    assert extractor.to_dict() == {"name": "rule-based", "version": "1"}


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("La Caisse d'Allocations Familiales", "caisse d'allocations familiales"),
        ("caisse d\u2019allocations   familiales", "caisse d'allocations familiales"),
        ("L'Union Européenne", "union europeenne"),
        ("The Boeing Company", "boeing company"),
        ("Les Échos", "echos"),
    ],
)
def test_keys_merge_variants(variant: str, expected: str) -> None:
    assert normalise_key(variant) == expected


def test_french_letter() -> None:
    text = (
        "La Caisse d'Allocations Familiales (CAF) a versé 1 234,56 € le 3 mars 2024 à M. Dupont.\n"
        "Facture n° 12345 du 12/03/2024, référence INV-2024-0042. "
        "Contact : jean.dupont@caf.fr ou https://www.caf.fr/allocataires/.\n"
        "Mme Claire Martin habite 12 rue de la Paix à Paris."
    )

    found = keys(text, "fr")

    assert found == {
        "caisse d'allocations familiales": "org",
        "caf": "acronym",
        "amount:EUR:1234.56": "amount",
        "date:2024-03-03": "date",
        "dupont": "person",
        "ref:12345": "reference",
        "date:2024-03-12": "date",
        "ref:inv-2024-0042": "reference",
        "email:jean.dupont@caf.fr": "email",
        "url:caf.fr/allocataires": "url",
        "claire martin": "person",
        "rue de la paix": "place",
        "paris": "name",
    }


def test_english_letter() -> None:
    text = (
        "The Federal Aviation Administration (FAA) paid $1,200.00 on March 3, 2024 "
        "to Dr. Smith at Boeing Corporation. Invoice INV-2024-0042 is dated 2024-03-15; "
        "see www.faa.gov/regulations or write to help@faa.gov."
    )

    found = keys(text, "en")

    assert found == {
        "federal aviation administration": "org",
        "faa": "acronym",
        "amount:USD:1200": "amount",
        "date:2024-03-03": "date",
        "smith": "person",
        "boeing corporation": "org",
        "ref:inv-2024-0042": "reference",
        "date:2024-03-15": "date",
        "url:faa.gov/regulations": "url",
        "email:help@faa.gov": "email",
    }


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        ("le 2024-03-03", "fr", "date:2024-03-03"),
        ("le 03/04/2024", "fr", "date:2024-04-03"),
        ("on 03/04/2024", "en", "date:2024-03-04"),
        ("on 25/04/2024", "en", "date:2024-04-25"),
        ("le 1er février 2024", "fr", "date:2024-02-01"),
        ("le 3 aout 2024", "fr", "date:2024-08-03"),
        ("on Mar. 3rd, 2024", "en", "date:2024-03-03"),
        ("on 3 March 2024", "en", "date:2024-03-03"),
    ],
)
def test_dates_are_normalised(text: str, language: str, key: str) -> None:
    assert key in keys(text, language)


def test_impossible_dates_are_not_dates() -> None:
    assert not [key for key in keys("le 31/02/2024 et le 2024-13-01") if key.startswith("date:")]


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        ("soit 1 234,56 € au total", "fr", "amount:EUR:1234.56"),
        ("soit 1\u202f234,56\u00a0€ au total", "fr", "amount:EUR:1234.56"),
        ("a total of $1,200.00 paid", "en", "amount:USD:1200"),
        ("un montant de EUR 300 versé", "fr", "amount:EUR:300"),
        ("300 euros par mois", "fr", "amount:EUR:300"),
        ("1,500 € de frais", "fr", "amount:EUR:1.5"),
        ("USD 1,500 fee", "en", "amount:USD:1500"),
        ("1.234.567,89 EUR", "fr", "amount:EUR:1234567.89"),
        ("£5 each", "en", "amount:GBP:5"),
    ],
)
def test_amounts_are_normalised(text: str, language: str, key: str) -> None:
    assert key in keys(text, language)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("la facture FAC-2024-03-15 est due", "ref:fac-2024-03-15"),
        ("contrat n° AB-77/2024", "ref:ab-77/2024"),
        ("invoice number: 998877", "ref:998877"),
        ("dossier numéro 2020-386", "ref:2020-386"),
    ],
)
def test_references(text: str, key: str) -> None:
    assert key in keys(text)


def test_short_numbers_after_no_are_not_references() -> None:
    assert keys("Nuts range from No. 6 up to No. 8.", "en") == {}


def test_sentence_starts_and_shouted_headings_are_not_names() -> None:
    text = "Pour obtenir l'aide, contactez France Travail.\nIMPORTANT NOTICE\nDepuis 2023, rien."

    assert keys(text) == {"france travail": "name"}


def test_acronyms_exclude_roman_numerals_and_long_words() -> None:
    found = keys("Le chapitre III de la loi voit la CPAM et l'URSSAF ; ATTENTION aux délais.")

    assert found == {"cpam": "acronym", "urssaf": "acronym"}


def test_each_key_once_in_order_of_first_mention() -> None:
    text = "La CAF paie. Puis la Caisse paie encore. La CAF répond."

    entities = extractor.extract(text, "fr")

    assert [entity.key for entity in entities] == ["caf"]


def test_odd_text_gives_no_entities() -> None:
    assert extractor.extract("", "fr") == []
    assert extractor.extract("$$$ €€€ n° -- // @@", "und") == []
