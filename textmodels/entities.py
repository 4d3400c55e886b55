"""Entities for the document graph: a Protocol, a rule-based French/English extractor, and
co-occurrence relations.

No NER model can be installed offline here (NOTES.md), so :class:`RuleBasedEntityExtractor`
finds what rules find well: e-mails, URLs, dates, amounts, reference numbers and acronyms
(precise), and capitalised name spans (noisier; typed ``org``/``person``/``place`` only on a clear
cue such as "Caisse", "Mme" or "rue", else ``name``). An LLM-backed extractor can replace it
behind :class:`EntityExtractor`.

Keys identify an entity across chunks and documents so that variants merge in the graph: names are
casefolded, stripped of accents, leading articles and apostrophe variants; values get a typed
canonical form (``date:2024-03-03``, ``amount:EUR:1234.56``, ``ref:inv-2024-0042``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, runtime_checkable

from textmodels.sparse import strip_accents

EntityKind = Literal[
    "org", "person", "place", "acronym", "email", "url", "date", "amount", "reference", "name"
]

RULE_BASED_EXTRACTOR_NAME = "rule-based"
# Bump when the entities or keys produced for the same text change (the graph must be rebuilt).
RULE_BASED_EXTRACTOR_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity mention: ``key`` identifies it (equal keys are the same graph node), ``name`` is
    the text as first seen, ``kind`` its type."""

    key: str
    name: str
    kind: EntityKind


@runtime_checkable
class EntityExtractor(Protocol):
    """Finds the entities of one chunk of text.

    ``extract`` returns each key at most once, in order of first mention, and never raises on
    odd text (an empty list instead). ``language`` is ``"fr"``, ``"en"`` or ``"und"`` and may
    steer language-specific rules (date order, decimal comma). ``name`` and ``to_dict()`` identify
    the extractor and its configuration in the release config.
    """

    @property
    def name(self) -> str: ...

    def extract(self, text: str, language: str) -> list[Entity]: ...

    def to_dict(self) -> dict[str, Any]: ...


def normalise_key(name: str) -> str:
    """The merge key of a name: ``"La Caisse d'Allocations Familiales"`` and ``"caisse
    d\u2019allocations  familiales"`` both give ``"caisse d'allocations familiales"``."""
    text = strip_accents(name).casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = " ".join(text.split())
    return _LEADING_ARTICLE.sub("", text, count=1).strip()


_LEADING_ARTICLE = re.compile(r"^(?:the|an|a|le|la|les|l'|un|une|des|du)(?:\s+|(?<=')\s*)")

# --- value-like entities ---------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)

_FRENCH_MONTHS = {
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
    "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
}  # fmt: skip
_ENGLISH_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTHS = {**_FRENCH_MONTHS, **_ENGLISH_MONTHS}
_MONTH_NAME = r"[A-Za-zÀ-ÿ]{3,9}\.?"
# Not inside a code such as "FAC-2024-03-15" (that is a reference).
_ISO_DATE = re.compile(r"(?<![\w/.-])(\d{4})-(\d{2})-(\d{2})\b")
_NUMERIC_DATE = re.compile(r"(?<![\w/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4})\b")
# "3 mars 2024", "1er mars 2024", "3 March 2024"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:er)?\s+({_MONTH_NAME})\s+(\d{{4}})\b")
# "March 3, 2024", "March 3rd 2024", "Mar. 3, 2024"
_MONTH_DAY_YEAR = re.compile(rf"\b({_MONTH_NAME})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")

_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY"}
_CURRENCY_WORDS = {
    "eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "dollar": "USD",
    "dollars": "USD", "gbp": "GBP", "chf": "CHF", "cad": "CAD", "jpy": "JPY",
}  # fmt: skip
_CURRENCY = r"(?:€|\$|£|¥|EUR|USD|GBP|CHF|CAD|JPY|euros?|dollars?)"
# Digits with optional thousands groups (space, no-break spaces, comma, dot, apostrophe) and
# decimals; the separators are resolved in _parse_number.
_NUMBER = r"\d{1,3}(?:[ \u00a0\u202f.,']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?<![\w.,])(?:(?P<pre>{_CURRENCY})\s?(?P<n1>{_NUMBER})|(?P<n2>{_NUMBER})\s?(?P<post>{_CURRENCY}))"
    r"(?![\w])",
    re.IGNORECASE,
)

# "INV-2024-0042", "FR-12/345": letters, then separated groups with at least one digit.
_CODE_REFERENCE = re.compile(r"\b[A-Z]{2,6}(?:[-/][A-Z0-9]+)*[-/][A-Z0-9]*\d[A-Z0-9]*\b")
# "n° 12345", "No. 12345", "facture 2024-001", "contract #A77"
_KEYWORD_REFERENCE = re.compile(
    r"(?:\b(?:n\s?°|no\s?°|nº|no\.|num[ée]ro)|#|"
    r"\b(?:facture|invoice|contrat|contract|dossier|r[ée]f[ée]rence|reference|r[ée]f\.?)"
    r"(?:\s+(?:n\s?°|nº|no\.?|number|num[ée]ro|#))?)"
    r"\s*:?\s*(?P<id>[A-Z0-9][A-Z0-9/-]*\d[A-Z0-9/-]*)",
    re.IGNORECASE,
)
# Shorter identifiers after "No." are sizes and list numbers ("No. 6 screws"), not references.
_MIN_REFERENCE_CHARS = 3

# --- names ---------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"[^\W\d_](?:[\w&]|['\u2019\-](?=\w))*")
_CONNECTORS = _words("de du des d of the for la le les l van von der den di da del y")
# A lowercase street word before a name makes it an address: "12 rue de la Paix".
_STREET_BEFORE = re.compile(
    r"\b(?:rue|avenue|boulevard|bd|chemin|impasse|all[ée]e|quai)"
    r"(?:\s+(?:de\s+la|de|du|des|d['\u2019]|l['\u2019]))?\s*$",
    re.IGNORECASE,
)
_ARTICLE_PREFIX = re.compile(r"^(?:l|d)['\u2019](?=\w)", re.IGNORECASE)
_TITLES = _words(
    """
m mr mrs ms mme mlle dr pr me madame monsieur mademoiselle docteur professeur maitre sir dame
"""
)
_PRECEDING_TITLE = re.compile(
    r"\b(?:M|Mr|Mrs|Ms|Mme|Mlle|Dr|Pr|Me)\.?\s+$|\b(?:Madame|Monsieur|Mademoiselle)\s+$"
)
_ORG_WORDS = _words(
    """
caisse societe company corporation corp inc ltd llc sa sas sarl gmbh bank banque ministry
ministere agency agence association administration university universite institute institut
department departement office group groupe council conseil commission foundation fondation
federal national nationale service services authority autorite bureau committee comite union
tribunal court cour assurance assurances mutuelle hospital hopital school ecole center centre
college lycee prefecture mairie direction organisation organization federation
"""
)
_PLACE_WORDS = _words(
    """
rue avenue boulevard place chemin route street road lane square lake lac river riviere fleuve
mount mont island ile city ville county province region
"""
)
# Capitalised only because they start a sentence or are calendar words: never a name alone.
_COMMON_CAPITALISED = _words(
    """
a an and as at but by for from he her his i if in is it its my no not of on or our she so that
the their then there these they this to we what when where which who with you your le la les un
une des du de et ou mais donc car ni il elle ils elles nous vous je tu on ce cet cette ces son
sa ses leur leurs mon ma mes ton ta tes notre votre nos vos pour par sur dans avec sans sous
chez entre vers selon si quand comme lorsque puis ainsi alors aussi enfin monday tuesday
wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi samedi dimanche
dear cher chere bonjour madame monsieur objet subject re fwd figure table page chapitre chapter
section article annexe appendix note depuis apres avant pendant lors cela ceci voici oui non tout
tous toute toutes chaque plusieurs certains aucun aucune
"""
)
_ROMAN_NUMERALS = _words("ii iii iv vi vii viii ix xi xii xiii xiv xv xx")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n\u2022\u00b7*\-\u2013\u2014\"«(\[])\s*$")


class RuleBasedEntityExtractor:
    """Regex and capitalisation rules for French and English text (see the module docstring).

    Deterministic and fast (~1 ms per 256-token chunk). Precedence when spans overlap: URL,
    e-mail, date, amount, reference, then acronyms and names in what is left. Numeric dates are
    read day-first in French and month-first in English unless the first number exceeds 12.
    """

    @property
    def name(self) -> str:
        return RULE_BASED_EXTRACTOR_NAME

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": RULE_BASED_EXTRACTOR_VERSION}

    def extract(self, text: str, language: str) -> list[Entity]:
        french = language.startswith("fr")
        taken = bytearray(len(text))
        found: list[tuple[int, Entity]] = []

        def claim(start: int, end: int, entity: Entity | None) -> None:
            if entity is None or any(taken[start:end]):
                return
            taken[start:end] = b"\x01" * (end - start)
            found.append((start, entity))

        for match in _URL.finditer(text):
            url = match.group().rstrip(".,;:!?")
            claim(match.start(), match.start() + len(url), _url_entity(url))
        for match in _EMAIL.finditer(text):
            claim(*match.span(), Entity(f"email:{match.group().lower()}", match.group(), "email"))
        for start, end, entity in _dates(text, french):
            claim(start, end, entity)
        for match in _AMOUNT.finditer(text):
            claim(*match.span(), _amount_entity(match, french))
        for match in _KEYWORD_REFERENCE.finditer(text):
            claim(*match.span("id"), _reference_entity(match.group("id")))
        for match in _CODE_REFERENCE.finditer(text):
            claim(*match.span(), _reference_entity(match.group()))
        for start, end, entity in _names(text, taken):
            claim(start, end, entity)

        seen: set[str] = set()
        result: list[Entity] = []
        for _, entity in sorted(found, key=lambda item: item[0]):
            if entity.key not in seen:
                seen.add(entity.key)
                result.append(entity)
        return result


def _url_entity(url: str) -> Entity:
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE)
    host, slash, path = bare.partition("/")
    key = f"url:{host.lower()}{slash}{path}".rstrip("/")
    return Entity(key, url, "url")


def _dates(text: str, french: bool) -> Iterator[tuple[int, int, Entity]]:
    """Every date in ``text`` with a valid calendar day, keyed ``date:YYYY-MM-DD``."""
    for match in _ISO_DATE.finditer(text):
        yield from _date(match, int(match[1]), int(match[2]), int(match[3]))
    for match in _NUMERIC_DATE.finditer(text):
        first, second, year = int(match[1]), int(match[3]), int(match[4])
        day_first = french or first > 12
        day, month = (first, second) if day_first else (second, first)
        yield from _date(match, year, month, day)
    for match in _DAY_MONTH_YEAR.finditer(text):
        named = _MONTHS.get(_month_key(match[2]))
        if named:
            yield from _date(match, int(match[3]), named, int(match[1]))
    for match in _MONTH_DAY_YEAR.finditer(text):
        named = _MONTHS.get(_month_key(match[1]))
        if named:
            yield from _date(match, int(match[3]), named, int(match[2]))


def _month_key(word: str) -> str:
    return strip_accents(word).lower().rstrip(".")


def _date(
    match: re.Match[str], year: int, month: int, day: int
) -> Iterator[tuple[int, int, Entity]]:
    try:
        value = date(year, month, day)
    except ValueError:
        return
    yield match.start(), match.end(), Entity(f"date:{value.isoformat()}", match.group(), "date")


def _amount_entity(match: re.Match[str], french: bool) -> Entity | None:
    currency_text = match.group("pre") or match.group("post")
    number_text = match.group("n1") or match.group("n2")
    currency = _CURRENCY_SYMBOLS.get(currency_text) or _CURRENCY_WORDS[currency_text.lower()]
    value = _parse_number(number_text, french)
    if value is None:
        return None
    return Entity(f"amount:{currency}:{_format_decimal(value)}", match.group(), "amount")


def _parse_number(text: str, french: bool) -> Decimal | None:
    """Resolve thousands and decimal separators: "1 234,56", "1,234.56", "1.234,56", "1'234".

    A lone ``,`` or ``.`` followed by exactly three digits is a thousands separator, except a
    comma in French ("1,500 €" is one and a half) and a dot in English ("1.500 $").
    """
    compact = re.sub(r"[ \u00a0\u202f']", "", text)
    commas, dots = compact.count(","), compact.count(".")
    if commas and dots:
        decimal_mark = "," if compact.rfind(",") > compact.rfind(".") else "."
    elif commas + dots == 1:
        mark = "," if commas else "."
        decimals = len(compact) - compact.index(mark) - 1
        is_decimal = decimals != 3 or (mark == "," and french) or (mark == "." and not french)
        decimal_mark = mark if is_decimal else ""
    else:
        decimal_mark = ""  # several identical marks: all thousands separators
    integer, _, fraction = compact.partition(decimal_mark) if decimal_mark else (compact, "", "")
    digits = re.sub(r"[.,]", "", integer) + ("." + fraction if fraction else "")
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def _format_decimal(value: Decimal) -> str:
    """Canonical digits: no exponent, no trailing zeros ("1200.00" -> "1200", "1.50" -> "1.5")."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _reference_entity(identifier: str) -> Entity | None:
    identifier = identifier.strip("-/.")
    if len(identifier) < _MIN_REFERENCE_CHARS or not any(char.isdigit() for char in identifier):
        return None
    return Entity(f"ref:{identifier.lower()}", identifier, "reference")


def _names(text: str, taken: bytearray) -> Iterator[tuple[int, int, Entity]]:
    """Capitalised spans on one line, e.g. "Caisse d'Allocations Familiales", "Jean Dupont",
    "FAA". A span may contain lowercase connectors (de, of, la...) but not end with one."""
    words = [match for match in _WORD.finditer(text) if not any(taken[match.start() : match.end()])]
    i = 0
    while i < len(words):
        if not _is_capitalised(words[i].group()):
            i += 1
            continue
        span = [words[i]]
        j = i + 1
        while j < len(words) and _same_line_gap(text, span[-1].end(), words[j].start()):
            word = words[j].group()
            if _is_capitalised(word) or word.lower() in _CONNECTORS:
                span.append(words[j])
                j += 1
            else:
                break
        while span and span[-1].group().lower() in _CONNECTORS:
            span.pop()
        i = max(j, i + 1)
        entity = _name_entity(text, span) if span else None
        if entity is not None:
            yield span[0].start(), span[-1].end(), entity


def _is_capitalised(word: str) -> bool:
    core = _ARTICLE_PREFIX.sub("", word)
    return bool(core) and core[0].isupper()


def _same_line_gap(text: str, end: int, start: int) -> bool:
    """Words belong to one span only when separated by spaces alone (no punctuation, no line)."""
    gap = text[end:start]
    return 0 < len(gap) <= 2 and gap.strip(" \u00a0") == ""


def _name_entity(text: str, span: list[re.Match[str]]) -> Entity | None:
    words = [match.group() for match in span]
    start = span[0].start()
    street = _STREET_BEFORE.search(text[max(0, start - 20) : start])
    if street is not None:
        address = text[start - len(street.group()) : span[-1].end()]
        return Entity(normalise_key(address), address, "place")
    at_sentence_start = _SENTENCE_START.search(text[max(0, start - 3) : start]) is not None
    person = _PRECEDING_TITLE.search(text[max(0, start - 14) : start]) is not None
    # Drop what is capitalised only for being first, and a leading title ("Madame Dupont").
    while words and (
        (at_sentence_start and _plain(words[0]) in _COMMON_CAPITALISED)
        or _plain(words[0]) in _TITLES
        or not _is_capitalised(words[0])  # a connector left first by the drops above
    ):
        if _plain(words[0]) in _TITLES:
            person = True
        words.pop(0)
        at_sentence_start = False
    if not words:
        return None
    words[0] = _ARTICLE_PREFIX.sub("", words[0])  # "l'URSSAF" -> "URSSAF"
    name = " ".join(words)
    plain = [_plain(word) for word in words]
    if len(words) == 1:
        word = words[0]
        if _is_acronym(word):
            return Entity(normalise_key(word), word, "acronym")
        if at_sentence_start and not person:
            return None  # a lone capitalised first word is usually just a sentence start
        if len(word) < 3 or plain[0] in _COMMON_CAPITALISED or plain[0] in _ROMAN_NUMERALS:
            return None
        if plain[0] in _ORG_WORDS or plain[0] in _PLACE_WORDS:
            return None  # "Agence", "Service": a cue word alone names nothing in particular
        if word.isupper() and not person:
            return None  # a shouted heading word ("IMPORTANT"), not a name
    org = any(word in _ORG_WORDS for word in plain)
    place = any(word in _PLACE_WORDS for word in plain)
    if len(words) > 1 and all(word.isupper() for word in words) and not (org or place):
        return None  # a shouted heading ("SELF-LOCKING NUTS"), unless it names an organisation
    kind: EntityKind = "name"
    if person:
        kind = "person"
    elif org:
        kind = "org"
    elif place:
        kind = "place"
    return Entity(normalise_key(name), name, kind)


def _plain(word: str) -> str:
    return strip_accents(_ARTICLE_PREFIX.sub("", word)).lower()


def _is_acronym(word: str) -> bool:
    """2-6 characters, at least two capitals, no lowercase: "FAA", "CAF", "URSSAF" ("COVID-19"
    is not: the hyphen makes it a code, handled as a reference if it has digits)."""
    letters = sum(1 for char in word if char.isupper())
    return (
        2 <= len(word) <= 6
        and letters >= 2
        and word.isalnum()
        and not any(char.islower() for char in word)
        and word.lower() not in _ROMAN_NUMERALS
        and word.lower() not in _COMMON_CAPITALISED
    )
