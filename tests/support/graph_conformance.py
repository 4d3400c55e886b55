"""The graph store conformance suite: what every ``GraphStore`` implementation must do.

A reusable mixin, in the manner of haystack's ``haystack/testing/document_store.py``: a test
class for one implementation inherits :class:`GraphStoreConformance` and provides two fixtures,
``store`` (a set-up store on an empty graph, closed afterwards) and ``reopen`` (a function that
opens another store on the same data). The behaviour tests below then run against it; an
implementation adds its own tests beside them. Tests use a tenant of their own, so a shared
server holding other tenants' data changes nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

import pytest

from stores.graph import (
    DocumentLabels,
    GraphChunk,
    GraphEntity,
    GraphStore,
    LabelRef,
    VersionGraph,
)

Reopen = Callable[[], GraphStore]

E = {
    k: GraphEntity(key=k, name=k.upper(), kind="org")
    for k in ("acme", "faa", "globex", "lyon", "paris")
}


def version(tenant: str, doc: str, ver: str, chunks: Mapping[str, tuple[str, ...]]) -> VersionGraph:
    """A version of document ``doc`` of the tenant: chunk name → the entity keys it mentions."""
    used = {k for keys in chunks.values() for k in keys}
    return VersionGraph(
        tenant_id=tenant,
        document_id=f"{tenant}-{doc}",
        version_id=f"{tenant}-{doc}-{ver}",
        title=doc,
        chunks=[
            GraphChunk(id=f"{tenant}-{doc}-{ver}-{cid}", ordinal=i, entity_keys=keys)
            for i, (cid, keys) in enumerate(chunks.items())
        ],
        entities=[E[k] for k in sorted(used)],
    )


def moved(v: VersionGraph, tenant: str) -> VersionGraph:
    """The same version under another tenant (ids rewritten), as an import there would hold it."""
    return VersionGraph(
        tenant_id=tenant,
        document_id=v.document_id.replace(v.tenant_id, tenant),
        version_id=v.version_id.replace(v.tenant_id, tenant),
        title=v.title,
        chunks=[
            GraphChunk(
                id=c.id.replace(v.tenant_id, tenant), ordinal=c.ordinal, entity_keys=c.entity_keys
            )
            for c in v.chunks
        ],
        entities=v.entities,
    )


class GraphStoreConformance:
    """Behaviour every graph store shares. Subclasses provide ``store`` and ``reopen``."""

    @pytest.fixture
    def store(self) -> Iterator[GraphStore]:
        """A store, set up, on an empty graph; closed after the test."""
        raise NotImplementedError("a conformance class provides the store under test")

    @pytest.fixture
    def reopen(self, store: GraphStore) -> Reopen:
        """Opens another store (set up) on the data of ``store``; the caller closes it."""
        raise NotImplementedError("a conformance class says how to open its store again")

    @pytest.fixture
    def tenant(self) -> str:
        return f"t-{uuid.uuid4().hex[:8]}"

    # -- writes ------------------------------------------------------------------------------

    def test_upsert_is_idempotent_and_counts(self, store: GraphStore, tenant: str) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("acme", "lyon"), "c3": ()})
        store.upsert_version(v1)
        store.upsert_version(v1)
        counts = store.counts(tenant, v1.document_id)
        assert (counts.chunks, counts.mentions) == (3, 4)
        assert store.counts(tenant, v1.document_id, v1.version_id) == counts
        assert store.counts(tenant, v1.document_id, f"{v1.version_id}-other").chunks == 0
        assert store.entity_keys(tenant) == {"acme", "faa", "lyon"}
        assert store.relations(tenant) == {("acme", "faa"): 1, ("acme", "lyon"): 1}
        assert store.chunk_ids(tenant, v1.document_id) == {c.id for c in v1.chunks}

    def test_setup_twice_keeps_the_graph(self, store: GraphStore, tenant: str) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa")})
        store.upsert_version(v1)
        store.setup()
        assert store.export_document(tenant, v1.document_id) == [v1]

    def test_a_repeated_mention_counts_once(self, store: GraphStore, tenant: str) -> None:
        v = version(tenant, "d1", "v1", {"c1": ("acme", "acme", "faa")})
        store.upsert_version(v)
        assert store.counts(tenant, v.document_id).mentions == 2
        assert store.relations(tenant) == {("acme", "faa"): 1}

    def test_added_chunks_sit_beside_the_versions_others_until_an_upsert_replaces_them(
        self, store: GraphStore, tenant: str
    ) -> None:
        """A re-chunking adds its chunks to a version, then its switch keeps only them."""
        old = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",)})
        new = version(tenant, "d1", "v1", {"n1": ("acme",), "n2": ("faa", "paris")})
        store.upsert_version(old)
        store.add_chunks(new)
        store.add_chunks(new)  # idempotent
        counts = store.counts(tenant, old.document_id, old.version_id)
        assert (counts.chunks, counts.mentions) == (4, 6)
        assert store.chunk_ids(tenant, old.document_id) == {
            c.id for c in [*old.chunks, *new.chunks]
        }
        assert store.relations(tenant) == {("acme", "faa"): 1, ("faa", "paris"): 1}

        store.add_chunks(version(tenant, "d1", "v1", {"n2": ("lyon",)}))  # its mentions replaced
        assert store.counts(tenant, old.document_id).mentions == 5
        assert store.relations(tenant) == {("acme", "faa"): 1}
        assert store.entity_keys(tenant) == {"acme", "faa", "lyon"}  # paris: no mention left

        store.upsert_version(new)  # the switch: the version holds the new chunks only
        assert store.chunk_ids(tenant, old.document_id) == {c.id for c in new.chunks}
        assert store.entity_keys(tenant) == {"acme", "faa", "paris"}
        assert store.relations(tenant) == {("faa", "paris"): 1}

    def test_large_version_in_batches(self, store: GraphStore, tenant: str) -> None:
        """1,200 chunks: more than one batch of 1,000 in every statement that batches."""
        chunks = {f"c{i}": (("acme", "faa") if i % 2 else ("lyon",)) for i in range(1200)}
        v = version(tenant, "big", "v1", chunks)
        store.upsert_version(v)
        counts = store.counts(tenant, v.document_id)
        assert (counts.chunks, counts.mentions) == (1200, 1800)
        assert store.relations(tenant) == {("acme", "faa"): 600}
        store.delete_document(tenant, v.document_id)
        assert store.entity_keys(tenant) == set()

    def test_concurrent_writers_of_the_same_new_entities_all_land(
        self, store: GraphStore, tenant: str
    ) -> None:
        """Ingestion workers write at once: 4 writers, each round a version of its own naming the
        same two entities, new to the tenant, so every writer creates them at the same moment.
        Every write lands and each relation counts every writer's chunk."""
        writers, rounds = 4, 3
        start = threading.Barrier(writers)
        failures: list[str] = []

        def write(w: int) -> None:
            for r in range(rounds):
                keys = (f"new-{r}-a", f"new-{r}-b")
                v = VersionGraph(
                    tenant_id=tenant,
                    document_id=f"{tenant}-w{w}-r{r}",
                    version_id=f"{tenant}-w{w}-r{r}-v1",
                    title="race",
                    chunks=[GraphChunk(id=f"{tenant}-w{w}-r{r}-c1", ordinal=0, entity_keys=keys)],
                    entities=[GraphEntity(key=k, name=k, kind="org") for k in keys],
                )
                start.wait(60)
                try:
                    store.upsert_version(v)
                except Exception as exc:
                    failures.append(f"writer {w}, round {r}: {exc!r}")

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        assert store.relations(tenant) == {
            (f"new-{r}-a", f"new-{r}-b"): writers for r in range(rounds)
        }
        assert len(store.entity_keys(tenant)) == 2 * rounds

    # -- deletes and relation weights ---------------------------------------------------------

    def test_relation_weights_follow_documents(self, store: GraphStore, tenant: str) -> None:
        store.upsert_version(version(tenant, "d1", "v1", {"c1": ("acme", "faa")}))
        store.upsert_version(
            version(tenant, "d2", "v1", {"c1": ("acme", "faa"), "c2": ("faa", "acme", "lyon")})
        )
        assert store.relations(tenant) == {
            ("acme", "faa"): 3,
            ("acme", "lyon"): 1,
            ("faa", "lyon"): 1,
        }
        store.delete_document(tenant, f"{tenant}-d2")
        assert store.relations(tenant) == {("acme", "faa"): 1}
        assert store.entity_keys(tenant) == {"acme", "faa"}
        assert store.counts(tenant, f"{tenant}-d2").chunks == 0

    def test_deleting_a_version_lowers_the_weights_it_contributed(
        self, store: GraphStore, tenant: str
    ) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("acme", "faa")})
        v2 = version(tenant, "d1", "v2", {"c1": ("acme", "faa")})
        store.upsert_version(v1)
        store.upsert_version(v2)
        assert store.relations(tenant) == {("acme", "faa"): 3}
        store.delete_version(tenant, v1.document_id, v1.version_id)
        assert store.relations(tenant) == {("acme", "faa"): 1}
        store.delete_version(tenant, v1.document_id, v1.version_id)  # absent: no-op
        assert store.export_document(tenant, v1.document_id) == [v2]

    def test_new_version_replaces_old_and_orphans_go(self, store: GraphStore, tenant: str) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "paris")})
        v2 = version(tenant, "d1", "v2", {"c1": ("acme", "lyon")})
        store.upsert_version(v1)
        store.upsert_version(v2)
        assert store.counts(tenant, v1.document_id, v2.version_id).chunks == 1
        assert store.counts(tenant, v1.document_id).chunks == 2  # both until v1 is dropped
        store.delete_version(tenant, v1.document_id, v1.version_id)
        assert store.counts(tenant, v1.document_id).chunks == 1
        assert store.entity_keys(tenant) == {"acme", "lyon"}  # "paris" had no other mention
        assert store.relations(tenant) == {("acme", "lyon"): 1}
        store.delete_document(tenant, v1.document_id)
        assert store.entity_keys(tenant) == set()
        assert store.relations(tenant) == {}
        assert store.export_document(tenant, v1.document_id) == []
        assert v1.document_id not in dict(store.documents(None, 1000))
        store.delete_document(tenant, v1.document_id)  # absent: no-op

    # -- tenants ------------------------------------------------------------------------------

    def test_tenants_are_separate(self, store: GraphStore, tenant: str) -> None:
        other = f"{tenant}-other"
        mine = version(tenant, "d1", "v1", {"c1": ("acme", "faa")})
        store.upsert_version(mine)
        store.upsert_version(version(other, "d1", "v1", {"c1": ("acme",), "c2": ("acme",)}))
        assert store.relations(other) == {}
        assert store.expand(other, ["acme"], 10) == {f"{other}-d1-v1-c1": 1, f"{other}-d1-v1-c2": 1}
        assert store.expand(tenant, ["acme"], 10) == {mine.chunks[0].id: 1.5}
        # Another tenant's document is invisible, whatever the id asked.
        assert store.counts(other, mine.document_id).chunks == 0
        assert store.chunk_ids(other, mine.document_id) == set()
        assert store.export_document(other, mine.document_id) == []
        store.delete_document(other, mine.document_id)  # not theirs: nothing happens
        store.delete_version(other, mine.document_id, mine.version_id)
        assert store.export_document(tenant, mine.document_id) == [mine]
        store.delete_document(other, f"{other}-d1")
        assert store.entity_keys(tenant) == {"acme", "faa"}
        assert store.entity_keys(other) == set()
        assert store.relations(tenant) == {("acme", "faa"): 1}

    # -- graph expansion ----------------------------------------------------------------------

    def test_expansion_reaches_mentions_and_related_entities(
        self, store: GraphStore, tenant: str
    ) -> None:
        v = version(
            tenant,
            "d1",
            "v1",
            {
                "c1": ("acme", "faa"),
                "c2": ("faa",),
                "c3": ("lyon",),
                "c4": ("acme",),
                "c5": ("faa", "paris"),
                "c6": ("paris",),
            },
        )
        store.upsert_version(v)
        c = {int(ch.id.rsplit("-c", 1)[1]): ch.id for ch in v.chunks}
        # 1 per key mentioned, 0.5 per mentioned entity RELATED to a key: acme–faa (c1) and
        # faa–paris (c5); paris is two hops from acme, so c6 is not reached from acme.
        assert store.expand(tenant, ["acme"], limit=10) == {
            c[1]: 1.5,
            c[4]: 1.0,
            c[2]: 0.5,
            c[5]: 0.5,
        }
        both = store.expand(tenant, ["acme", "faa"], limit=10)
        # faa is a key itself, not a related entity: no double count; paris now is related.
        assert both == {c[1]: 2.0, c[5]: 1.5, c[2]: 1.0, c[4]: 1.0, c[6]: 0.5}
        assert list(both) == [c[1], c[5], c[2], c[4], c[6]]  # best first, ties by chunk id
        assert list(store.expand(tenant, ["acme", "faa"], limit=3)) == [c[1], c[5], c[2]]
        assert all(isinstance(s, float) for s in both.values())
        assert store.expand(tenant, [], limit=5) == {}
        assert store.expand(tenant, ["nobody"], limit=5) == {}
        assert store.expand(f"{tenant}-other", ["acme"], limit=5) == {}

    # -- access lists (issue #19) -------------------------------------------------------------

    def test_expansion_for_a_caller_traverses_only_what_it_may_read(
        self, store: GraphStore, tenant: str
    ) -> None:
        """HR's payslip mentions acme and faa; the public memo mentions acme and lyon. A Legal
        caller reaches the memo only, and faa is not related to acme for it (only the payslip,
        which it may not read, mentions both): neither the payslip's chunks nor its relation
        leak. The unrestricted expansion (``None``) still sees everything."""
        payslip = version(tenant, "payslip", "v1", {"p1": ("acme", "faa"), "p2": ("faa",)})
        memo = version(tenant, "memo", "v1", {"m1": ("acme", "lyon"), "m2": ("lyon",)})
        store.upsert_version(replace(payslip, readers=("group:hr",)))
        store.upsert_version(replace(memo, readers=("everyone",)))
        p1, p2 = (c.id for c in payslip.chunks)
        m1, m2 = (c.id for c in memo.chunks)
        legal = ["everyone", "user:legal-1", "group:legal"]
        assert store.expand(tenant, ["acme"], 10, legal) == {m1: 1.5, m2: 0.5}
        assert store.expand(tenant, ["faa"], 10, legal) == {}
        hr = ["everyone", "user:hr-1", "group:hr"]
        assert store.expand(tenant, ["acme"], 10, hr) == {p1: 1.5, m1: 1.5, p2: 0.5, m2: 0.5}
        assert store.expand(tenant, ["acme"], 10) == store.expand(tenant, ["acme"], 10, hr)
        assert store.expand(tenant, ["acme"], 10, []) == {}
        assert store.readers(tenant, payslip.document_id) == ("group:hr",)

    def test_readers_change_without_rewriting_and_stay_in_their_tenant(
        self, store: GraphStore, tenant: str
    ) -> None:
        doc = version(tenant, "contract", "v1", {"c1": ("globex",)})
        store.upsert_version(doc)  # no readers given: nobody reads it yet
        (c1,) = (c.id for c in doc.chunks)
        assert store.readers(tenant, doc.document_id) == ()
        assert store.expand(tenant, ["globex"], 5, ["everyone"]) == {}
        store.set_readers(tenant, doc.document_id, ["group:legal", "user:u1", "group:legal"])
        assert store.readers(tenant, doc.document_id) == ("group:legal", "user:u1")
        assert store.expand(tenant, ["globex"], 5, ["group:legal"]) == {c1: 1.0}
        store.set_readers(tenant, doc.document_id, ["group:hr"])  # the next query sees it
        assert store.expand(tenant, ["globex"], 5, ["group:legal"]) == {}
        # A new version keeps the document's readers; another tenant cannot change them.
        store.upsert_version(version(tenant, "contract", "v2", {"c9": ("globex",)}))
        store.set_readers(f"{tenant}-other", doc.document_id, ["everyone"])
        assert store.readers(tenant, doc.document_id) == ("group:hr",)
        assert store.readers(f"{tenant}-other", doc.document_id) == ()
        store.set_readers(tenant, "no-such-document", ["everyone"])  # a no-op
        assert store.readers(tenant, "no-such-document") == ()
        exported = store.export_document(tenant, doc.document_id)
        assert {v.readers for v in exported} == {("group:hr",)}
        store.delete_document(tenant, doc.document_id)
        assert store.readers(tenant, doc.document_id) == ()

    # -- inspection, export and import --------------------------------------------------------

    def test_export_rebuilds_the_document_elsewhere_and_documents_page_by_id(
        self, store: GraphStore, tenant: str
    ) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",), "c3": ()})
        v2 = version(tenant, "d1", "v2", {"c1": ("paris",)})
        store.upsert_version(v1)
        store.upsert_version(v2)
        store.upsert_version(version(tenant, "d2", "v1", {"c1": ("acme",)}))
        exported = store.export_document(tenant, v1.document_id)
        assert exported == sorted([v1, v2], key=lambda v: v.version_id)
        assert store.export_document(f"{tenant}-other", v1.document_id) == []

        # Upserting the export under another tenant rebuilds the same graph there.
        other = f"{tenant}-copy"
        for v in exported:
            store.upsert_version(moved(v, other))
        assert store.export_document(other, f"{other}-d1") == [moved(v, other) for v in exported]
        assert store.relations(other) == {("acme", "faa"): 1}
        assert store.entity_keys(other) == {"acme", "faa", "lyon", "paris"}
        assert store.counts(other, f"{other}-d1") == store.counts(tenant, v1.document_id)

        mine = {f"{tenant}-d1", f"{tenant}-d2", f"{other}-d1"}
        seen: list[tuple[str, str]] = []
        after = None
        while batch := store.documents(after, 1):
            seen.extend(batch)
            after = batch[-1][0]
        ids = [d for d, _ in seen]
        assert ids == sorted(ids) and len(ids) == len(set(ids))  # by id, no repeat, no skip
        assert {(d, t) for d, t in seen if d in mine} == {
            (f"{tenant}-d1", tenant),
            (f"{tenant}-d2", tenant),
            (f"{other}-d1", other),
        }
        assert store.documents(ids[-1], 10) == []

    def test_an_export_imports_into_another_implementation(
        self, store: GraphStore, tenant: str, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Round trip through the embedded store: what one store exports, another rebuilds
        identically, and its export comes back unchanged."""
        from stores.catalog import Catalog
        from stores.graph.relational import RelationalGraphStore

        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",), "c3": ()})
        v2 = version(tenant, "d1", "v2", {"c1": ("acme", "paris")})
        store.upsert_version(v1)
        store.upsert_version(v2)
        url = f"sqlite:///{tmp_path_factory.mktemp('graph') / 'import.db'}"
        other = RelationalGraphStore(Catalog(url), owns=True)
        other.setup()
        try:
            for v in store.export_document(tenant, v1.document_id):
                other.upsert_version(v)
            assert other.export_document(tenant, v1.document_id) == store.export_document(
                tenant, v1.document_id
            )
            assert other.relations(tenant) == store.relations(tenant)
            store.delete_document(tenant, v1.document_id)
            for v in other.export_document(tenant, v1.document_id):
                store.upsert_version(v)
            assert store.export_document(tenant, v1.document_id) == [v1, v2]
        finally:
            other.close()

    # -- sorting labels (issue #17) -----------------------------------------------------------

    def test_labels_link_a_document_to_its_type_and_correspondents(
        self, store: GraphStore, tenant: str
    ) -> None:
        v = version(tenant, "d1", "v1", {"c1": ("acme",)})
        store.upsert_version(v)
        doc = v.document_id
        assert store.labels(tenant, doc) == DocumentLabels()
        invoice = DocumentLabels(
            document_type=LabelRef("invoice", "Facture"),
            issuer=LabelRef("acme", "ACME SARL"),
            recipient=LabelRef("globex", "Globex SA"),
        )
        store.set_labels(tenant, doc, invoice)
        store.set_labels(tenant, doc, invoice)  # idempotent
        assert store.labels(tenant, doc) == invoice
        # Replaced whole: a corrected type, the recipient taken away.
        quote = DocumentLabels(document_type=LabelRef("quote", "Devis"), issuer=invoice.issuer)
        store.set_labels(tenant, doc, quote)
        assert store.labels(tenant, doc) == quote
        # Two documents share one type node: each keeps its own links.
        other = version(tenant, "d2", "v1", {"c1": ()})
        store.upsert_version(other)
        store.set_labels(tenant, other.document_id, DocumentLabels(LabelRef("quote", "Devis")))
        assert store.labels(tenant, other.document_id).document_type == LabelRef("quote", "Devis")
        assert store.labels(tenant, doc) == quote
        store.set_labels(tenant, doc, DocumentLabels())
        assert store.labels(tenant, doc) == DocumentLabels()
        assert store.labels(tenant, other.document_id).document_type is not None

    def test_labels_stay_in_their_tenant_and_leave_with_the_document(
        self, store: GraphStore, tenant: str
    ) -> None:
        v = version(tenant, "d1", "v1", {"c1": ("acme",)})
        store.upsert_version(v)
        labels = DocumentLabels(LabelRef("invoice", "Invoice"), LabelRef("acme", "ACME"))
        store.set_labels(tenant, v.document_id, labels)
        intruder = f"{tenant}-other"
        assert store.labels(intruder, v.document_id) == DocumentLabels()
        store.set_labels(intruder, v.document_id, DocumentLabels())  # not theirs: nothing
        assert store.labels(tenant, v.document_id) == labels
        store.set_labels(tenant, f"{tenant}-nope", labels)  # no such document: nothing
        assert store.labels(tenant, f"{tenant}-nope") == DocumentLabels()
        store.delete_version(tenant, v.document_id, v.version_id)  # a version: labels stay
        assert store.labels(tenant, v.document_id) == labels
        store.delete_document(tenant, v.document_id)
        assert store.labels(tenant, v.document_id) == DocumentLabels()

    # -- lifecycle ----------------------------------------------------------------------------

    def test_ping_answers(self, store: GraphStore) -> None:
        store.ping()

    def test_close_twice_and_another_store_sees_the_writes(
        self, store: GraphStore, reopen: Reopen, tenant: str
    ) -> None:
        v = version(tenant, "d1", "v1", {"c1": ("acme", "faa")})
        first = reopen()
        first.upsert_version(v)
        first.close()
        first.close()  # idempotent
        second = reopen()
        try:
            assert second.export_document(tenant, v.document_id) == [v]
            assert store.export_document(tenant, v.document_id) == [v]
        finally:
            second.close()
