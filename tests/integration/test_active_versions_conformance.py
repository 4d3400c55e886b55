"""ActiveVersions conformance (``tests/support/active_versions_conformance.py``) on the catalog's
version repository, the implementation retrieval reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stores.catalog import Catalog
from stores.catalog.versions import VersionRepository
from tests.support.active_versions_conformance import ActiveVersionsConformance

pytestmark = pytest.mark.integration


class TestCatalogVersions(ActiveVersionsConformance):
    @pytest.fixture
    def catalog(self, catalog_url: str) -> Iterator[Catalog]:
        catalog = Catalog(catalog_url)
        catalog.migrate()
        yield catalog
        catalog.dispose()

    @pytest.fixture
    def versions(self, catalog: Catalog) -> VersionRepository:
        return catalog.versions
