"""ActiveVersions conformance: what retrieval's port to the catalog
(``retrieval.stages.ActiveVersions``) must answer, so that readers only ever see a document's
active version.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides ``versions`` (the implementation under test) and ``catalog`` (the catalog
it reads, used to set up documents); every test here then runs against it.
``tests/integration/test_active_versions_conformance.py`` runs it on the catalog's version
repository on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest

from core import ids
from retrieval.stages import ActiveVersions
from stores.catalog import Catalog, NewVersion


def new_version(content: str) -> NewVersion:
    return NewVersion(
        sha256=ids.sha256_hex(content.encode()),
        size_bytes=len(content),
        media_type="text/plain",
        filename="doc.txt",
    )


class ActiveVersionsConformance:
    """Subclasses provide ``versions`` and ``catalog``."""

    @pytest.fixture
    def catalog(self) -> Catalog:
        raise NotImplementedError("a subclass provides the catalog the implementation reads")

    @pytest.fixture
    def versions(self, catalog: Catalog) -> ActiveVersions:
        raise NotImplementedError("a subclass provides the implementation under test")

    def tenant(self, catalog: Catalog) -> str:
        return catalog.tenants.create(f"t-{uuid.uuid4().hex[:8]}").id

    def document(self, catalog: Catalog, tenant: str, content: str) -> tuple[str, str]:
        """A new document's id and its first version's id (queued, not active yet)."""
        doc, job = catalog.documents.create(
            tenant, "c", title=content, tags=[], metadata={}, version=new_version(content)
        )
        assert job.version_id is not None
        return doc.id, job.version_id

    def test_the_active_version_of_each_live_document(
        self, versions: ActiveVersions, catalog: Catalog
    ) -> None:
        tenant = self.tenant(catalog)
        a, a1 = self.document(catalog, tenant, "a")
        b, b1 = self.document(catalog, tenant, "b")
        queued, _ = self.document(catalog, tenant, "queued")  # never indexed: no active version
        catalog.versions.activate(a1, chunk_count=1)
        catalog.versions.activate(b1, chunk_count=1)
        assert versions.active(tenant, [a, b, queued, "no-such-document"]) == {a: a1, b: b1}
        assert versions.active(tenant, [b]) == {b: b1}
        assert versions.active(tenant, []) == {}

    def test_a_new_version_is_seen_once_active(
        self, versions: ActiveVersions, catalog: Catalog
    ) -> None:
        tenant = self.tenant(catalog)
        a, a1 = self.document(catalog, tenant, "a")
        catalog.versions.activate(a1, chunk_count=1)
        _, job = catalog.documents.add_version(tenant, a, new_version("a, edited"))
        assert job.version_id is not None
        assert versions.active(tenant, [a]) == {a: a1}  # the new one is still being indexed
        catalog.versions.activate(job.version_id, chunk_count=1)
        assert versions.active(tenant, [a]) == {a: job.version_id}

    def test_documents_being_deleted_and_other_tenants_are_left_out(
        self, versions: ActiveVersions, catalog: Catalog
    ) -> None:
        tenant, other = self.tenant(catalog), self.tenant(catalog)
        a, a1 = self.document(catalog, tenant, "a")
        b, b1 = self.document(catalog, tenant, "b")
        theirs, t1 = self.document(catalog, other, "theirs")
        for v in (a1, b1, t1):
            catalog.versions.activate(v, chunk_count=1)
        catalog.documents.request_delete(tenant, b)
        assert versions.active(tenant, [a, b, theirs]) == {a: a1}
        assert versions.active(other, [a, theirs]) == {theirs: t1}
