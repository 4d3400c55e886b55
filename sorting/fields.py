"""Typed fields read from a document's text (its OCR'd text included), French and English.

What is read: the document date, issuer and recipient (name, SIRET, VAT number), the reference
(invoice, quote, order, contract, policy, account number...), totals HT / TVA / TTC, the
currency, the IBAN and the period the document covers. Every identifier is checked before it is
kept: an IBAN by its ISO 13616 mod-97 digits, a SIRET / SIREN by Luhn, a French VAT number by
its key (python-stdnum), so an OCR misread is dropped rather than stored. Totals are kept only as
a consistent triple: of the labelled candidates, the one where TTC = HT + TVA within a cent
(several VAT lines summed); a TTC alone is kept when nothing adds up.

Formats (``ged_docs`` conventions, common in French and English business documents): dates
"12 mars 2024", "1er mars 2024", "12/03/2024", "12.03.2024", "12 March 2024", "March 12, 2024",
ISO; amounts "1 234,56 €" (space, U+00A0 or U+202F between thousands), "1 234,56 EUR",
"€1,234.56", "EUR 1,234.56", "1,234.56 EUR". Numeric dates are read day first.

Values are JSON-ready: dates ISO strings, amounts floats, a period ``{"start", "end"}``, a party
``{"name", "siret", "vat"}``. :func:`flatten` turns them into the typed rows the catalog and the
vector payload filter on (``issuer.name``, ``period.start``, ``total_ttc``...), and
:func:`parse_conditions` reads filters such as ``total_ttc_gte=100`` against those types.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from stdnum import iban as std_iban
from stdnum.fr import siren as std_siren
from stdnum.fr import siret as std_siret
from stdnum.fr import tva as std_tva

from core.domain import FieldCondition
from core.errors import InvalidInput

FieldKind = Literal["date", "amount", "currency", "reference", "iban", "period", "party", "text"]

# The fields gedrag reads itself; a tenant's custom fields add to these (sorting.vocabulary).
BUILTIN_FIELDS: dict[str, FieldKind] = {
    "date": "date",
    "issuer": "party",
    "recipient": "party",
    "reference": "reference",
    "total_ht": "amount",
    "tva": "amount",
    "total_ttc": "amount",
    "currency": "currency",
    "iban": "iban",
    "period": "period",
}
# A cent: HT + TVA = TTC is checked to this (amounts are rounded to the cent per rate).
CENT = 0.011

_SPACES = re.compile(r"[ \t\u00a0\u202f\u2007\u2009]+")
_MONTHS_FR = {
    "janvier": 1,
    "fevrier": 2,
    "mars": 3,
    "avril": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "aout": 8,
    "septembre": 9,
    "octobre": 10,
    "novembre": 11,
    "decembre": 12,
}
_MONTHS_EN = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS = {**_MONTHS_FR, **_MONTHS_EN}
_MONTH_WORD = r"(janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[uû]t|septembre|octobre|novembre|d[ée]cembre|January|February|March|April|May|June|July|August|September|October|November|December)"  # noqa: E501
_DATE_PATTERNS = (
    # 12/03/2024, 12.03.2024, 12-03-2024 (day first)
    re.compile(r"(?<![\d/.])(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?![\d/])"),
    # 2024-03-12
    re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])"),
    # 12 mars 2024, 1er mars 2024, 12 March 2024, 12th March 2024
    re.compile(rf"(?<!\d)(1er|\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH_WORD}\s+(\d{{4}})\b", re.I),
    # March 12, 2024
    re.compile(rf"\b{_MONTH_WORD}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I),
)
_MONTH_YEAR = re.compile(rf"\b{_MONTH_WORD}\s+(\d{{4}})\b", re.I)

# Amounts: French (decimal comma, space-separated thousands) and English (decimal point,
# comma-separated thousands), two decimals; a date "12.03.2024" is not an amount.
_FR_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,3}(?: \d{3})+|\d+),(\d{2})(?![\d]|[.,]\d)")
_EN_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)\.(\d{2})(?![\d]|[.,]\d)")
_PERCENT_AFTER = re.compile(r"\s*%")

_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_SIRET = re.compile(r"(?<!\d)(\d{3} ?\d{3} ?\d{3} ?\d{5})(?!\d)")
_SIREN = re.compile(r"(?<!\d)(\d{3} ?\d{3} ?\d{3})(?![\d ]*\d)")
_VAT = re.compile(r"\b(FR ?[0-9A-Z]{2} ?\d{3} ?\d{3} ?\d{3})\b")

_REFERENCE_LABEL = re.compile(
    r"(?:\b(?:facture|devis|bon de commande|commande|contrat|avoir|invoice|quote|quotation|"
    r"order|purchase order|agreement|contract|policy|police|dossier|account|compte(?: courant)?)"
    r"\s*(?:n[°o]\.?|no\.?|num[ée]ro|number|#)|\bn[°o]\.?|\bR[ée]f(?:[ée]rence)?\.?|"
    r"\bOur ref\.?|\bYour ref\.?|\bref(?:erence)?\.?|\bMatricule|\bEmployee (?:id|no\.?|number)|"
    r"\bAccount (?:no\.?|number))"
    r"\s*[:.]?\s*",
    re.I,
)
_REFERENCE_VALUE = re.compile(r"([A-Z0-9][A-Z0-9/\-_.]*\d[A-Z0-9/\-_]*|\d[\d ]{4,}\d)", re.I)

_TTC_LABEL = re.compile(
    r"\b(?:total|montant(?:\s+total)?)\s*(?:\(\s*)?(?:ttc|toutes\s+taxes)\b|\bnet\s+[àa]\s+payer\b|"
    r"\btotal\s+[àa]\s+payer\b|\btotal\s*\(?(?:incl\.?|including)\s+(?:vat|tax\w*)\)?|"
    r"\btotal\s+(?:due|amount|to\s+pay|payable)\b|\bamount\s+(?:due|payable)\b|\bgrand\s+total\b",
    re.I,
)
_HT_WORD = re.compile(r"\bH\.?T\b|hors\s+tax|\bexcl\.?\b|excluding|sub-?total|before\s+tax", re.I)
_TVA_WORD = re.compile(r"\bTVA\b|\bVAT\b", re.I)
_CLAIM_LABEL = re.compile(
    r"\b(?:la\s+somme\s+de|somme\s+de|montant\s+de|d'un\s+montant\s+de|the\s+sum\s+of|"
    r"the\s+amount\s+of|an\s+amount\s+of|amount\s+outstanding|reste\s+d[ûu]|"
    r"solde\s+d[ûu]|outstanding\s+balance)\b",
    re.I,
)
_RENT = re.compile(r"\b(?:loyer(?:\s+mensuel)?|monthly\s+rent|rent)\b", re.I)
_CHARGES = re.compile(r"\b(?:charges|provision\s+sur\s+charges|service\s+charges?)\b", re.I)

_DATE_LABEL = re.compile(
    r"(?:\b(?:date(?:\s+(?:de\s+(?:la\s+)?)?(?:facture|facturation|commande|devis|[ée]mission|"
    r"du\s+devis|de\s+la\s+commande))?|invoice\s+date|order\s+date|quote\s+date|"
    r"date\s+of\s+issue|issue\s+date|dated?)\s*[:.]?\s*)",
    re.I,
)
_NOT_DOC_DATE = re.compile(
    r"(?:[ée]ch[ée]ance|due|livraison|delivery|entr[ée]e|naissance|birth|start|d[ée]but|fin|"
    r"end|expir|valid|effet|effective)\W*$",
    re.I,
)
_SIGNED = re.compile(
    r"(?:\bfait\s+[àa]\s+[^\n,]{1,40},?\s+le\s+|\b[A-ZÉ][\w\-' ]{1,40},\s+le\s+|"
    r"(?m:^)\s*le\s+|\bissued\s+(?:in\s+[^\n,]{1,40}\s+)?on\s+|\bsigned\s+(?:[^\n]{0,40}\s)?on\s+|"
    r"\bdone\s+(?:at|in)\s+[^\n,]{1,40},?\s+on\s+|\bpaiement\s+le\s+|\bpayment\s+(?:on|date)\s*:?\s*|"
    r"\bpaid\s+on\s+|\b(?:d[ée]livr[ée]e?|[ée]tabli[e]?)\s+le\s+)",
    re.I,
)
_PERIOD = re.compile(
    r"(?:\bp[ée]riode\s*(?:du|:)?\s*(?:du\s+)?|\bdu\s+|\bfrom\s+|\bperiod\s*:?\s*(?:from\s+)?|"
    r"\bstatement\s+period\s*:?\s*(?:from\s+)?|\bin\s+force\s+from\s+|\bvalable\s+du\s+|"
    r"\bcouverture\s+du\s+)",
    re.I,
)
_PERIOD_TO = re.compile(r"\s*(?:au|to|until|jusqu'au|-|–)\s*", re.I)
_MONTH_LABEL = re.compile(r"\b(?:mois|month|p[ée]riode|period)\s*:?\s*", re.I)
_SINCE = re.compile(
    r"\b(?:depuis\s+le|since|[àa]\s+compter\s+du|from|commencing\s+on|starting\s+on|"
    r"date\s+d'entr[ée]e\s*:?|entr[ée]e\s+le|as\s+from|effective\s+(?:from|on)|prend\s+effet\s+le|"
    r"employed\s+since|a\s+d[ée]but[ée]\s+le)\s*",
    re.I,
)
_DURATION = re.compile(
    r"\b(?:dur[ée]e\s+de|pour\s+une\s+dur[ée]e\s+de|for\s+a\s+(?:term|period)\s+of)\s+"
    r"(?:(\d+)|([a-zéèêû\-]+))\s*(?:\(\d+\)\s*)?(mois|ans?|ann[ée]es?|months?|years?)\b",
    re.I,
)
_NUMBER_WORDS = {
    "un": 1, "une": 1, "one": 1, "deux": 2, "two": 2, "trois": 3, "three": 3, "quatre": 4,
    "four": 4, "cinq": 5, "five": 5, "six": 6, "sept": 7, "seven": 7, "huit": 8, "eight": 8,
    "neuf": 9, "nine": 9, "dix": 10, "ten": 10, "onze": 11, "eleven": 11, "douze": 12,
    "twelve": 12, "dix-huit": 18, "eighteen": 18, "vingt-quatre": 24, "twenty-four": 24,
    "trente-six": 36, "thirty-six": 36,
}  # fmt: skip

# Parties: legal forms that end a company name, labels that introduce a party.
_LEGAL_FORM = r"(?:SARL|SASU|SAS|EURL|SA|SNC|SCI|SCP|SELARL|Ltd|Limited|LLP|PLC|Inc|GmbH)"
_ADDRESS_START = re.compile(
    r"\s(?:\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|chemin|place|all[ée]e|"
    r"impasse|quai|route|cours|square|esplanade|passage)\b|\d{1,4}\s+[A-Z][a-z]+\s+(?:Street|Road|"
    r"Lane|Avenue|Square|Forges|Lakes|Court|Place|Gardens|Way|Drive|Close|Hill|Park|Row)\b|"
    r"\d{5}\s|demeurant|residing|domicili[ée]|dont le si[èe]ge|with registered office|"
    r"SIRET|TVA|VAT)",
)
_HONORIFIC = r"(?:M\.|Mme|Mlle|Monsieur|Madame|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?)"
_PERSON = re.compile(
    rf"(?:{_HONORIFIC}\s+)?[A-ZÀ-Ý][a-zà-ÿ'’\-]+(?:\s+(?:(?:de|du|des|de\s+la|le|la|van|von|da|"
    rf"dos|del)\s+|d[e]?\s?l?['’]|d['’])?[A-ZÀ-Ý][a-zà-ÿ'’\-]+){{1,3}}"
)


@dataclass(frozen=True)
class Found:
    """A value found in the text, with where it starts (the earliest wins ties)."""

    value: Any
    start: int
    end: int


def normalise(text: str) -> str:
    """No-break and thin spaces as spaces, runs of spaces collapsed, lines kept."""
    text = unicodedata.normalize("NFC", text).replace("\r", "")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# -- checks ----------------------------------------------------------------------------------


def valid_iban(value: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check digits."""
    return bool(std_iban.is_valid(value))


def valid_siret(value: str) -> bool:
    """14 digits, Luhn (La Poste's SIRET, with their own rule, pass too)."""
    return bool(std_siret.is_valid(value))


def valid_siren(value: str) -> bool:
    return bool(std_siren.is_valid(value))


def valid_vat(value: str) -> bool:
    """A French VAT number: ``FR`` + key + SIREN, the key matching the SIREN."""
    return bool(std_tva.is_valid(value))


# -- low-level finders -----------------------------------------------------------------------


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_dates(text: str) -> list[Found]:
    """Every date of ``text`` (ISO strings), in order of appearance."""
    found: list[Found] = []
    taken: list[tuple[int, int]] = []
    for i, pattern in enumerate(_DATE_PATTERNS):
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            g = m.groups()
            d: date | None
            if i == 0:
                d = _safe_date(int(g[2]), int(g[1]), int(g[0]))
            elif i == 1:
                d = _safe_date(int(g[0]), int(g[1]), int(g[2]))
            elif i == 2:
                day = 1 if g[0].lower() == "1er" else int(g[0])
                d = _safe_date(int(g[2]), _MONTHS[_fold(g[1])], day)
            else:
                d = _safe_date(int(g[2]), _MONTHS[_fold(g[0])], int(g[1]))
            if d is not None and 1900 <= d.year <= 2200:
                found.append(Found(d.isoformat(), m.start(), m.end()))
                taken.append((m.start(), m.end()))
    return sorted(found, key=lambda f: f.start)


def parse_amount(raw: str) -> float | None:
    """``"1 234,56"``, ``"1,234.56"``, ``"€1,234.56"``, ``"12,50 EUR"`` → a float; ``None``
    for anything else."""
    text = normalise(raw).replace("€", "").replace("EUR", "").strip()
    for pattern, thousands in ((_FR_AMOUNT, " "), (_EN_AMOUNT, ",")):
        m = pattern.fullmatch(text)
        if m:
            return round(float(m.group(1).replace(thousands, "") + "." + m.group(2)), 2)
    return None


def find_amounts(text: str) -> list[Found]:
    """Every amount with two decimals, French and English formats, not a percentage."""
    found: list[Found] = []
    for pattern, thousands in ((_FR_AMOUNT, " "), (_EN_AMOUNT, ",")):
        for m in pattern.finditer(text):
            if _PERCENT_AFTER.match(text, m.end()):
                continue
            value = round(float(m.group(1).replace(thousands, "") + "." + m.group(2)), 2)
            found.append(Found(value, m.start(), m.end()))
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    out: list[Found] = []
    for f in found:  # overlapping readings: the longer, earlier one
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def find_ibans(text: str) -> list[Found]:
    out = []
    for m in _IBAN.finditer(text):
        value = m.group(1).replace(" ", "")
        if valid_iban(value):
            out.append(Found(value, m.start(), m.end()))
    return out


def find_sirets(text: str) -> list[Found]:
    out = []
    for m in _SIRET.finditer(text):
        value = m.group(1).replace(" ", "")
        if valid_siret(value):
            out.append(Found(value, m.start(), m.end()))
    return out


def find_vats(text: str) -> list[Found]:
    out = []
    for m in _VAT.finditer(text):
        value = m.group(1).replace(" ", "")
        if valid_vat(value):
            out.append(Found(value, m.start(), m.end()))
    return out


def find_sirens(text: str) -> list[Found]:
    """SIREN numbers printed alone (``RCS Lyon 274 863 828``), not the start of a SIRET."""
    out = []
    for m in _SIREN.finditer(text):
        value = m.group(1).replace(" ", "")
        if valid_siren(value):
            out.append(Found(value, m.start(), m.end()))
    return out


# -- the document's fields -------------------------------------------------------------------


def _after(text: str, label: re.Pattern[str], finder: list[Found], window: int) -> list[Found]:
    """For each match of ``label``, the first found value starting within ``window`` chars."""
    out: list[Found] = []
    for m in label.finditer(text):
        for f in finder:
            if m.end() <= f.start <= m.end() + window:
                out.append(f)
                break
    return out


def _values_after(
    text: str, label: re.Pattern[str], amounts: list[Found], window: int = 40
) -> list[tuple[int, list[Found]]]:
    """For each label: the amounts that follow it before the next line's label, at most 3."""
    out = []
    for m in label.finditer(text):
        after = [a for a in amounts if m.end() <= a.start <= m.end() + window]
        if after:
            out.append((m.start(), after[:3]))
    return out


def totals(text: str) -> dict[str, float]:
    """``total_ht``, ``tva`` and ``total_ttc`` that add up (within a cent); the TTC alone when no
    triple does; nothing when the text names no total.

    Parsed tables often lose their layout (labels on one line, values on the next, a column
    moved after the others), so labels are not trusted to sit beside their values. Instead,
    when the text speaks of HT and of VAT, every triple ``HT + TVA = TTC`` among its amounts is
    a candidate, the VAT being one amount or a run of up to four consecutive ones (one line per
    rate), at most 25 % of HT (the highest French rate is 20 %); the largest TTC wins (line
    items add up too, the grand total is the largest)."""
    amounts = find_amounts(text)
    if not amounts:
        return {}
    has_ht, has_tva = _HT_WORD.search(text), _TVA_WORD.search(text)
    if has_ht and has_tva:
        values = [a.value for a in amounts]
        present = set(values)
        vats: set[float] = set()
        for i in range(len(values)):
            run = 0.0
            for j in range(i, min(i + 4, len(values))):
                run = round(run + values[j], 2)
                vats.add(run)
        best: tuple[float, float, float] | None = None
        for h in present:
            for v in vats:
                if not 0 < v <= h * 0.25 + CENT:
                    continue
                t = round(h + v, 2)
                hit = next(
                    (x for x in (t, round(t - 0.01, 2), round(t + 0.01, 2)) if x in present), None
                )
                if hit is not None and (best is None or hit > best[2]):
                    best = (h, round(hit - h, 2), hit)
        if best is not None:
            return {"total_ht": best[0], "tva": best[1], "total_ttc": best[2]}
    ttc = [a.value for _, found in _values_after(text, _TTC_LABEL, amounts) for a in found[:1]]
    if ttc:
        return {"total_ttc": ttc[-1]}
    ht = [
        a.value
        for a in amounts
        if re.match(r"\s*(?:€|EUR)?\s*(?:hors\s+tax\w*|HT\b|excl\.?\s+VAT)", text[a.end :], re.I)
    ]
    if ht:
        return {"total_ht": ht[0]}
    return {}


def claimed_amount(text: str) -> float | None:
    """The sum a letter claims or announces (``la somme de 223,09 €``, ``the sum of €1,200.00``)."""
    amounts = find_amounts(text)
    found = _after(text, _CLAIM_LABEL, amounts, 25)
    return found[0].value if found else None


def rent_total(text: str) -> float | None:
    """A lease's monthly rent plus its charges."""
    amounts = find_amounts(text)
    rent = _after(text, _RENT, amounts, 60)
    charges = _after(text, _CHARGES, amounts, 60)
    if rent:
        extra = next((float(c.value) for c in charges if c.start != rent[0].start), 0.0)
        return round(float(rent[0].value) + extra, 2)
    return None


def document_date(text: str, dates: list[Found] | None = None) -> str | None:
    """The date the document bears: labelled (``Date :``, ``Invoice date``), signed or issued
    (``Fait à Lyon, le ...``, ``Issued on``, ``Paiement le``), else a date alone on its line.
    Due, delivery, entry and birth dates are not the document's."""
    dates = find_dates(text) if dates is None else dates
    if not dates:
        return None
    starts = {d.start: d for d in dates}
    for m in _DATE_LABEL.finditer(text):
        before = text[max(0, m.start() - 25) : m.end()]
        d = _first_at(starts, m.end(), 2, text)
        if d is not None and not _NOT_DOC_DATE.search(before):
            return str(d.value)
    column = _date_column(text, dates)
    if column is not None:
        return column
    signed = [
        d for m in _SIGNED.finditer(text) if (d := _first_at(starts, m.end(), 3, text)) is not None
    ]
    if signed:
        return str(signed[-1].value)
    covered = period(text, dates)
    if covered is not None and covered.get("end"):
        # A statement, a payslip or an expense report is dated by the end of what it covers.
        return covered["end"]
    for d in dates:
        line_start = text.rfind("\n", 0, d.start) + 1
        line_end = text.find("\n", d.end)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        if len(line.strip()) <= len(text[d.start : d.end]) + 2:
            return str(d.value)
    return None


_HEADER_DATE = re.compile(
    r"\b(?:date\s+d['’]\w+|date\s+de\s+livraison(?:\s+souhait[ée]e)?|due\s+date|"
    r"delivery\s+date|start\s+date|end\s+date|date(?:\s+de\s+(?:la\s+)?(?:facture|commande|"
    r"devis))?)\b",
    re.I,
)


def _date_column(text: str, dates: list[Found]) -> str | None:
    """A table's header row naming several date columns (``N° Date Date d'échéance Client``)
    over a row of values: the date under the plain ``Date`` column (a parsed table loses the
    alignment, not the order)."""
    lines = text.split("\n")
    offset = 0
    for i, line in enumerate(lines[:-1]):
        offset += len(line) + 1
        headers = [m.group(0).lower() for m in _HEADER_DATE.finditer(line)]
        if not headers or find_dates(line):
            continue
        wanted = next(
            (
                k
                for k, h in enumerate(headers)
                if not re.search(r"d['’]|livraison|due|delivery|start|end", h)
            ),
            None,
        )
        below = [d for d in dates if offset <= d.start < offset + len(lines[i + 1])]
        # Two date columns at least: one "Date" alone heads line items, not the document.
        if wanted is not None and len(headers) >= 2 and len(below) == len(headers):
            return str(below[wanted].value)
    return None


def _first_at(starts: Mapping[int, Found], pos: int, window: int, text: str) -> Found | None:
    for offset in range(window + 1):
        if pos + offset in starts:
            return starts[pos + offset]
        if pos + offset < len(text) and text[pos + offset] == "\n" and offset > 2:
            continue
    return None


def _month_range(month: int, year: int) -> dict[str, str | None]:
    last = calendar.monthrange(year, month)[1]
    return {"start": date(year, month, 1).isoformat(), "end": date(year, month, last).isoformat()}


def _add_months(d: date, months: int) -> date:
    month = d.month - 1 + months
    year = d.year + month // 12
    month = month % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def period(text: str, dates: list[Found] | None = None) -> dict[str, str | None] | None:
    """The period covered: ``du X au Y`` / ``from X to Y``, a month (``Mois : janvier 2024``),
    or a start (``depuis le``, ``à compter du``) with a duration when one is stated."""
    dates = find_dates(text) if dates is None else dates
    starts = {d.start: d for d in dates}
    for m in _PERIOD.finditer(text):
        first = _first_at(starts, m.end(), 2, text)
        if first is None:
            continue
        to = _PERIOD_TO.match(text, first.end)
        second = _first_at(starts, to.end(), 2, text) if to else None
        if second is not None and second.value >= first.value:
            return {"start": str(first.value), "end": str(second.value)}
    for m in _MONTH_LABEL.finditer(text):
        my = _MONTH_YEAR.match(text, m.end())
        if my:
            return _month_range(_MONTHS[_fold(my.group(1))], int(my.group(2)))
    for m in _SINCE.finditer(text):
        first = _first_at(starts, m.end(), 2, text)
        if first is None:
            continue
        end: str | None = None
        duration = _DURATION.search(text, max(0, m.start() - 200), m.end() + 200)
        if duration:
            n = (
                int(duration.group(1))
                if duration.group(1)
                else _NUMBER_WORDS.get(_fold(duration.group(2) or ""), 0)
            )
            unit = _fold(duration.group(3))
            months = n * (12 if unit.startswith(("an", "year")) else 1)
            if months:
                start = date.fromisoformat(str(first.value))
                end = date.fromordinal(_add_months(start, months).toordinal() - 1).isoformat()
        return {"start": str(first.value), "end": end}
    return None


def reference(text: str) -> str | None:
    """The document's number: after ``Facture n°``, ``N° :``, ``Réf. :``, ``Invoice No.``,
    ``Policy No.``, ``Compte n°``, ``Matricule`` ..."""
    for m in _REFERENCE_LABEL.finditer(text):
        v = _REFERENCE_VALUE.match(text, m.end())
        if v is None:
            continue
        value = v.group(1).strip(" .-/")
        if find_dates(value) or len(value) < 3:
            continue
        return value
    return None


_HONORIFIC_START = re.compile(rf"^{_HONORIFIC}\s+")
_LABEL_START = re.compile(
    r"^(?:client|customer|bill\s+to|factur[ée]\s+[àa]|fournisseur|supplier|employeur|employer|"
    r"salari[ée]|employee|"
    r"destinataire|[àa]\s+l'attention\s+de|for\s+the\s+attention\s+of|titulaire|"
    r"account\s+holder)\s*:?\s*",
    re.I,
)
_FORM_WORD = re.compile(rf"\s{_LEGAL_FORM}\b")
_NEXT_LABEL = re.compile(r"\s(?=[A-ZÀ-Ý][\w'’]{1,30}\s?:\s)")
_ADDRESS_LINE = re.compile(
    r"^\d{1,4}(?:\s?(?:bis|ter))?,?\s+\w|^\d{5}\s|^[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b"
)
_UNDERSIGNED = re.compile(
    r"\b(?:je\s+soussign[ée](?:\(e\))?|I,?\s+the\s+undersigned)\s+(?:Madame\s+|Monsieur\s+)?",
    re.I,
)
_HOSTS = re.compile(
    r"\bh[ée]berger\s+(?:[àa]\s+mon\s+domicile\s+)?|\bhosts?\s+(?:at\s+my\s+home\s+)?", re.I
)
_TITLE_LINE = re.compile(r"^[^a-z]*$")


def strip_honorific(name: str) -> str:
    """``"M. Augustin Pineau"`` → ``"Augustin Pineau"``: the person, however addressed."""
    return _HONORIFIC_START.sub("", name.strip())


def _party_name(block: str) -> str | None:
    """The name at the start of a party block: a company up to its legal form, else up to its
    address, identifier or legal mention; ``None`` for a title or a sentence."""
    block = _LABEL_START.sub("", block.strip(" :,-"))
    if not block:
        return None
    block = _NEXT_LABEL.split(block, maxsplit=1)[0]
    form = _FORM_WORD.search(block)
    person = _PERSON.match(strip_honorific(block))
    if form and form.start() <= 70:
        name = block[: form.end()]
    elif (cut := _ADDRESS_START.search(" " + block)) and cut.start() > 1:
        name = block[: cut.start() - 1]
    elif person:
        name = person.group(0)
    else:
        name = block.split("\n")[0]
    name = name.split("\n")[0].strip(" ,:-")
    name = re.split(r",\s|\s-\s|\s\|\s|\s\(", name)[0].strip()
    name = strip_honorific(name)
    if not 2 <= len(name) <= 100 or not re.search(r"[A-Za-zÀ-ÿ]", name):
        return None
    if len(name.split()) > 7 or not name[0].isupper():
        return None
    return name


def _block_party(line: str) -> str | None:
    """The party a line of the page's head introduces (a company with its legal form, a person
    followed by an address), or ``None`` (a title, a label, a sentence)."""
    plain = _LABEL_START.sub("", line.strip())
    if _FORM_WORD.search(" " + plain[:80]) or re.match(rf"{_HONORIFIC}\s", plain):
        return _party_name(plain)
    if _TITLE_LINE.match(plain):
        return None
    person = _PERSON.match(plain)
    if person and _ADDRESS_START.match(" " + plain[person.end() :].lstrip(" ,")):
        return strip_honorific(person.group(0))
    return None


def parties(text: str, doc_type: str | None = None) -> dict[str, dict[str, str | None]]:
    """``issuer`` and ``recipient``, each ``{"name", "siret", "vat"}`` when found.

    The issuer is named by the company's legal line (``X - SARL au capital de ...``), the first
    party of a contract (``Entre les soussignés : X``) or a label (``Employeur :``), else it is
    the first party at the top of the page; the recipient by the contract's second party
    (``Et : Y``), a label (``Client``, ``Fournisseur :``, ``Salarié :``, ``À l'attention
    de``, ``certifie que``) or the next party block. An expense report is issued by the employee
    to the company. Identifiers (checked SIRET, VAT numbers) go to the party named nearest
    before them."""
    out: dict[str, dict[str, str | None]] = {}
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return out
    head = lines[:12]
    found = []
    for i, line in enumerate(head):
        name = _block_party(line)
        following = head[i + 1] if i + 1 < len(head) else ""
        if name is None and _ADDRESS_LINE.match(following.strip()):
            alone = _PERSON.fullmatch(strip_honorific(line.strip()))
            form = _FORM_WORD.search(" " + line.strip())
            if alone or form:
                name = _party_name(line)
        if name is not None:
            found.append(name)
    blocks = list(dict.fromkeys(found))
    issuer: str | None = None
    recipient: str | None = None
    legal = re.search(rf"(?m)^(.{{2,80}}?)\s+(?:-\s+)?{_LEGAL_FORM}\s+au\s+capital", text)
    if legal:
        issuer = _party_name(legal.group(1))
    between = re.search(
        r"(?m)^\s*(?:entre\s+les\s+soussign[ée]s|entre|between)\s*:?\s*\n?\s*(.+)", text, re.I
    )
    if between:
        issuer = _party_name(between.group(1)) or issuer
        second = re.search(r"(?m)^\s*(?:et|and)\s*:?\s*\n?\s*(.+)", text[between.end() :], re.I)
        if second:
            recipient = _party_name(second.group(1))
    employer = re.search(r"\b(?:employeur|employer)\s*:\s*(.+)", text, re.I)
    if employer:
        issuer = _party_name(employer.group(1)) or issuer
    employee = re.search(r"\b(?:salari[ée]|employee|name)\s*:\s*(.+)", text, re.I)
    undersigned = _UNDERSIGNED.search(text)
    if issuer is None and undersigned:
        issuer = _party_name(text[undersigned.end() : undersigned.end() + 120])
    if doc_type == "expense_report":
        person = _party_name(employee.group(1)) if employee else None
        issuer, recipient = person or issuer, blocks[0] if blocks else None
    if issuer is None and blocks:
        issuer = blocks[0]
    if issuer is None and _PERSON.fullmatch(lines[0].strip()):
        issuer = lines[0].strip()  # a CV: the candidate's name heads it
    if recipient is None:
        recipient = _labelled_recipient(text, issuer)
    if recipient is None and employee:
        recipient = _party_name(employee.group(1))
    if recipient is None:
        recipient = next((b for b in blocks if b != issuer), None)
    if issuer:
        out["issuer"] = {"name": issuer, "siret": None, "vat": None}
    if recipient and recipient != issuer:
        out["recipient"] = {"name": recipient, "siret": None, "vat": None}
    _attach_identifiers(text, out)
    return out


_ATTENTION = re.compile(
    r"(?m)^(.*?)\s*\n?\s*(?:[ÀA]\s+l'attention\s+de|For\s+the\s+attention\s+of)"
)
_CERTIFIES = re.compile(
    r"\b(?:certifie|atteste)(?:\s+sur\s+l'honneur)?\s+que\s+|\bcertif(?:y|ies)(?:\s+on\s+my\s+"
    r"honou?r)?\s+that\s+",
    re.I,
)
_RECIPIENT_AT = re.compile(
    r"(?m)(?:^|\s)(?:client|customer|bill\s+to|fournisseur|supplier|destinataire)\s*:?\s+", re.I
)


def _labelled_recipient(text: str, issuer: str | None) -> str | None:
    for m in _ATTENTION.finditer(text):
        name = _party_name(m.group(1)) if m.group(1).strip() else None
        if name is None:
            previous = text[: m.start()].rstrip().rsplit("\n", 1)[-1]
            name = _party_name(previous)
        if name and name != issuer:
            return name
    for m in _RECIPIENT_AT.finditer(text):
        name = _party_name(text[m.end() : m.end() + 120])
        if name and name != issuer:
            return name
    for said in (_CERTIFIES.search(text), _HOSTS.search(text)):
        if said is None:
            continue
        name = _party_name(text[said.end() : said.end() + 120])
        if name and name != issuer:
            return name
    return None


def _attach_identifiers(text: str, out: dict[str, dict[str, str | None]]) -> None:
    """Each checked SIRET / VAT number goes to the party named nearest before it."""
    named = {
        role: [m.start() for m in re.finditer(re.escape(p["name"] or ""), text)]
        for role, p in out.items()
        if p.get("name")
    }
    for kind, found in (("siret", find_sirets(text)), ("vat", find_vats(text))):
        for f in found:
            role = _nearest_party(named, f.start)
            if role is not None and out[role][kind] is None:
                out[role][kind] = str(f.value)
    issuer = out.get("issuer")
    if issuer is not None and issuer["siret"] and issuer["vat"] is None:
        # The issuer's VAT number derives from its SIREN; kept only when printed somewhere.
        siren = issuer["siret"][:9]
        printed = [str(v.value) for v in find_vats(text) if str(v.value).endswith(siren)]
        issuer["vat"] = printed[0] if printed else None


def _nearest_party(named: Mapping[str, list[int]], pos: int) -> str | None:
    best: tuple[int, str] | None = None
    for role, starts in named.items():
        for s in starts:
            if s <= pos and (best is None or s > best[0]):
                best = (s, role)
    return best[1] if best else None


def extract(text: str, doc_type: str | None = None) -> dict[str, Any]:
    """Every built-in field found in ``text`` (absent keys: not found). ``doc_type``, when known,
    says what the total of a letter or a lease is (the sum claimed; rent plus charges)."""
    text = normalise(text)
    dates = find_dates(text)
    out: dict[str, Any] = {}
    d = document_date(text, dates)
    if d is not None:
        out["date"] = d
    out.update(parties(text, doc_type))
    ref = reference(text)
    if ref is not None:
        out["reference"] = ref
    money = totals(text)
    if not money and doc_type in ("letter", "contract"):
        alone = claimed_amount(text) if doc_type == "letter" else rent_total(text)
        if alone is not None:
            money = {"total_ttc": alone}
    out.update(money)
    if money or re.search(r"€|\bEUR\b", text):
        out["currency"] = "EUR"
    ibans = find_ibans(text)
    if ibans:
        out["iban"] = str(ibans[0].value)
    p = period(text, dates)
    if p is not None:
        out["period"] = p
    return out


# -- typed rows for filters ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRow:
    """One filterable value: a number (amounts; dates as epoch seconds) or a text."""

    key: str
    num: float | None
    text: str | None


def epoch(iso_day: str) -> float:
    return datetime.fromisoformat(iso_day).replace(tzinfo=UTC).timestamp()


def flatten(fields: Mapping[str, Any], kinds: Mapping[str, FieldKind]) -> list[FieldRow]:
    """The rows a document's fields are filtered by: ``total_ttc`` (number), ``date`` (epoch
    and ISO text), ``period.start`` / ``period.end``, ``issuer.name`` / ``issuer.siret`` ..."""
    rows: list[FieldRow] = []
    for key, value in fields.items():
        if value is None:
            continue
        kind = kinds.get(key, "text")
        if kind == "amount" and isinstance(value, int | float):
            rows.append(FieldRow(key, float(value), None))
        elif kind == "date" and isinstance(value, str):
            rows.append(FieldRow(key, epoch(value), value))
        elif kind == "period" and isinstance(value, Mapping):
            for part in ("start", "end"):
                if value.get(part):
                    rows.append(FieldRow(f"{key}.{part}", epoch(value[part]), value[part]))
        elif kind == "party" and isinstance(value, Mapping):
            for part in ("name", "siret", "vat"):
                if value.get(part):
                    rows.append(FieldRow(f"{key}.{part}", None, str(value[part])[:500]))
        else:
            rows.append(FieldRow(key, None, str(value)[:500]))
    return rows


def payload_fields(rows: Iterable[FieldRow]) -> dict[str, Any]:
    """Field rows as the vector payload's ``fields`` object: numbers where a row has one (dates
    as epoch seconds, so ranges apply), texts otherwise."""
    return {r.key: (r.num if r.num is not None else r.text) for r in rows}


_OPERATORS = ("gte", "gt", "lte", "lt")


def parse_conditions(
    params: Mapping[str, str], kinds: Mapping[str, FieldKind]
) -> tuple[FieldCondition, ...]:
    """Field filters from query parameters without their ``field.`` prefix: ``total_ttc_gte=100``,
    ``date_lt=2024-06-01``, ``period.start_gte=2024-01-01``, ``reference=F-2024-12``,
    ``issuer.siret=...``. A number is needed for amounts, an ISO date for dates;
    :class:`InvalidInput` names the filter otherwise."""
    out: list[FieldCondition] = []
    for raw_key, raw in params.items():
        key, op = raw_key, "eq"
        for candidate in _OPERATORS:
            if raw_key.endswith("_" + candidate):
                key, op = raw_key[: -len(candidate) - 1], candidate
                break
        base = key.split(".")[0]
        kind = kinds.get(base)
        if kind is None:
            raise InvalidInput(
                f"unknown field {key!r} (known: {', '.join(sorted(kinds))})", field=f"field.{key}"
            )
        value: float | str
        if kind == "amount":
            try:
                value = float(raw)
            except ValueError as exc:
                raise InvalidInput(
                    f"field {key!r}: {raw!r} is not a number", field=f"field.{raw_key}"
                ) from exc
        elif kind in ("date", "period"):
            try:
                value = epoch(date.fromisoformat(raw).isoformat())
            except ValueError as exc:
                raise InvalidInput(
                    f"field {key!r}: {raw!r} is not a date (YYYY-MM-DD)", field=f"field.{raw_key}"
                ) from exc
        else:
            if op != "eq":
                raise InvalidInput(
                    f"field {key!r} is text: only equality filters it", field=f"field.{raw_key}"
                )
            value = raw
        if kind == "period" and "." not in key:
            raise InvalidInput(
                f"field {key!r}: filter period.start or period.end", field=f"field.{raw_key}"
            )
        out.append(FieldCondition(key=key, op=op, value=value))
    return tuple(out)
