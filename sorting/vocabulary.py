"""A tenant's vocabulary: what its documents are sorted into.

Four kinds of entries, each with a key (a slug, unique per tenant and kind), a display name, a
description (the zero-shot classifier and the LLM read it), matching rules and ``auto``: with
``auto`` off an entry is never assigned automatically (a rule or model may still suggest it in
the review queue):

* **document types**, each with the collection its documents are filed into and tags given
  with it;
* **correspondents** (issuers and recipients), with identifiers (SIRET, SIREN, VAT numbers):
  a checked identifier found in the document names the correspondent;
* **tags**;
* **custom fields**, typed (date, amount, currency, reference, IBAN, period, free text), read
  from the text after a label or by a regular expression, beside the built-in fields
  (``sorting.fields.BUILTIN_FIELDS``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from core.errors import InvalidInput
from sorting.fields import BUILTIN_FIELDS, FieldKind

EntryKind = Literal["type", "correspondent", "tag", "field"]
MatchAlgorithm = Literal["none", "any", "all", "exact", "regex", "fuzzy"]
RuleTarget = Literal["text", "filename"]
KINDS: tuple[EntryKind, ...] = get_args(EntryKind)
MAX_RULES = 20
MAX_PATTERN = 1000

_SLUG = re.compile(r"[^a-z0-9]+")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-.]{0,99}$")


def slug(name: str) -> str:
    """``"Bon de commande"`` → ``"bon_de_commande"``: the key an entry gets from its name."""
    folded = unicodedata.normalize("NFKD", name.lower())
    ascii_only = "".join(c for c in folded if not unicodedata.combining(c))
    return _SLUG.sub("_", ascii_only).strip("_")[:100]


@dataclass(frozen=True)
class Rule:
    """Paperless-ngx's matching: ``any`` of the words, ``all`` of them, the ``exact`` string,
    a ``regex``, ``fuzzy`` (partial ratio >= 90), on the document's text or its file name;
    ``none`` never matches (the entry is left to the models)."""

    algorithm: MatchAlgorithm
    pattern: str
    case_insensitive: bool = True
    target: RuleTarget = "text"

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "pattern": self.pattern,
            "case_insensitive": self.case_insensitive,
            "target": self.target,
        }


@dataclass(frozen=True)
class Entry:
    """One vocabulary entry; the fields that do not apply to its kind stay empty."""

    kind: EntryKind
    key: str
    name: str
    description: str = ""
    auto: bool = True
    rules: tuple[Rule, ...] = ()
    collection: str | None = None  # type: the collection its documents are filed into
    tags: tuple[str, ...] = ()  # type: tags given with it
    identifiers: tuple[str, ...] = ()  # correspondent: SIRET, SIREN, VAT numbers (no spaces)
    field_kind: FieldKind | None = None  # field: its type
    types: tuple[str, ...] = ()  # field: the document types it applies to (empty: all)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "auto": self.auto,
            "rules": [r.to_dict() for r in self.rules],
            "collection": self.collection,
            "tags": list(self.tags),
            "identifiers": list(self.identifiers),
            "field_kind": self.field_kind,
            "types": list(self.types),
        }

    @property
    def label_text(self) -> str:
        """What the zero-shot classifier and the LLM read of the entry."""
        return f"{self.name}: {self.description}" if self.description else self.name


def entry_from(data: Mapping[str, Any]) -> Entry:
    """An entry from its JSON form (the API's body, the catalog's row), checked: a clear
    :class:`InvalidInput` names what is wrong."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    name = str(data.get("name") or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("name: 1 to 200 characters", field="name")
    key = str(data.get("key") or slug(name))
    if not _KEY.match(key):
        raise InvalidInput(
            "key: lower-case letters, digits, '_', '-' and '.', at most 100", field="key"
        )
    rules = tuple(_rule(r, i) for i, r in enumerate(data.get("rules") or []))
    if len(rules) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules per entry", field="rules")
    field_kind = data.get("field_kind")
    if kind == "field":
        if field_kind not in get_args(FieldKind) or field_kind == "party":
            raise InvalidInput(
                "field_kind must be one of date, amount, currency, reference, iban, period, text",
                field="field_kind",
            )
        if key in BUILTIN_FIELDS:
            raise InvalidInput(f"{key!r} is a built-in field", field="key")
    elif field_kind is not None:
        raise InvalidInput("field_kind applies to custom fields only", field="field_kind")
    identifiers = tuple(str(i).replace(" ", "").upper() for i in data.get("identifiers") or [])
    if kind != "correspondent" and identifiers:
        raise InvalidInput("identifiers apply to correspondents only", field="identifiers")
    collection = data.get("collection")
    if collection is not None and (kind != "type" or not str(collection).strip()):
        raise InvalidInput("collection: a non-empty name, for document types", field="collection")
    return Entry(
        kind=kind,
        key=key,
        name=name,
        description=str(data.get("description") or "")[:2000],
        auto=bool(data.get("auto", True)),
        rules=rules,
        collection=str(collection).strip() if collection is not None else None,
        tags=tuple(str(t) for t in data.get("tags") or ()),
        identifiers=identifiers,
        field_kind=field_kind,
        types=tuple(str(t) for t in data.get("types") or ()),
    )


def _rule(data: Any, i: int) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: an object", field="rules")
    algorithm = data.get("algorithm")
    if algorithm not in get_args(MatchAlgorithm):
        raise InvalidInput(
            f"{where}.algorithm: one of {', '.join(get_args(MatchAlgorithm))}", field="rules"
        )
    pattern = str(data.get("pattern") or "")
    if algorithm != "none" and not pattern.strip():
        raise InvalidInput(f"{where}.pattern: empty", field="rules")
    if len(pattern) > MAX_PATTERN:
        raise InvalidInput(f"{where}.pattern: at most {MAX_PATTERN} characters", field="rules")
    target = data.get("target", "text")
    if target not in get_args(RuleTarget):
        raise InvalidInput(f"{where}.target: text or filename", field="rules")
    if algorithm == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidInput(
                f"{where}.pattern: not a regular expression ({exc})", field="rules"
            ) from exc
    return Rule(
        cast(MatchAlgorithm, algorithm),
        pattern,
        bool(data.get("case_insensitive", True)),
        cast(RuleTarget, target),
    )


@dataclass(frozen=True)
class Vocabulary:
    """A tenant's entries by kind, each kind ordered by key."""

    entries: tuple[Entry, ...] = field(default_factory=tuple)

    def of(self, kind: EntryKind) -> list[Entry]:
        return sorted((e for e in self.entries if e.kind == kind), key=lambda e: e.key)

    @property
    def types(self) -> list[Entry]:
        return self.of("type")

    @property
    def correspondents(self) -> list[Entry]:
        return self.of("correspondent")

    @property
    def tags(self) -> list[Entry]:
        return self.of("tag")

    @property
    def fields(self) -> list[Entry]:
        return self.of("field")

    def get(self, kind: EntryKind, key: str) -> Entry | None:
        return next((e for e in self.entries if e.kind == kind and e.key == key), None)

    def field_kinds(self) -> dict[str, FieldKind]:
        """Built-in and custom fields with their types."""
        kinds: dict[str, FieldKind] = dict(BUILTIN_FIELDS)
        for e in self.fields:
            if e.field_kind is not None:
                kinds[e.key] = e.field_kind
        return kinds

    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """What the zero-shot and LLM scorers depend on: the types' keys and label texts."""
        return tuple((e.key, e.label_text) for e in self.types)


def vocabulary_of(rows: Iterable[Mapping[str, Any]]) -> Vocabulary:
    return Vocabulary(tuple(entry_from(r) for r in rows))
