"""Sorting's catalog aggregate on SQLite and PostgreSQL: the migration matches the models and
downgrades, records and their typed field rows filter the document listing, the review queue
pages, labels feed the examples, and a record leaves with its document."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from core import ids
from core.domain import DocumentFilter, FieldCondition
from core.errors import NotFound
from stores.catalog import Catalog, NewVersion
from stores.catalog.database import MIGRATIONS
from stores.catalog.models import Base
from stores.catalog.sorting import FieldValue, SortingEvent, SortingRecord

pytestmark = pytest.mark.integration

MINE = ("sorting_", "graph_document_labels")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog(catalog_url)
    cat.migrate()
    yield cat
    cat.dispose()


def new_doc(cat: Catalog, tenant: str, content: str) -> str:
    doc, _ = cat.documents.create(
        tenant,
        "inbox",
        title=content,
        tags=[],
        metadata={},
        version=NewVersion(ids.sha256_hex(content.encode()), len(content), "text/plain", "a.txt"),
    )
    return doc.id


def record(tenant: str, doc: str, **kw: object) -> SortingRecord:
    values: dict[str, object] = {
        "tenant_id": tenant,
        "document_id": doc,
        "version_id": None,
        "state": "review",
        "document_type": None,
        "issuer": None,
        "recipient": None,
        "tags": [],
        "fields": {},
        "confidence": 0.5,
        "reason": "classifier",
        "detail": {},
        "features": {"terms": {"1": 1.0}},
        "label": None,
        "decided_by": "auto",
    }
    values.update(kw)
    return SortingRecord(**values)  # type: ignore[arg-type]


def test_the_migration_matches_the_models_and_goes_down(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in MINE)] == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    tables = set(sa.inspect(catalog.engine).get_table_names())
    assert not {t for t in tables if t.startswith(MINE)}
    catalog.migrate()
    tables = set(sa.inspect(catalog.engine).get_table_names())
    assert {"sorting_documents", "sorting_fields", "graph_document_labels"} <= tables


def test_records_filter_the_listing_by_type_correspondent_and_fields(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    other = catalog.tenants.create("globex").id
    a, b, c = (new_doc(catalog, t, x) for x in ("invoice a", "invoice b", "contract c"))
    theirs = new_doc(catalog, other, "their invoice")
    repo = catalog.sorting
    repo.save(
        record(t, a, state="applied", document_type="invoice", issuer="acme-sarl"),
        [FieldValue("total_ttc", 120.0, None), FieldValue("reference", None, "F-1")],
    )
    repo.save(
        record(t, b, state="applied", document_type="invoice", recipient="acme-sarl"),
        [FieldValue("total_ttc", 80.5, None), FieldValue("date", 1.7e9, "2023-11-14")],
    )
    repo.save(record(t, c, state="review"), [FieldValue("reference", None, "C-9")])
    repo.save(record(other, theirs, state="applied", document_type="invoice"), [])

    def listed(**kw: object) -> set[str]:
        page = catalog.documents.page(t, DocumentFilter(**kw), cursor=None, limit=50)  # type: ignore[arg-type]
        return {d.id for d in page.items}

    assert listed() == {a, b, c}
    assert listed(document_type="invoice") == {a, b}
    assert listed(correspondent="acme-sarl") == {a, b}
    assert listed(fields=(FieldCondition("total_ttc", "gte", 100.0),)) == {a}
    assert listed(fields=(FieldCondition("total_ttc", "lt", 100.0),)) == {b}
    assert listed(fields=(FieldCondition("reference", "eq", "C-9"),)) == {c}
    both = (FieldCondition("total_ttc", "gt", 0.0), FieldCondition("date", "lte", 1.8e9))
    assert listed(fields=both) == {b}
    assert (
        listed(document_type="invoice", fields=(FieldCondition("reference", "eq", "C-9"),)) == set()
    )
    # Saving again replaces the field rows.
    repo.save(record(t, a, state="applied", document_type="invoice"), [])
    assert listed(fields=(FieldCondition("total_ttc", "gte", 100.0),)) == set()


def test_queue_examples_labels_events_and_cascade(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    docs = [new_doc(catalog, t, f"doc {i}") for i in range(5)]
    repo = catalog.sorting
    assert repo.settings(t).examples_version == 0
    for i, d in enumerate(docs):
        label = "invoice" if i < 3 else None
        event = SortingEvent(
            ids.new_id(), d, datetime.now(UTC), "api", "correct", 1.0, "user", {"x": 1}, {"y": 2}
        )
        repo.save(
            record(t, d, state="review" if label is None else "confirmed", label=label),
            [],
            event=event,
            examples_changed=label is not None,
        )
    assert repo.settings(t).examples_version == 3
    assert len(repo.examples(t, per_label=2)) == 2
    assert {label for label, _ in repo.examples(t, per_label=10)} == {"invoice"}
    assert repo.counts(t) == {"confirmed": 3, "review": 2}
    first = repo.page(t, state="review", cursor=None, limit=1)
    second = repo.page(t, state="review", cursor=first.next_cursor, limit=1)
    assert len(first.items) == len(second.items) == 1 and second.next_cursor is None
    assert {first.items[0].document_id, second.items[0].document_id} == set(docs[3:])
    assert repo.events(t, docs[0])[0].before == {"x": 1}
    assert repo.clear_labels(t) == 3 and repo.examples(t, per_label=10) == []
    assert repo.settings(t).examples_version == 4
    catalog.documents.purge(docs[0])
    assert repo.get(t, docs[0]) is None  # the record went with its document
    assert repo.events(t, docs[0]) != []  # the history stays
    with pytest.raises(NotFound):
        repo.save(record(t, docs[0]), [])


def test_vocabulary_entries_are_per_tenant(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    other = catalog.tenants.create("globex").id
    repo = catalog.sorting
    _, created = repo.put_entry(t, {"kind": "type", "key": "invoice", "name": "Facture"})
    _, again = repo.put_entry(t, {"kind": "type", "key": "invoice", "name": "Invoice"})
    assert created and not again
    assert repo.entries(t) == [{"kind": "type", "key": "invoice", "name": "Invoice"}]
    assert repo.entries(other) == []
    with pytest.raises(NotFound):
        repo.delete_entry(other, "type", "invoice")
    repo.delete_entry(t, "type", "invoice")
    assert repo.entries(t) == []
    assert repo.set_settings(t, threshold=0.9).threshold == 0.9
    assert repo.set_settings(t, clear_threshold=True).threshold is None
