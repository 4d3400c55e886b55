"""Field extraction (sorting.fields): checksums, totals that add up, date and amount formats in
French and English, parties, periods, and the typed filters read from query parameters."""

from __future__ import annotations

import pytest

from core.domain import FieldCondition
from core.errors import InvalidInput
from sorting import fields as fld

pytestmark = pytest.mark.unit


# -- checksums -------------------------------------------------------------------------------


def test_iban_is_kept_only_when_its_mod_97_digits_hold() -> None:
    good = "FR76 2802 3419 4529 4523 9381 602"
    assert fld.valid_iban(good.replace(" ", ""))
    assert [f.value for f in fld.find_ibans(f"IBAN : {good} - BIC")] == [good.replace(" ", "")]
    one_digit_off = good.replace("9381", "9382")
    assert not fld.valid_iban(one_digit_off.replace(" ", ""))
    assert fld.find_ibans(f"IBAN : {one_digit_off}") == []  # an OCR misread is dropped


def test_siret_siren_by_luhn_and_vat_by_its_key() -> None:
    assert fld.valid_siret("27486382806610") and fld.valid_siren("274863828")
    assert not fld.valid_siret("27486382806611")
    assert [f.value for f in fld.find_sirets("SIRET : 27486382806610 / 27486382806611")] == [
        "27486382806610"
    ]
    assert [f.value for f in fld.find_sirens("RCS Bordeaux 274 863 828 -")] == ["274863828"]
    # VAT = FR + (12 + 3 x (SIREN mod 97)) mod 97 + SIREN
    assert [f.value for f in fld.find_vats("TVA : FR25274863828, FR26274863828")] == [
        "FR25274863828"
    ]


# -- dates and amounts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("le 12 mars 2024", "2024-03-12"),
        ("le 1er mars 2024", "2024-03-01"),
        ("12/03/2024", "2024-03-12"),
        ("12.03.2024", "2024-03-12"),
        ("le 3 février 2025", "2025-02-03"),
        ("12 March 2024", "2024-03-12"),
        ("March 12, 2024", "2024-03-12"),
        ("on 2nd January 2023", "2023-01-02"),
        ("2024-03-12", "2024-03-12"),
    ],
)
def test_dates_in_french_and_english_formats(text: str, iso: str) -> None:
    assert [d.value for d in fld.find_dates(text)] == [iso]


def test_impossible_dates_are_not_dates() -> None:
    assert fld.find_dates("31/02/2024 and 45/12/2024") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 234,56 €", 1234.56),
        ("1\u00a0234,56 €", 1234.56),  # no-break space
        ("1\u202f234,56 €", 1234.56),  # narrow no-break space
        ("12 345 678,90 EUR", 12345678.9),
        ("€1,234.56", 1234.56),
        ("EUR 1,234.56", 1234.56),
        ("1,234.56 EUR", 1234.56),
        ("0,55 €", 0.55),
    ],
)
def test_amounts_in_french_and_english_formats(text: str, value: float) -> None:
    found = fld.find_amounts(fld.normalise(text))
    assert [a.value for a in found] == [value]
    assert fld.parse_amount(text) == value


def test_rates_dates_and_quantities_are_not_amounts() -> None:
    text = fld.normalise("12 Nettoyage 32,70 € 20 % 392,40 € le 12.03.2024 TVA 5,5 %")
    assert [a.value for a in fld.find_amounts(text)] == [32.7, 392.4]


# -- totals ----------------------------------------------------------------------------------


def test_totals_pick_the_triple_that_adds_up_with_several_vat_lines() -> None:
    # The layout of a parsed table: labels on one line, values on the next.
    text = (
        "12 Nettoyage 32,70 € 20 % 392,40 €\n"
        "Total HT Total TVA 20 % Total TVA 10 % Total TVA 5,5 % TOTAL TTC\n"
        "5 455,92 € 1 074,56 € 5,80 € 1,38 € 6 537,66 €\n"
        "Indemnité forfaitaire : 40,00 €"
    )
    assert fld.totals(fld.normalise(text)) == {
        "total_ht": 5455.92,
        "tva": 1081.74,
        "total_ttc": 6537.66,
    }


def test_totals_in_english_and_a_line_that_does_not_add_up_is_not_a_total() -> None:
    text = "Subtotal €1,000.00\nVAT (20%) €200.00\nTotal due €1,200.00\nDeposit €300.00"
    assert fld.totals(text) == {"total_ht": 1000.0, "tva": 200.0, "total_ttc": 1200.0}
    wrong = "Total HT 100,00 €\nTVA 20 % 30,00 €\nTotal TTC 125,00 €"
    assert fld.totals(wrong) == {"total_ttc": 125.0}  # nothing adds up: the TTC alone


def test_the_grand_total_wins_over_line_items_that_also_add_up() -> None:
    text = fld.normalise(
        "Date Nature HT TVA TTC\n06/02 Train 70,90 € 7,09 € 77,99 €\n"
        "10/02 Hôtel 98,63 € 9,86 € 108,49 €\nTotal 169,53 € 16,95 € 186,48 €"
    )
    assert fld.totals(text) == {"total_ht": 169.53, "tva": 16.95, "total_ttc": 186.48}


# -- a whole document ------------------------------------------------------------------------

INVOICE = """Conseil Perez EURL 6, rue Valette 38000 Grenoble SIRET : 27486382806610 TVA : FR25274863828
FACTURE N° 2024/0978
Date : 29/05/2024 Date d'échéance : 28/07/2024
Client M. Augustin Pineau 86, rue de Vallée 38000 Grenoble
Total HT 5 455,92 €
Total TVA 20 % 1 074,56 €
Total TVA 10 % 5,80 €
Total TVA 5,5 % 1,38 €
TOTAL TTC 6 537,66 €
Règlement par virement - IBAN : FR76 2802 3419 4529 4523 9381 602 - BIC : BPFEFRPPXXX
Conseil Perez EURL - EURL au capital de 5 000 € - RCS Bordeaux 274 863 828 - SIRET 27486382806610"""


def test_an_invoice_yields_every_field() -> None:
    got = fld.extract(INVOICE, "invoice")
    assert got["date"] == "2024-05-29"  # not the due date
    assert got["reference"] == "2024/0978"
    assert (got["total_ht"], got["tva"], got["total_ttc"]) == (5455.92, 1081.74, 6537.66)
    assert got["currency"] == "EUR"
    assert got["iban"] == "FR7628023419452945239381602"
    assert got["issuer"] == {
        "name": "Conseil Perez EURL",
        "siret": "27486382806610",
        "vat": "FR25274863828",
    }
    assert got["recipient"]["name"] == "Augustin Pineau"  # however addressed
    assert "period" not in got


def test_periods_from_ranges_months_and_durations() -> None:
    assert fld.period("Période du 01/09/2025 au 30/09/2025") == {
        "start": "2025-09-01",
        "end": "2025-09-30",
    }
    assert fld.period("Statement period: 1 June 2023 to 30 June 2023") == {
        "start": "2023-06-01",
        "end": "2023-06-30",
    }
    assert fld.period("Mois : février 2024") == {"start": "2024-02-01", "end": "2024-02-29"}
    lease = "Le bail est conclu pour une durée de un an à compter du 1er février 2023."
    assert fld.period(lease) == {"start": "2023-02-01", "end": "2024-01-31"}
    assert fld.period("employé depuis le 11 décembre 2013") == {"start": "2013-12-11", "end": None}


def test_a_signed_document_is_dated_by_its_signature_not_its_other_dates() -> None:
    text = (
        "Le contrat prend effet le 01/03/2023.\nFait à Dijon, le 27/02/2023, en deux exemplaires."
    )
    assert fld.document_date(text) == "2023-02-27"
    assert fld.document_date("Paiement le 05/10/2025 par virement") == "2025-10-05"
    assert fld.document_date("no date at all") is None


def test_a_letter_claims_a_sum_and_a_lease_adds_rent_and_charges() -> None:
    letter = "Nous vous mettons en demeure de régler la somme de 4 504,11 € sous huit jours."
    assert fld.extract(letter, "letter")["total_ttc"] == 4504.11
    lease = "Le loyer mensuel est fixé à 1 089,00 €, auquel s'ajoute une provision sur charges de 71,00 €."
    assert fld.extract(lease, "contract")["total_ttc"] == 1160.0


# -- typed rows and filters ------------------------------------------------------------------


def test_fields_flatten_into_typed_rows_and_filters_parse_against_them() -> None:
    got = fld.extract(INVOICE, "invoice")
    rows = {r.key: r for r in fld.flatten(got, fld.BUILTIN_FIELDS)}
    assert rows["total_ttc"].num == 6537.66
    assert rows["date"].text == "2024-05-29" and rows["date"].num == fld.epoch("2024-05-29")
    assert rows["issuer.siret"].text == "27486382806610"
    payload = fld.payload_fields(rows.values())
    assert payload["total_ttc"] == 6537.66 and payload["issuer.name"] == "Conseil Perez EURL"
    conds = fld.parse_conditions(
        {"total_ttc_gte": "100", "date_lt": "2024-06-01", "reference": "2024/0978"},
        fld.BUILTIN_FIELDS,
    )
    assert conds == (
        FieldCondition("total_ttc", "gte", 100.0),
        FieldCondition("date", "lt", fld.epoch("2024-06-01")),
        FieldCondition("reference", "eq", "2024/0978"),
    )
    assert fld.parse_conditions({"period.start_gte": "2024-01-01"}, fld.BUILTIN_FIELDS)[0].key == (
        "period.start"
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"total_ttc_gte": "lots"}, "field.total_ttc_gte"),
        ({"date_lt": "31/12/2024"}, "field.date_lt"),
        ({"reference_gt": "A"}, "field.reference_gt"),
        ({"nope": "1"}, "field.nope"),
        ({"period_gte": "2024-01-01"}, "field.period_gte"),
    ],
)
def test_bad_filters_name_the_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        fld.parse_conditions(params, fld.BUILTIN_FIELDS)
    assert caught.value.field == field
