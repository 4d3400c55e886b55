"""Shared fixtures: settings in a temporary data dir, and the catalog on every engine.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) are real servers. When
one is unreachable its tests skip and say why, except under ``GEDRAG_TEST_REQUIRE_SERVICES=1``
(set by CI), where they fail: a green CI must not hide a missing service.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from core.settings import BrokerSettings, CatalogSettings, Settings
from tests.support.bolt_server import neo4j, neo4j_server  # noqa: F401  (fixtures)
from tests.support.mailshare import imap, imap_server, smb, smb_server  # noqa: F401  (fixtures)

for _name, _value in (
    ("DO_NOT_TRACK", "1"),
    ("SCARF_NO_ANALYTICS", "true"),
    ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    # The suite's pipelines embed with MiniLM, the fastest packaged model on 2 cores; the tests
    # that run a new installation's default (multilingual-e5-small) unset this one. Converted
    # models (e5, ~20 s once) are kept for every test and every run in one folder.
    ("GEDRAG_EMBEDDING__MODEL", "all-MiniLM-L6-v2"),
    ("GEDRAG_EMBEDDING__MODELS_DIR", str(Path(__file__).resolve().parents[1] / "var" / "models")),
):
    os.environ.setdefault(_name, _value)

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
POSTGRES_URL = os.environ.get(
    "GEDRAG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GEDRAG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("GEDRAG_TEST_REQUIRE_SERVICES") == "1"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port} (run `make services`)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"gd_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The catalog on each engine gedrag supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings rooted in a temporary folder, with a unique in-process queue per test."""

    def make(catalog_url: str | None = None, **overrides: object) -> Settings:
        broker = BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}")
        values: dict[str, object] = {
            "data_dir": tmp_path / "var",
            "catalog": CatalogSettings(url=catalog_url),
            "broker": broker,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make
