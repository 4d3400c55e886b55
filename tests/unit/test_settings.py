from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ConfigurationError
from core.settings import Settings
from retrieval.fusion import weights_for
from stores.catalog.database import normalise_url

pytestmark = pytest.mark.unit


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GEDRAG_DATA_DIR", "GEDRAG_CATALOG__URL", "GEDRAG_BROKER__URL"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.data_dir == Path("./var")
    assert s.catalog_url.startswith("sqlite:///") and s.catalog_url.endswith("var/catalog.db")
    assert s.embedded_broker and s.result_backend == "cache+memory://"
    assert s.api.max_upload_bytes == 100 * 1024 * 1024


def test_environment_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEDRAG_DATA_DIR", "/srv/gedrag")
    monkeypatch.setenv("GEDRAG_CATALOG__URL", "postgresql://u@db:5432/gedrag")
    monkeypatch.setenv("GEDRAG_BROKER__URL", "redis://redis:6379/0")
    monkeypatch.setenv("GEDRAG_API__MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("GEDRAG_CLIENT__API_KEY", "gdr_secret")
    s = Settings()
    assert s.data_dir == Path("/srv/gedrag")
    assert s.catalog_url == "postgresql://u@db:5432/gedrag"
    assert not s.embedded_broker and s.result_backend == "redis://redis:6379/0"
    assert s.api.max_upload_bytes == 1000
    assert s.client.api_key is not None
    assert "gdr_secret" not in repr(s)


def test_production_refuses_the_in_process_broker() -> None:
    with pytest.raises((ConfigurationError, ValidationError), match="real broker"):
        Settings(env="prod")
    assert Settings(env="prod", broker={"url": "redis://r:6379/0"}).env == "prod"  # type: ignore[arg-type]


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings(api={"max_upload_bytes": 0})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_use_psycopg3(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_fusion_weights_follow_the_query_language(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Settings().retrieval
    assert weights_for(r, "en").sentence > 0  # sentence scores count on English questions
    fr = weights_for(r, "fr")
    assert (fr.dense, fr.sparse, fr.graph, fr.sentence, fr.sentence_terms) == (
        r.dense_weight,
        r.sparse_weight,
        r.graph_weight,
        r.sentence_weight,
        r.sentence_terms_weight,
    )
    monkeypatch.setenv(
        "GEDRAG_RETRIEVAL__LANGUAGE_WEIGHTS",
        '{"fr": {"dense": 0.5, "sparse": 0.5, "graph": 0, "sentence": 0, "sentence_terms": 0}}',
    )
    r = Settings().retrieval
    assert weights_for(r, "fr").dense == 0.5
    # Replaced, not merged: English questions now take the *_weight fields.
    assert weights_for(r, "en").sentence == r.sentence_weight
    assert weights_for(r, "en").sentence_terms == r.sentence_terms_weight
    with pytest.raises(ValidationError, match="sentence"):
        Settings(retrieval={"language_weights": {"en": {"dense": 1, "sparse": 1, "graph": 0}}})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="greater than or equal"):
        Settings(retrieval={"sentence_weight": -1})  # type: ignore[arg-type]
