"""EntityExtractor conformance: the behaviour every ``textmodels.entities.EntityExtractor`` owes
the graph step.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``extractor`` fixture; every test here then runs against it. Keys are
what merge entities across chunks and documents in the graph, so they must be canonical: a named
entity's key is ``normalise_key`` of its name, a value's key carries its kind's prefix
(``date:2026-03-03``). ``tests/unit/test_extractor_conformance.py`` runs it on the rule-based
extractor and on the LLM extractor against a scripted endpoint;
``tests/integration/test_extractor_conformance.py`` on the LLM extractor against the real vLLM
server of the session.
"""

from __future__ import annotations

import json
import re
import typing

import httpx
import pytest

from textmodels.entities import Entity, EntityExtractor, EntityKind, normalise_key

KINDS = frozenset(typing.get_args(EntityKind))
# The canonical prefix of each value kind's keys.
VALUE_PREFIX = {
    "email": "email:",
    "url": "url:",
    "date": "date:",
    "amount": "amount:",
    "reference": "ref:",
}

ENGLISH = (
    "The maintenance contract CTR-2024-0042 binds ACME Industries and the City of Lyon. "
    "It ends on March 3, 2026 and costs $1,250.50 a year. Mr. John Smith of ACME Industries "
    "signs for ACME Industries; write to legal@acme.com or see https://acme.com/contracts."
)
FRENCH = (
    "Le contrat de maintenance CTR-2024-0042 lie la société ACME Industries et la Ville de "
    "Lyon. Il prend fin le 3 mars 2026 et coûte 1 250,50 € par an. Mme Claire Dupont, de la "
    "Caisse d'Allocations Familiales, signe ; écrire à juridique@acme.fr ou voir "
    "https://acme.fr/contrats."
)
# Both say "the contract CTR-2024-0042 ends on 3 March 2026, for ACME and costs 1250.50".
SHARED_KEYS = {"ref:ctr-2024-0042", "date:2026-03-03"}


def assert_canonical(found: list[Entity]) -> None:
    """Keys unique within the call, canonical for their kind; kinds from the allowed set."""
    keys = [e.key for e in found]
    assert len(keys) == len(set(keys)), f"a key twice: {keys}"
    for e in found:
        assert isinstance(e, Entity)
        assert e.kind in KINDS, e
        assert e.name and e.name == e.name.strip(), e
        assert e.key and e.key == e.key.strip() and not re.search(r"\s{2}", e.key), e
        prefix = VALUE_PREFIX.get(e.kind)
        if prefix is None:
            assert e.key == normalise_key(e.name), e
        else:
            assert e.key.startswith(prefix) and len(e.key) > len(prefix), e


class ExtractorConformance:
    """Subclasses provide ``extractor``."""

    @pytest.fixture
    def extractor(self) -> EntityExtractor:
        raise NotImplementedError("a subclass provides the extractor under test")

    def test_name_and_config(self, extractor: EntityExtractor) -> None:
        assert isinstance(extractor, EntityExtractor)  # runtime_checkable: the three members
        assert isinstance(extractor.name, str) and extractor.name
        config = extractor.to_dict()
        assert config["name"] == extractor.name
        assert json.loads(json.dumps(config)) == config  # part of a release id: plain data
        assert extractor.to_dict() == config

    @pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (FRENCH, "fr")])
    def test_keys_are_canonical_and_unique(
        self, extractor: EntityExtractor, text: str, language: str
    ) -> None:
        found = extractor.extract(text, language)
        assert_canonical(found)
        keys = {e.key for e in found}
        assert keys >= SHARED_KEYS
        assert "email:" + ("legal@acme.com" if language == "en" else "juridique@acme.fr") in keys
        assert any(e.kind == "amount" for e in found)
        assert "acme industries" in keys  # named three times in English, twice in French

    @pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (FRENCH, "fr")])
    def test_extraction_is_deterministic(
        self, extractor: EntityExtractor, text: str, language: str
    ) -> None:
        assert extractor.extract(text, language) == extractor.extract(text, language)

    def test_the_same_value_gets_the_same_key_in_both_languages(
        self, extractor: EntityExtractor
    ) -> None:
        english = {e.key for e in extractor.extract(ENGLISH, "en")}
        french = {e.key for e in extractor.extract(FRENCH, "fr")}
        assert english & french >= SHARED_KEYS | {"acme industries"}

    @pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
    def test_empty_text_gives_no_entity(self, extractor: EntityExtractor, text: str) -> None:
        assert extractor.extract(text, "und") == []

    @pytest.mark.parametrize(
        "text",
        [
            "\x00\x01\ufffd \u200b<<<>>> ]]] [[[ {} ## 12/45/9999 €€€ @@ http:// www.",
            "x" * 5000,
            "😀 ACME ✓ Lyon — “quoted” ‘names’ «guillemets»",
        ],
    )
    def test_odd_text_never_raises(self, extractor: EntityExtractor, text: str) -> None:
        assert_canonical(extractor.extract(text, "und"))


# -- a scripted OpenAI-style endpoint --------------------------------------------------------

_EXCERPT = re.compile(r"<excerpt>\n(.*)\n</excerpt>", re.DOTALL)


class NamesModel:
    """An ``httpx.MockTransport`` handler that answers the LLM extractor's JSON-mode request as
    a model would, from the excerpt alone: every run of capitalised words is named, as an
    ``org`` when it ends in "Industries", a ``person`` after a title, else a ``place``; the
    same name twice, in other spacing and case, as models do. An empty excerpt is answered
    with a name too (a model invents): the extractor must not ask."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        match = _EXCERPT.search(body["messages"][-1]["content"])
        excerpt = match.group(1) if match else ""
        entities = [
            {"name": name, "kind": self.kind(excerpt, name)}
            for name in dict.fromkeys(re.findall(r"[A-Z][\w'-]*(?: [A-Z][\w'-]*)*", excerpt))
            if len(name) > 3
        ]
        entities += [{"name": e["name"].upper() + "  ", "kind": e["kind"]} for e in entities[:1]]
        if not excerpt.strip():
            entities = [{"name": "Invented Company", "kind": "org"}]
        content = json.dumps({"entities": entities})
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    @staticmethod
    def kind(excerpt: str, name: str) -> str:
        if name.endswith("Industries"):
            return "org"
        before = excerpt[: excerpt.find(name)].rstrip()
        return "person" if before.endswith(("Mr.", "Mme")) else "place"
