"""Every Protocol has a conformance suite, and every implementation of it runs that suite.

``REGISTRY`` below names, for each ``typing.Protocol`` defined in gedrag's packages, its
conformance mixin (``tests/support/*_conformance.py``) and, for each class of the code base that
implements it, the test class that runs the mixin on it. Narrower roles of a store (a writer, a
searcher, an inspector, the lifecycle) are covered by the full store's suite: ``COVERED_BY``.

The tests import every module of the packages (walking the module tree), find the Protocols and
the classes that implement one structurally (all its members, methods and attributes), and fail
when a Protocol has no entry, when an implementation runs no suite, or when an entry names a
test class that does not exist or does not run the mixin. A new Protocol or a new backend then
cannot land without its suite.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

pytestmark = pytest.mark.unit

PACKAGES = (
    "core", "textmodels", "stores", "runtime", "ingestion", "retrieval", "serving", "evaluation",
    "infra", "sources",
)  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """A Protocol's conformance mixin, the fixture its test classes provide, and per
    implementation (dotted class path) the test classes that run the mixin on it."""

    mixin: str
    fixture: str
    runs: dict[str, tuple[str, ...]]
    # Classes that implement the Protocol without needing a suite of their own, and why.
    exempt: dict[str, str] = field(default_factory=dict)


EMBEDDERS = "tests.integration.test_embedder_conformance"
GENERATORS_UNIT = "tests.unit.test_generator_conformance"
EXTRACTORS_UNIT = "tests.unit.test_extractor_conformance"
EXECUTORS = "tests.integration.test_executor_conformance"
VECTORS = "tests.integration.test_vector_store"
GRAPHS = "tests.integration.test_graph_store"

REGISTRY: dict[str, Suite] = {
    "textmodels.embedding.Embedder": Suite(
        "tests.support.embedder_conformance.EmbedderConformance",
        "embedder",
        {
            "textmodels.embedding.SentenceTransformerEmbedder": (
                f"{EMBEDDERS}.TestSentenceTransformerEmbedder",
            ),
            "textmodels.embedding.BatchingEmbedder": (
                f"{EMBEDDERS}.TestBatchingEmbedder",
                "tests.unit.test_embedder_conformance.TestBatchingWordsEmbedder",
            ),
            "textmodels.embedding.MemoEmbedder": (
                f"{EMBEDDERS}.TestMemoEmbedder",
                "tests.unit.test_embedder_conformance.TestMemoWordsEmbedder",
            ),
            "textmodels.e5.E5Embedder": (f"{EMBEDDERS}.TestE5Embedder",),
            # a test double, but the unit tier's stand-in for every model: it must conform too
            "tests.support.words_embedder.WordsEmbedder": (
                "tests.unit.test_embedder_conformance.TestWordsEmbedder",
            ),
        },
        exempt={
            "textmodels.embedding.WrappedEmbedder": "a base class that forwards every call: "
            "its subclasses BatchingEmbedder and MemoEmbedder run the suite",
        },
    ),
    "textmodels.entities.EntityExtractor": Suite(
        "tests.support.extractor_conformance.ExtractorConformance",
        "extractor",
        {
            "textmodels.entities.RuleBasedEntityExtractor": (
                f"{EXTRACTORS_UNIT}.TestRuleBasedEntityExtractor",
            ),
            "textmodels.llm_entities.LLMEntityExtractor": (
                f"{EXTRACTORS_UNIT}.TestLLMEntityExtractorScripted",
                "tests.integration.test_extractor_conformance.TestLLMEntityExtractor",
            ),
        },
    ),
    "retrieval.generation.Generator": Suite(
        "tests.support.generator_conformance.GeneratorConformance",
        "generator",
        {
            "retrieval.extractive.ExtractiveGenerator": (
                f"{GENERATORS_UNIT}.TestExtractiveGenerator",
            ),
            "retrieval.vllm.VLLMGenerator": (
                f"{GENERATORS_UNIT}.TestVLLMGeneratorScripted",
                "tests.integration.test_generator_conformance.TestVLLMGenerator",
            ),
        },
    ),
    "retrieval.rerank.Reranker": Suite(
        "tests.support.reranker_conformance.RerankerConformance",
        "reranker",
        {
            "retrieval.rerank.CrossEncoderReranker": (
                "tests.unit.test_reranker_conformance.TestCrossEncoderReranker",
            ),
        },
    ),
    "retrieval.stages.ActiveVersions": Suite(
        "tests.support.active_versions_conformance.ActiveVersionsConformance",
        "versions",
        {
            "stores.catalog.versions.VersionRepository": (
                "tests.integration.test_active_versions_conformance.TestCatalogVersions",
            ),
        },
    ),
    "ingestion.service.Executor": Suite(
        "tests.support.executor_conformance.ExecutorConformance",
        "ingestion",
        {
            "ingestion.service.InProcessExecutor": (f"{EXECUTORS}.TestInProcessExecutor",),
            "ingestion.tasks.CeleryExecutor": (f"{EXECUTORS}.TestCeleryExecutor",),
        },
    ),
    "stores.vectors.VectorStore": Suite(
        "tests.support.vector_store_conformance.VectorStoreConformance",
        "store",
        {
            "stores.vectors.edge.EdgeVectorStore": (f"{VECTORS}.TestEdgeVectorStore",),
            "stores.vectors.qdrant.QdrantVectorStore": (f"{VECTORS}.TestQdrantServerVectorStore",),
        },
    ),
    "stores.graph.GraphStore": Suite(
        "tests.support.graph_conformance.GraphStoreConformance",
        "store",
        {
            "stores.graph.relational.RelationalGraphStore": (
                f"{GRAPHS}.TestRelationalSQLite",
                f"{GRAPHS}.TestRelationalPostgreSQL",
            ),
            "stores.graph.neo4j.Neo4jGraphStore": (f"{GRAPHS}.TestNeo4j",),
            "stores.graph.dual.DualGraphStore": (
                f"{GRAPHS}.TestDualRelationalNeo4j",
                f"{GRAPHS}.TestDualRelational",
            ),
        },
    ),
    "sources.base.Source": Suite(
        "tests.support.source_conformance.SourceConformance",
        "world",
        {
            "sources.folder.FolderSource": ("tests.unit.test_source_conformance.TestFolderSource",),
            "sources.smb.SmbSource": ("tests.integration.test_source_conformance.TestSmbSource",),
            "sources.imap.ImapSource": (
                "tests.integration.test_source_conformance.TestImapSource",
            ),
        },
    ),
}

# Roles of a full store: every implementation of the role is a full store, whose suite checks
# the role's methods (test_every_role_is_only_implemented_by_full_stores makes sure).
COVERED_BY: dict[str, tuple[str, ...]] = {
    "stores.vectors.VectorWriter": ("stores.vectors.VectorStore",),
    "stores.vectors.VectorSearcher": ("stores.vectors.VectorStore",),
    "stores.vectors.VectorInspector": ("stores.vectors.VectorStore",),
    "stores.vectors.VectorCollections": ("stores.vectors.VectorStore",),
    "stores.graph.GraphWriter": ("stores.graph.GraphStore",),
    "stores.graph.GraphSearcher": ("stores.graph.GraphStore",),
    "stores.graph.GraphInspector": ("stores.graph.GraphStore",),
    "stores.Lifecycle": ("stores.vectors.VectorStore", "stores.graph.GraphStore"),
}

# Test doubles that implement a Protocol and run its suite (listed in REGISTRY's runs).
TEST_DOUBLES = ("tests.support.words_embedder",)


def resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@cache
def code_classes() -> dict[str, type]:
    """Every class defined in gedrag's packages (and the test doubles), by dotted path."""
    modules = [*TEST_DOUBLES]
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(name)
        modules += [m.name for m in pkgutil.walk_packages(package.__path__, f"{name}.")]
    found: dict[str, type] = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for attr, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module_name:
                found[f"{module_name}.{attr}"] = value
    return found


def is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


@cache
def protocols() -> dict[str, type]:
    return {
        name: cls
        for name, cls in code_classes().items()
        if is_protocol(cls) and not name.startswith(TEST_DOUBLES)
    }


def members(protocol: type) -> dict[str, bool]:
    """The public members a Protocol (and its bases) declares: name → whether it is a method
    (a property or an annotated attribute may be a plain attribute of an implementation)."""
    found: dict[str, bool] = {}
    for base in reversed(protocol.__mro__):
        if base in (object, typing.Protocol, typing.Generic):
            continue
        for name in getattr(base, "__annotations__", {}):
            found[name] = False
        for name, value in vars(base).items():
            found[name] = inspect.isfunction(value)
    return {n: method for n, method in found.items() if not n.startswith("_")}


def has_member(cls: type, name: str, method: bool) -> bool:
    """A method for a method; for an attribute: on the class, annotated on it, or assigned to
    ``self`` in one of its ``__init__``s (where the Protocol declares a read-only property)."""
    if method:
        return callable(inspect.getattr_static(cls, name, None))
    if hasattr(cls, name):
        return True
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*[:=]")
    for base in cls.__mro__:
        if name in getattr(base, "__annotations__", {}):
            return True
        init = vars(base).get("__init__")
        if init is not None and inspect.isfunction(init):
            try:
                if assigned.search(inspect.getsource(init)):
                    return True
            except OSError:
                continue
    return False


def implementations(protocol: type) -> set[str]:
    wanted = members(protocol)
    return {
        name
        for name, cls in code_classes().items()
        if not is_protocol(cls) and all(has_member(cls, m, f) for m, f in wanted.items())
    }


def test_every_protocol_has_a_conformance_suite() -> None:
    found = set(protocols())
    assert found, "no Protocol found: the walk of the packages is broken"
    missing = found - set(REGISTRY) - set(COVERED_BY)
    assert not missing, (
        f"Protocols without a conformance suite: {sorted(missing)}. Write a mixin in "
        "tests/support/<role>_conformance.py, run it on every implementation, and register "
        "it in REGISTRY here (or, for a narrower role of a full store, in COVERED_BY)."
    )
    stale = (set(REGISTRY) | set(COVERED_BY)) - found
    assert not stale, f"registered Protocols that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("protocol", sorted(REGISTRY))
def test_every_implementation_runs_the_suite(protocol: str) -> None:
    suite = REGISTRY[protocol]
    found = implementations(resolve(protocol))
    assert found, f"no implementation of {protocol} found: the structural check is broken"
    unlisted = found - set(suite.runs) - set(suite.exempt)
    assert not unlisted, (
        f"implementations of {protocol} that run no conformance suite: {sorted(unlisted)}; "
        f"add a test class running {suite.mixin} and list it in REGISTRY"
    )
    gone = (set(suite.runs) | set(suite.exempt)) - found
    assert not gone, f"listed as implementing {protocol} but do not (any more): {sorted(gone)}"


@pytest.mark.parametrize("protocol", sorted(REGISTRY))
def test_the_listed_test_classes_run_the_mixin(protocol: str) -> None:
    suite = REGISTRY[protocol]
    mixin = resolve(suite.mixin)
    abstract = inspect.getattr_static(mixin, suite.fixture)
    for implementation, test_classes in suite.runs.items():
        assert test_classes, f"{implementation}: no test class"
        for dotted in test_classes:
            cls = resolve(dotted)
            assert cls.__name__.startswith("Test"), f"{dotted}: pytest collects Test* only"
            assert issubclass(cls, mixin), f"{dotted} does not inherit {suite.mixin}"
            fixture = inspect.getattr_static(cls, suite.fixture)
            assert fixture is not abstract, f"{dotted} does not provide the {suite.fixture!r}"
            marks = getattr(importlib.import_module(cls.__module__), "pytestmark", [])
            tiers = {m.name for m in (marks if isinstance(marks, list) else [marks])}
            assert tiers & {"unit", "integration", "e2e"}, f"{dotted}: no tier marker"


@pytest.mark.parametrize("role", sorted(COVERED_BY))
def test_every_role_is_only_implemented_by_full_stores(role: str) -> None:
    """A class implementing a narrow role without being a full store would escape the
    full store's suite: it needs a suite (and a REGISTRY entry) of its own."""
    full = set().union(*(implementations(resolve(p)) for p in COVERED_BY[role]))
    partial = implementations(resolve(role)) - full
    assert not partial, (
        f"{sorted(partial)} implement {role} but not the full store: they run no suite"
    )
