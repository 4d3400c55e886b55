"""The catalog's behaviour, on SQLite and on the real PostgreSQL server (one suite, both engines)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core import ids
from core.domain import ChunkRecord, DocumentFilter, DocumentStatus, JobKind, JobState
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from stores.catalog import Catalog, NewVersion, staging
from stores.catalog.models import Base

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    cat = Catalog(catalog_url)
    cat.migrate()
    yield cat
    cat.dispose()


def version(content: str, name: str = "a.txt") -> NewVersion:
    return NewVersion(
        sha256=ids.sha256_hex(content.encode()),
        size_bytes=len(content),
        media_type="text/plain",
        filename=name,
    )


def new_doc(cat: Catalog, tenant: str, content: str, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"title": content[:20], "tags": [], "metadata": {}}
    args.update(kw)
    collection = str(args.pop("collection", "default"))
    return cat.documents.create(tenant, collection, version=version(content), **args)  # type: ignore[arg-type]


def test_migrations_are_idempotent(catalog: Catalog) -> None:
    catalog.migrate()
    with catalog.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"tenants", "api_keys", "documents", "document_versions", "jobs"} <= tables


def test_tenants_and_keys(catalog: Catalog) -> None:
    tenant = catalog.tenants.create("acme")
    assert tenant.id == ids.tenant_id("acme")
    with pytest.raises(Conflict):
        catalog.tenants.create("acme")
    key, info = catalog.tenants.create_key("acme", "ci")
    assert catalog.tenants.authenticate(key).name == "acme"
    assert info.prefix == key[:12]
    with catalog.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all()
    assert key not in stored and ids.hash_api_key(key) in stored
    catalog.tenants.revoke_key(info.id)
    with pytest.raises(Unauthorized):
        catalog.tenants.authenticate(key)
    with pytest.raises(Unauthorized):
        catalog.tenants.authenticate("gdr_forged")
    with pytest.raises(NotFound):
        catalog.tenants.create_key("nobody")


def test_document_lifecycle(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    doc, job = new_doc(catalog, t, "first", tags=["b", "a"], metadata={"dept": "hr"})
    assert doc.id == ids.document_id(t, ids.collection_id(t, "default"), version("first").sha256)
    assert (doc.status, doc.current_version, doc.tags) == (DocumentStatus.QUEUED, 1, ["a", "b"])
    assert (job.kind, job.state, job.version_id) == (
        JobKind.INGEST,
        JobState.QUEUED,
        doc.versions[0].id,
    )

    assert catalog.documents.find_by_content(t, "default", version("first").sha256) == doc
    assert catalog.documents.find_by_content(t, "other", version("first").sha256) is None

    catalog.versions.set_status(job.version_id or "", DocumentStatus.READY, chunk_count=3)
    doc2, _ = catalog.documents.add_version(t, doc.id, version("second"))
    assert doc2.current_version == 2 and doc2.status == DocumentStatus.QUEUED
    assert [v.number for v in doc2.versions] == [1, 2]
    assert catalog.versions.get(t, doc.id, 1).chunk_count == 3
    assert catalog.versions.get(t, doc.id).sha256 == version("second").sha256
    # a finishing *old* version does not change the document's status
    catalog.versions.set_status(doc2.versions[0].id, DocumentStatus.FAILED)
    assert catalog.documents.get(t, doc.id).status == DocumentStatus.QUEUED

    updated = catalog.documents.update(t, doc.id, tags=["z"], metadata={"k": [1, 2]})
    assert updated.tags == ["z"] and updated.metadata == {"k": [1, 2]}

    del_job = catalog.documents.request_delete(t, doc.id)
    assert catalog.documents.request_delete(t, doc.id).id == del_job.id  # asking twice: same job
    assert catalog.documents.get(t, doc.id).status == DocumentStatus.DELETING
    with pytest.raises(Conflict):
        catalog.documents.add_version(t, doc.id, version("third"))
    assert catalog.documents.exclusive_blobs(doc.id) == sorted(
        [(t, version("first").sha256), (t, version("second").sha256)], key=lambda x: x[1]
    )
    catalog.documents.purge(doc.id)
    with pytest.raises(NotFound):
        catalog.documents.get(t, doc.id)
    assert catalog.jobs.load(del_job.id).document_id == doc.id  # jobs outlive documents


def test_shared_content_is_not_exclusive(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    a, _ = new_doc(catalog, t, "same", collection="c1")
    b, _ = new_doc(catalog, t, "same", collection="c2")
    assert a.id != b.id
    assert catalog.documents.exclusive_blobs(a.id) == []


def test_tenants_never_see_each_other(catalog: Catalog) -> None:
    t1 = catalog.tenants.create("one").id
    t2 = catalog.tenants.create("two").id
    doc, job = new_doc(catalog, t1, "secret")
    for call in (
        lambda: catalog.documents.get(t2, doc.id),
        lambda: catalog.documents.update(t2, doc.id, tags=["x"]),
        lambda: catalog.documents.request_delete(t2, doc.id),
        lambda: catalog.documents.add_version(t2, doc.id, version("v2")),
        lambda: catalog.jobs.get(t2, job.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert catalog.documents.page(t2, DocumentFilter(), cursor=None, limit=10).items == []
    assert catalog.documents.find_by_content(t2, "default", version("secret").sha256) is None


def test_listing_filters_and_cursor_pages(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    made = []
    for i in range(7):
        doc, _ = new_doc(
            catalog,
            t,
            f"doc {i}",
            title=f"Rapport 100% n°{i}" if i % 2 else f"Note_{i}",
            tags=["even"] if i % 2 == 0 else ["odd"],
            metadata={"i": i, "dept": "hr" if i < 3 else "it"},
            collection="c1" if i < 5 else "c2",
        )
        made.append(doc.id)
    seen, cursor = [], None
    while True:
        page = catalog.documents.page(t, DocumentFilter(), cursor=cursor, limit=3)
        seen += [d.id for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))

    def ids_for(**kw: object) -> set[str]:
        page = catalog.documents.page(t, DocumentFilter(**kw), cursor=None, limit=100)  # type: ignore[arg-type]
        return {d.id for d in page.items}

    assert ids_for(collection="c2") == set(made[5:])
    assert ids_for(tag="odd") == {made[1], made[3], made[5]}
    assert ids_for(metadata={"dept": "hr"}) == set(made[:3])
    assert ids_for(metadata={"dept": "hr", "i": 1}) == {made[1]}
    assert ids_for(metadata={"i": "1"}) == set()  # JSON types matter: "1" is not 1
    assert ids_for(title_contains="rapport") == {made[1], made[3], made[5]}
    assert ids_for(title_contains="100%") == {made[1], made[3], made[5]}
    assert ids_for(title_contains="_") == {made[0], made[2], made[4], made[6]}
    assert ids_for(status=DocumentStatus.READY) == set()
    with pytest.raises(InvalidInput) as err:
        catalog.documents.page(t, DocumentFilter(), cursor="not-a-cursor!", limit=3)
    assert err.value.field == "cursor"


def test_collections(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    catalog.collections.create(t, "contracts", "signed contracts")
    with pytest.raises(Conflict):
        catalog.collections.create(t, "contracts")
    new_doc(catalog, t, "x", collection="contracts")
    new_doc(catalog, t, "y", collection="auto-created")
    listed = {c.name: c.document_count for c in catalog.collections.of_tenant(t)}
    assert listed == {"auto-created": 1, "contracts": 1}
    with pytest.raises(Conflict, match="still holds 1"):
        catalog.collections.delete(t, "contracts")
    catalog.collections.create(t, "empty")
    catalog.collections.delete(t, "empty")
    with pytest.raises(NotFound):
        catalog.collections.delete(t, "empty")
    with pytest.raises(InvalidInput):
        catalog.collections.create(t, "  ")


def test_jobs(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    _, job = new_doc(catalog, t, "x")
    assert [j.id for j in catalog.jobs.unfinished()] == [job.id]
    running = catalog.jobs.update(job.id, state=JobState.RUNNING, progress=1.7, new_attempt=True)
    assert (running.state, running.progress, running.attempts) == (JobState.RUNNING, 1.0, 1)
    catalog.jobs.update(job.id, state=JobState.FAILED, error="no extractable text")
    assert catalog.jobs.get(t, job.id).error == "no extractable text"
    assert catalog.jobs.unfinished() == []


def chunk(doc_id: str, version_id: str, tenant: str, name: str, ordinal: int) -> ChunkRecord:
    return ChunkRecord(
        id=ids.stable_uuid(version_id, name),
        tenant_id=tenant,
        document_id=doc_id,
        version_id=version_id,
        ordinal=ordinal,
        text=f"text {name}",
        section_path=("Title", name),
        page_start=None,
        page_end=None,
        language="en",
        token_count=3,
    )


def test_staged_chunk_records_swap_with_the_catalogs_in_one_step(catalog: Catalog) -> None:
    """A re-chunking's records (Alembic 0005): staged, swapped in, kept, swapped back, and gone
    with their document."""
    tenant = catalog.tenants.create("acme").id
    doc, _ = new_doc(catalog, tenant, "alpha")
    other, _ = new_doc(catalog, tenant, "beta")
    v, w = doc.versions[0].id, other.versions[0].id
    old = [chunk(doc.id, v, tenant, n, i) for i, n in enumerate(("a", "b"))]
    new = [chunk(doc.id, v, tenant, n, i) for i, n in enumerate(("x", "y", "z"))]
    catalog.chunks.replace(v, old)
    catalog.versions.activate(v, chunk_count=2)
    catalog.chunks.replace(w, [chunk(other.id, w, tenant, "c", 0)])  # not active yet
    staging.stage(catalog, "new", v, new)
    staging.stage(catalog, "new", v, new)  # idempotent
    staging.stage(catalog, "new", w, [chunk(other.id, w, tenant, "w", 0)])
    assert staging.counts(catalog) == {"new": 4}
    assert staging.staged_chunks(catalog, "new", v) == new
    assert set(staging.active_versions(catalog)) == {v}
    expected = staging.expected_points(catalog, "new")  # staged rows replace the catalog's
    assert set(expected) == {c.id for c in new} | {ids.stable_uuid(w, "w")}

    assert staging.swap(catalog, take="new", keep="old") == [v]  # w is not active: dropped
    assert catalog.chunks.of_version(v) == new
    assert catalog.versions.get(tenant, doc.id).chunk_count == 3
    assert staging.staged_chunks(catalog, "old", v) == old
    assert staging.counts(catalog) == {"old": 2}
    assert staging.ahead(catalog, {"old"}) == {}

    assert staging.swap(catalog, take="old", keep="new") == [v]  # a rollback
    assert catalog.chunks.of_version(v) == old
    assert staging.staged_chunks(catalog, "new", v) == new
    assert staging.ahead(catalog, {"old"}) == {v: {c.id for c in new}}

    catalog.documents.purge(doc.id)
    assert staging.counts(catalog) == {}
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "staged_chunks" in repr(d)] == []
