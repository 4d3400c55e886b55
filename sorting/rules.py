"""Matching rules, with Paperless-ngx's semantics (``src/documents/matching.py``).

* ``any``: one of the words matches as a whole word; ``all``: every word does. Words are split
  on spaces, ``"quoted phrases"`` stay one word, and a phrase matches across any whitespace;
* ``exact``: the string as a whole-word match;
* ``regex``: a search with the ``regex`` package (mrab-regex: ``re``'s syntax, plus a time limit,
  :data:`REGEX_TIMEOUT_S`: a catastrophic pattern on a hostile text stops and does not match,
  rather than stalling the worker; a broken expression never matches, the API refuses it);
* ``fuzzy``: RapidFuzz's partial ratio >= 90 once punctuation is removed;
* ``none``: never.

``case_insensitive`` is Paperless's ``is_insensitive``. A rule reads the document's text, or its
file name (``target="filename"``). Rules read at most ``MAX_TEXT`` characters; Paperless bounds
neither the text nor the time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import regex
from rapidfuzz import fuzz

from sorting.vocabulary import Entry, Rule

# Rules read at most this much of a document (the first pages say what it is): bounds the cost
# of every rule, a user's regex included, to ~1 ms per rule on these cores.
MAX_TEXT = 100_000
FUZZY_CUTOFF = 90
log = logging.getLogger(__name__)
# A user's regular expression gets this long per document; past it, it does not match.
REGEX_TIMEOUT_S = 0.5


def search_user_pattern(pattern: str, text: str, flags: int = 0) -> regex.Match[str] | None:
    """``pattern`` (a user's: a rule's or a custom field's) searched in ``text`` within
    :data:`REGEX_TIMEOUT_S`; a broken or runaway expression finds nothing (and is logged)."""
    try:
        return regex.search(pattern, text, flags, timeout=REGEX_TIMEOUT_S)
    except regex.error:
        return None
    except TimeoutError:
        log.warning("a regular expression ran out of time", extra={"pattern": pattern[:200]})
        return None


_TERMS = re.compile(r'"([^"]+)"|(\S+)')
_SPACE = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s]")


def words(pattern: str) -> list[str]:
    """``'  some "quoted   words" here'`` → regexes for ``some``, ``quoted\\s+words``, ``here``."""
    return [
        re.escape(_SPACE.sub(" ", (quoted or bare).strip())).replace(r"\ ", r"\s+")
        for quoted, bare in _TERMS.findall(pattern)
    ]


def matches(rule: Rule, text: str, filename: str = "") -> str | None:
    """Why the rule matches (a short reason), or ``None``."""
    subject = (filename if rule.target == "filename" else text)[:MAX_TEXT]
    flags = re.IGNORECASE if rule.case_insensitive else 0
    if rule.algorithm == "none" or not rule.pattern.strip():
        return None
    if rule.algorithm == "all":
        terms = words(rule.pattern)
        if terms and all(re.search(rf"\b{w}\b", subject, flags) for w in terms):
            return f"contains all of: {rule.pattern}"
        return None
    if rule.algorithm == "any":
        for w in words(rule.pattern):
            m = re.search(rf"\b{w}\b", subject, flags)
            if m:
                return f"contains: {m.group(0)}"
        return None
    if rule.algorithm == "exact":
        if re.search(rf"\b{re.escape(rule.pattern)}\b", subject, flags):
            return f'contains "{rule.pattern}"'
        return None
    if rule.algorithm == "regex":
        m = search_user_pattern(rule.pattern, subject, flags)
        return f"matches /{rule.pattern}/: {m.group(0)[:80]}" if m else None
    # fuzzy
    pattern = _PUNCTUATION.sub("", rule.pattern)
    plain = _PUNCTUATION.sub("", subject)
    if rule.case_insensitive:
        pattern, plain = pattern.lower(), plain.lower()
    if fuzz.partial_ratio(pattern, plain, score_cutoff=FUZZY_CUTOFF):
        return f"resembles: {rule.pattern}"
    return None


@dataclass(frozen=True)
class RuleMatch:
    key: str
    reason: str


def match_entries(entries: Sequence[Entry], text: str, filename: str = "") -> list[RuleMatch]:
    """The entries one of whose rules matches, in the entries' order."""
    out: list[RuleMatch] = []
    for e in entries:
        for rule in e.rules:
            reason = matches(rule, text, filename)
            if reason is not None:
                out.append(RuleMatch(e.key, reason))
                break
    return out
