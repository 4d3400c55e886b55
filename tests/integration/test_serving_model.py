"""Which embedding model an installation serves with (issue #25), on SQLite and PostgreSQL.

A new installation starts with the release's default (multilingual-e5-small) and records it;
one made by an earlier release (documents, no record) keeps MiniLM and MiniLM's fusion weights,
so upgrading never queries MiniLM's vectors with e5's questions; an explicit setting wins and
records nothing; a model switch (`gedrag migrate reembed --model X --switch`) moves the record.
No model is loaded: only the settings are resolved.
"""

from __future__ import annotations

from typing import Any

import pytest

from core import ids
from core.settings import DEFAULT_EMBEDDING_MODEL, RetrievalSettings, Settings
from runtime import EARLIER_DEFAULT_MODEL, Runtime, serving_model
from stores.catalog import Catalog, NewVersion, migration_state

pytestmark = pytest.mark.integration


@pytest.fixture
def unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite pins MiniLM through the environment (conftest); these tests need it unset."""
    monkeypatch.delenv("GEDRAG_EMBEDDING__MODEL", raising=False)


def build(make_settings: Any, catalog_url: str) -> Runtime:
    return Runtime.build(make_settings(catalog_url))


def add_document(catalog: Catalog) -> None:
    tenant = catalog.tenants.create("acme").id
    catalog.collections.create(tenant, "default")
    content = b"Le contrat est signe."
    catalog.documents.create(
        tenant,
        "default",
        version=NewVersion(
            sha256=ids.sha256_hex(content),
            size_bytes=len(content),
            media_type="text/plain",
            filename="a.txt",
        ),
        title="a",
        tags=[],
        metadata={},
    )


@pytest.mark.usefixtures("unpinned")
def test_a_new_installation_serves_the_default_model_and_records_it(
    make_settings: Any, catalog_url: str
) -> None:
    rt = build(make_settings, catalog_url)
    try:
        assert DEFAULT_EMBEDDING_MODEL == "multilingual-e5-small"
        assert rt.settings.embedding.model == DEFAULT_EMBEDDING_MODEL
        assert rt.settings.retrieval == RetrievalSettings()  # the default model's weights
        recorded = migration_state.get_state(rt.catalog, migration_state.EMBEDDING_MODEL)
        assert recorded == {"model": DEFAULT_EMBEDDING_MODEL, "previous": None}
        # Documents added later do not change the model of the installation.
        add_document(rt.catalog)
        again = serving_model(make_settings(catalog_url), rt.catalog)
        assert again.embedding.model == DEFAULT_EMBEDDING_MODEL
    finally:
        rt.close()


@pytest.mark.usefixtures("unpinned")
def test_an_installation_made_by_an_earlier_release_keeps_minilm_and_its_weights(
    make_settings: Any, catalog_url: str
) -> None:
    catalog = Catalog(catalog_url)
    catalog.migrate()
    add_document(catalog)  # an earlier release: documents, no model recorded
    catalog.dispose()
    rt = build(make_settings, catalog_url)
    try:
        assert rt.settings.embedding.model == EARLIER_DEFAULT_MODEL == "all-MiniLM-L6-v2"
        r = rt.settings.retrieval
        assert (r.dense_weight, r.sparse_weight) == (0.2, 0.8)  # sparse-heavy: MiniLM is English
        assert r.language_weights["en"].sentence == 0.5
        recorded = migration_state.get_state(rt.catalog, migration_state.EMBEDDING_MODEL)
        assert recorded is not None and recorded["model"] == EARLIER_DEFAULT_MODEL
    finally:
        rt.close()


@pytest.mark.usefixtures("unpinned")
def test_the_record_of_a_switch_is_followed_and_an_explicit_setting_wins(
    make_settings: Any, catalog_url: str
) -> None:
    catalog = Catalog(catalog_url)
    catalog.migrate()
    add_document(catalog)
    # What `gedrag migrate reembed --model multilingual-e5-small --switch` writes.
    migration_state.put_state(
        catalog,
        migration_state.EMBEDDING_MODEL,
        {"model": "multilingual-e5-small", "previous": "all-MiniLM-L6-v2"},
    )
    resolved = serving_model(make_settings(catalog_url), catalog)
    assert resolved.embedding.model == "multilingual-e5-small"
    assert resolved.retrieval == RetrievalSettings()
    explicit = make_settings(
        catalog_url, embedding={"model": "all-MiniLM-L6-v2"}, retrieval={"top_k": 3}
    )
    kept = serving_model(explicit, catalog)
    assert kept.embedding.model == "all-MiniLM-L6-v2"
    assert kept.retrieval.sparse_weight == 0.8 and kept.retrieval.top_k == 3
    catalog.dispose()


def test_weights_set_explicitly_are_never_replaced_by_the_models() -> None:
    s = Settings(embedding={"model": "all-MiniLM-L6-v2"}, retrieval={"dense_weight": 0.7})  # type: ignore[arg-type]
    assert s.retrieval.dense_weight == 0.7 and s.retrieval.sparse_weight == 0.2
    moved = Settings(retrieval={"dense_weight": 0.7}).with_embedding_model("all-MiniLM-L6-v2")  # type: ignore[arg-type]
    assert moved.retrieval.dense_weight == 0.7
    back = Settings(embedding={"model": "all-MiniLM-L6-v2"}).with_embedding_model(  # type: ignore[arg-type]
        "multilingual-e5-small"
    )
    # Weights that came from a model follow the model: back to e5's, which are the defaults.
    assert back.retrieval == RetrievalSettings()
