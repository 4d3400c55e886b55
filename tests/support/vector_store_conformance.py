"""VectorStore conformance: the behaviour every implementation owes its callers.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``store`` fixture (a store on a fresh collection that does not exist
yet), ``reopen`` (the same collection through a new connection or process-level open) and
``make_without_sentences`` (a collection as an earlier gedrag made it); every test here then
runs against it. ``tests/integration/test_vector_store.py`` runs it on Qdrant Edge (embedded)
and on a Qdrant server when ``GEDRAG_QDRANT__URL`` is set.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from core import ids
from core.errors import ConfigurationError
from stores.vectors import SearchFilter, VectorPoint, VectorStore


def point(
    tenant: str,
    doc: str,
    version: str,
    i: int,
    tags: list[str] | None = None,
    **payload: Any,
) -> VectorPoint:
    return VectorPoint(
        id=ids.stable_uuid(tenant, doc, version, str(i)),
        dense=[1.0, float(i), 0.5, 0.0],
        sparse_indices=[i, 1000 + i],
        sparse_values=[1.0, 0.5],
        payload={
            "tenant_id": tenant,
            "document_id": doc,
            "version_id": version,
            "tags": tags or [],
            **payload,
        },
    )


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def idf(n: int, df: int) -> float:
    """The IDF Qdrant applies to sparse vectors (``Modifier.IDF``)."""
    return math.log((n - df + 0.5) / (df + 0.5) + 1)


class VectorStoreConformance:
    """Subclasses provide the ``store`` fixture and the two helpers below."""

    @pytest.fixture
    def store(self) -> VectorStore:
        raise NotImplementedError("a subclass provides the store under test")

    def reopen(self, store: VectorStore) -> VectorStore:
        """Close ``store`` and open its collection again, as a restarted process would."""
        raise NotImplementedError

    def make_without_sentences(self, store: VectorStore, dim: int) -> None:
        """Create the store's collection without the sentence multivector (an earlier gedrag's
        layout)."""
        raise NotImplementedError

    # -- writes ------------------------------------------------------------------------------

    def test_upsert_count_delete(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        store.ensure_collection(4)  # once is enough; again is a no-op
        assert store.dim() == 4
        pts = [point("t1", "d1", "v1", i) for i in range(5)] + [
            point("t1", "d1", "v2", i) for i in range(3)
        ]
        store.upsert(pts)
        store.upsert(pts)  # same ids: overwritten, not duplicated
        assert store.count("t1", "d1") == 8
        assert store.count("t1", "d1", "v2") == 3
        assert store.count("t2", "d1") == 0
        assert store.point_ids("t1", "d1") == {p.id for p in pts}
        assert store.point_versions("t1", "d1") == {p.id: p.payload["version_id"] for p in pts}
        store.delete("t1", "d1", "v1")
        assert store.count("t1", "d1") == 3
        store.delete("t2", "d1")  # another tenant's delete touches nothing
        assert store.count("t1", "d1") == 3
        store.delete("t1", "d1")
        assert store.count("t1", "d1") == 0
        store.delete("t1", "d1")  # absent: no-op

    def test_upsert_overwrites_vectors_and_payload(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        first = point("t1", "d1", "v1", 0, ["a"], title="old")
        store.upsert([first])
        again = replace(
            first, dense=[0.0, 0.0, 1.0, 0.0], payload={**first.payload, "title": "new"}
        )
        store.upsert([again])
        [hit] = store.fetch([first.id], SearchFilter(tenant_id="t1"))
        assert hit.payload["title"] == "new"
        assert hit.dense == pytest.approx([0.0, 0.0, 1.0, 0.0])
        assert store.count("t1", "d1") == 1

    def test_a_point_without_its_dense_vector_is_found_by_terms_then_completed(
        self, store: VectorStore
    ) -> None:
        """Progressive indexing (issue #22): a chunk is stored with its sparse vector before
        its embedding exists; sparse search finds it, dense search does not, and the later
        upsert of the same id adds its dense vector."""
        store.ensure_collection(4)
        flt = SearchFilter(tenant_id="t1")
        embedded = point("t1", "d1", "v1", 0)
        pending = replace(
            point("t1", "d2", "v1", 1),
            dense=[],
            payload={**point("t1", "d2", "v1", 1).payload, "dense_pending": True},
        )
        store.upsert([embedded, pending])
        assert store.count("t1", "d2") == 1
        assert store.missing([pending.id]) == set()
        assert [h.id for h in store.search_sparse([1001], [1.0], flt, 5)] == [pending.id]
        assert [h.id for h in store.search_dense([1.0, 1.0, 0.5, 0.0], flt, 5)] == [embedded.id]
        [hit] = store.fetch([pending.id], flt)
        assert not hit.dense and hit.payload["dense_pending"] is True
        store.upsert([point("t1", "d2", "v1", 1)])  # its embedding, under the same id
        dense = {h.id for h in store.search_dense([1.0, 1.0, 0.5, 0.0], flt, 5)}
        assert dense == {embedded.id, pending.id}
        [hit] = store.fetch([pending.id], flt)
        assert "dense_pending" not in hit.payload
        assert hit.dense is not None
        assert cosine(hit.dense, [1.0, 1.0, 0.5, 0.0]) == pytest.approx(1.0)

    def test_payload_update_merges_keys(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        store.upsert([point("t1", "d1", "v1", i, ["old"], title="T") for i in range(3)])
        store.upsert([point("t1", "d2", "v1", 0, ["old"])])
        store.set_payload("t1", "d1", {"tags": ["new"]})
        store.set_payload("t1", "nope", {"tags": ["x"]})  # no such document: nothing
        got = {
            h.payload["document_id"] + str(h.id): h.payload
            for h in store.fetch(
                [
                    point("t1", d, "v1", i).id
                    for d, i in (("d1", 0), ("d1", 1), ("d1", 2), ("d2", 0))
                ],
                SearchFilter(tenant_id="t1"),
            )
        }
        assert len(got) == 4
        d1 = [p for p in got.values() if p["document_id"] == "d1"]
        assert {tuple(p["tags"]) for p in d1} == {("new",)}
        assert {p["title"] for p in d1} == {"T"}  # merged: other keys kept
        assert [p["tags"] for p in got.values() if p["document_id"] == "d2"] == [["old"]]

    def test_missing_collection_reads_as_empty(self, store: VectorStore) -> None:
        flt = SearchFilter(tenant_id="t1")
        assert store.dim() is None
        assert not store.has_sentences()
        assert store.count("t1", "d1") == 0
        assert store.point_ids("t1", "d1") == set()
        assert store.point_index() == {}
        assert store.search_dense([1.0, 0.0, 0.0, 0.0], flt, 5) == []
        assert store.search_sparse([1], [1.0], flt, 5) == []
        assert store.fetch([point("t1", "d1", "v1", 0).id], flt) == []
        assert store.score_sentences([1.0, 0.0, 0.0, 0.0], [point("t1", "d", "v", 0).id], flt) == {}
        assert store.missing(["a5b1c2d3-0000-5000-8000-000000000000"]) == {
            "a5b1c2d3-0000-5000-8000-000000000000"
        }
        assert store.scroll_points() == ([], None)
        store.delete("t1", "d1")
        store.delete_ids([point("t1", "d1", "v1", 0).id])
        store.set_payload("t1", "d1", {"tags": []})

    def test_dimension_mismatch_is_refused(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        store.upsert([point("t1", "d1", "v1", 0)])
        reopened = self.reopen(store)  # as a new process finds it: the collection exists
        with pytest.raises(ConfigurationError, match="4-d vectors"):
            reopened.ensure_collection(8)
        with pytest.raises(ConfigurationError):
            reopened.upsert([replace(point("t1", "d1", "v1", 1), dense=[1.0, 0.0])])

    def test_lookups_and_deletes_by_id(self, store: VectorStore) -> None:
        pts = [point("t1", "d1", "v1", i) for i in range(4)]
        assert store.missing([p.id for p in pts]) == {p.id for p in pts}  # no collection yet
        store.ensure_collection(4)
        store.upsert(pts[:3])
        assert store.missing([p.id for p in pts]) == {pts[3].id}
        store.delete_ids([pts[0].id, pts[3].id])
        assert store.point_ids("t1", "d1") == {pts[1].id, pts[2].id}
        store.delete_ids([])
        assert store.missing([]) == set()

    def test_large_writes_and_lookups_cross_page_boundaries(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        pts = [point("t1", f"d{i % 3}", "v1", i) for i in range(2500)]
        store.upsert(pts)
        assert store.missing([p.id for p in pts]) == set()
        assert sum(store.count("t1", f"d{k}") for k in range(3)) == 2500
        index = store.point_index()
        assert sum(len(v) for v in index.values()) == 2500
        assert index[("t1", "d1")] == {p.id: "v1" for p in pts if p.payload["document_id"] == "d1"}
        store.delete_ids([p.id for p in pts[:1500]])
        assert len(store.missing([p.id for p in pts])) == 1500

    # -- searches ----------------------------------------------------------------------------

    def _filtered_points(self) -> list[VectorPoint]:
        return [
            VectorPoint(
                id=ids.stable_uuid("s", str(i)),
                dense=[1.0, 0.1 * i, 0.0, 0.0],
                sparse_indices=[7, 100 + i],
                sparse_values=[1.0, 1.0],
                payload={
                    "tenant_id": "t1" if i < 4 else "t2",
                    "document_id": f"d{i}",
                    "version_id": "v",
                    "collection": "a" if i % 2 else "b",
                    "tags": ["x", "y"] if i == 1 else ["y"] if i == 2 else [],
                    "metadata": {"k": i, "kind": "memo" if i < 2 else "note", "ok": i % 2 == 0}
                    | {"ratio": 0.5 * i},
                    "uploaded_at": float(i),
                },
            )
            for i in range(6)
        ]

    def test_search_is_filtered_by_tenant_and_fields(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        pts = self._filtered_points()
        store.upsert(pts)
        q = [1.0, 0.0, 0.0, 0.0]

        def docs(flt: SearchFilter) -> set[str]:
            dense = {h.payload["document_id"] for h in store.search_dense(q, flt, 10)}
            sparse = {h.payload["document_id"] for h in store.search_sparse([7], [1.0], flt, 10)}
            fetched = {h.payload["document_id"] for h in store.fetch([p.id for p in pts], flt)}
            assert dense == sparse == fetched, flt  # every read applies the same filter
            return dense

        assert docs(SearchFilter(tenant_id="t1")) == {"d0", "d1", "d2", "d3"}
        assert docs(SearchFilter(tenant_id="t2")) == {"d4", "d5"}
        assert docs(SearchFilter(tenant_id="t3")) == set()
        assert docs(SearchFilter(tenant_id="t1", collections=["a"])) == {"d1", "d3"}
        assert docs(SearchFilter(tenant_id="t1", collections=["a", "b"])) == {
            "d0",
            "d1",
            "d2",
            "d3",
        }
        assert docs(SearchFilter(tenant_id="t1", tags=["x"])) == {"d1"}
        assert docs(SearchFilter(tenant_id="t1", tags=["x", "y"])) == {"d1", "d2"}  # any of
        assert docs(SearchFilter(tenant_id="t1", collections=["a"], tags=["y"])) == {"d1"}
        assert docs(SearchFilter(tenant_id="t1", metadata={"k": 2})) == {"d2"}
        assert docs(SearchFilter(tenant_id="t1", metadata={"kind": "note"})) == {"d2", "d3"}
        assert docs(SearchFilter(tenant_id="t1", metadata={"kind": "note", "ok": True})) == {"d2"}
        assert docs(SearchFilter(tenant_id="t1", metadata={"ratio": 1.5})) == {"d3"}
        assert docs(SearchFilter(tenant_id="t1", metadata={"absent": "x"})) == set()
        assert docs(SearchFilter(tenant_id="t1", document_ids=["d0", "d3", "d4"])) == {"d0", "d3"}
        assert docs(SearchFilter(tenant_id="t1", uploaded_after=1.0)) == {"d1", "d2", "d3"}
        assert docs(SearchFilter(tenant_id="t1", uploaded_before=1.0)) == {"d0", "d1"}
        assert docs(SearchFilter(tenant_id="t1", uploaded_after=1.5, uploaded_before=2.5)) == {"d2"}
        # Access lists: hidden documents are left out, whatever else the filter says.
        hidden = SearchFilter(tenant_id="t1", hidden_document_ids=["d1", "d4"])
        assert docs(hidden) == {"d0", "d2", "d3"}
        assert docs(replace(hidden, collections=["a"])) == {"d3"}
        assert docs(replace(hidden, document_ids=["d1"])) == set()
        assert store.search_sparse([105], [1.0], SearchFilter(tenant_id="t1"), 10) == []
        assert store.search_sparse([], [], SearchFilter(tenant_id="t1"), 10) == []

    def test_search_is_filtered_by_sorting_labels_and_fields(self, store: VectorStore) -> None:
        """Sorting (issue #17) puts the type, correspondents and typed fields in the payload
        (``set_payload``, no re-embedding); searches filter on them."""
        from core.domain import FieldCondition

        store.ensure_collection(4)
        pts = [point("t1", f"d{i}", "v1", i) for i in range(4)]
        store.upsert(pts)
        sorted_as = {
            "d0": ("invoice", ["acme"], {"total_ttc": 120.0, "date": 1.7e9, "reference": "F-1"}),
            "d1": ("invoice", ["globex"], {"total_ttc": 80.5, "date": 1.8e9}),
            "d2": ("contract", ["acme", "globex"], {"reference": "C-9"}),
        }
        for doc, (kind, corr, fields) in sorted_as.items():
            store.set_payload(
                "t1", doc, {"document_type": kind, "correspondents": corr, "fields": fields}
            )

        def docs(**kw: Any) -> set[str]:
            flt = SearchFilter(tenant_id="t1", **kw)
            found = {h.payload["document_id"] for h in store.fetch([p.id for p in pts], flt)}
            dense = {h.payload["document_id"] for h in store.search_dense([1, 0, 0, 0], flt, 10)}
            assert found == dense, kw
            return found

        assert docs(document_types=["invoice"]) == {"d0", "d1"}
        assert docs(document_types=["invoice", "contract"]) == {"d0", "d1", "d2"}
        assert docs(correspondents=["acme"]) == {"d0", "d2"}
        gte = FieldCondition("total_ttc", "gte", 100.0)
        assert docs(fields=[gte]) == {"d0"}
        assert docs(fields=[FieldCondition("total_ttc", "lt", 100.0)]) == {"d1"}
        assert docs(fields=[FieldCondition("total_ttc", "eq", 80.5)]) == {"d1"}
        assert docs(fields=[FieldCondition("date", "gt", 1.75e9)]) == {"d1"}
        assert docs(fields=[FieldCondition("reference", "eq", "C-9")]) == {"d2"}
        assert (
            docs(document_types=["invoice"], fields=[FieldCondition("reference", "eq", "C-9")])
            == set()
        )
        assert docs(document_types=["quote"]) == set()
        assert SearchFilter(tenant_id="t1").fields == ()

    def test_dense_search_ranks_by_cosine_and_returns_vectors(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        pts = self._filtered_points()
        store.upsert(pts)
        q = [0.2, 1.0, 0.0, 0.0]
        hits = store.search_dense(q, SearchFilter(tenant_id="t1"), 3)
        expected = sorted(
            (p for p in pts if p.payload["tenant_id"] == "t1"), key=lambda p: -cosine(q, p.dense)
        )[:3]
        assert [h.id for h in hits] == [p.id for p in expected]
        for h, p in zip(hits, expected, strict=True):
            assert h.score == pytest.approx(cosine(q, p.dense), abs=1e-5)
            assert h.dense is not None
            assert cosine(h.dense, p.dense) == pytest.approx(1.0, abs=1e-5)
            assert h.payload == p.payload

    def test_sparse_search_applies_idf(self, store: VectorStore) -> None:
        """Scores are sum(query weight x IDF(term) x stored weight), IDF over the collection:
        a term in 1 of 10 points outweighs one in 9 of 10."""
        store.ensure_collection(4)
        pts = [
            VectorPoint(
                id=ids.stable_uuid("idf", str(i)),
                dense=[1.0, 0.0, 0.0, 0.0],
                sparse_indices=[1, 2] if i == 0 else [1] if i < 9 else [3],
                sparse_values=[2.0, 0.5] if i == 0 else [1.0],
                payload={"tenant_id": "t1" if i < 5 else "t2", "document_id": f"d{i}"},
            )
            for i in range(10)
        ]
        store.upsert(pts)
        flt = SearchFilter(tenant_id="t1")
        common, rare = idf(10, 9), idf(10, 1)
        [hit] = store.search_sparse([2], [1.0], flt, 10)
        assert hit.score == pytest.approx(0.5 * rare, rel=1e-4)
        hits = store.search_sparse([1, 2], [1.0, 1.0], flt, 10)
        assert hits[0].id == pts[0].id
        assert hits[0].score == pytest.approx(2.0 * common + 0.5 * rare, rel=1e-4)
        assert [h.score for h in hits[1:]] == pytest.approx([common] * 4, rel=1e-4)
        # The rare term, at a quarter of the weight, still outranks the common one.
        assert 0.5 * rare > 1.0 * common
        # IDF counts every point of the collection, other tenants' too (as Qdrant does).
        assert store.search_sparse([3], [1.0], SearchFilter(tenant_id="t2"), 10)[0].score == (
            pytest.approx(idf(10, 1), rel=1e-4)
        )

    def test_sentence_scores_are_the_best_sentence_of_each_named_point(
        self, store: VectorStore
    ) -> None:
        store.ensure_collection(4)
        assert store.has_sentences()
        sentences = {
            0: [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
            1: [[0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]],
            2: [],  # stored without sentence vectors
            3: [[0.0, 0.0, 0.0, 1.0]],  # not named in the call
        }
        pts = [replace(point("t1", "d1", "v1", i), sentences=s) for i, s in sentences.items()]
        other = replace(point("t2", "d1", "v1", 0), sentences=[[1.0, 0.0, 0.0, 0.0]])
        store.upsert([*pts, other])
        named = [p.id for p in [*pts[:3], other]]
        got = store.score_sentences([1.0, 0.0, 0.0, 0.0], named, SearchFilter(tenant_id="t1"))
        assert got.keys() == {pts[0].id, pts[1].id}  # not the other tenant's, not the bare one
        assert got[pts[0].id] == pytest.approx(1.0, abs=1e-5)
        assert got[pts[1].id] == pytest.approx(2**-0.5, abs=1e-5)  # max of 0 and cos 45°
        narrowed = store.score_sentences(
            [1.0, 0.0, 0.0, 0.0], named, SearchFilter(tenant_id="t1", document_ids=["d9"])
        )
        assert narrowed == {}
        hidden = SearchFilter(tenant_id="t1", hidden_document_ids=["d1"])
        assert store.score_sentences([1.0, 0.0, 0.0, 0.0], named, hidden) == {}
        assert store.score_sentences([1.0, 0.0, 0.0, 0.0], [], SearchFilter(tenant_id="t1")) == {}
        page, _ = store.scroll_points()  # migrations copy them
        copied = {p.id: p.sentences for p in page}
        assert [len(copied[p.id]) for p in pts] == [2, 2, 0, 1]

    def test_scroll_points_pages_whole_points(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        pts = [
            replace(point("t1", "d1", "v1", i, ["g"]), sentences=[[0.0, 1.0, 0.0, float(i)]])
            for i in range(7)
        ]
        store.upsert(pts)
        seen: dict[str, VectorPoint] = {}
        offset: Any = None
        pages = 0
        while True:
            page, offset = store.scroll_points(offset, 3)
            pages += 1
            seen.update({p.id: p for p in page})
            if offset is None:
                break
        assert pages == 3 and seen.keys() == {p.id for p in pts}
        for p in pts:
            got = seen[p.id]
            assert got.payload == p.payload
            assert cosine(got.dense, p.dense) == pytest.approx(1.0, abs=1e-5)
            assert dict(zip(got.sparse_indices, got.sparse_values, strict=True)) == pytest.approx(
                dict(zip(p.sparse_indices, p.sparse_values, strict=True))
            )
            assert len(got.sentences) == 1
            assert cosine(got.sentences[0], p.sentences[0]) == pytest.approx(1.0, abs=1e-5)

    # -- collections and aliases -------------------------------------------------------------

    def test_aliases_move_the_logical_name(self, store: VectorStore) -> None:
        flt = SearchFilter(tenant_id="t1")
        a = store.sibling(f"{store.collection}__a")
        b = store.sibling(f"{store.collection}__b")
        a.ensure_collection(4)
        b.ensure_collection(4)
        a.upsert([point("t1", "in-a", "v1", 0)])
        b.upsert([point("t1", "in-b", "v1", 0), point("t1", "in-b", "v1", 1)])
        assert store.alias_target() is None and store.dim() is None
        store.point_alias(a.collection)
        assert store.alias_target() == a.collection
        assert {h.payload["document_id"] for h in store.search_dense([1, 0, 0, 0], flt, 5)} == {
            "in-a"
        }
        store.upsert([point("t1", "via-alias", "v1", 0)])  # writes go to the target
        assert a.count("t1", "via-alias") == 1
        with store.exclusive():  # a migration's switch: held across the move
            store.point_alias(b.collection)
        assert store.alias_target() == b.collection
        assert store.count("t1", "in-b") == 2 and store.count("t1", "via-alias") == 0
        store.drop_collection(a.collection)
        assert a.dim() is None and a.count("t1", "in-a") == 0
        store.drop_collection(a.collection)  # absent: no-op
        assert store.count("t1", "in-b") == 2  # the alias still serves b
        reopened = self.reopen(store)
        assert reopened.alias_target() == b.collection
        assert reopened.count("t1", "in-b") == 2

    def test_a_plain_collection_is_dropped_then_aliased(self, store: VectorStore) -> None:
        """The first switch of a collection made before aliases (vectors.switch: copy to
        ``__legacy``, drop the plain collection, alias it)."""
        store.ensure_collection(4)
        store.upsert([point("t1", "d1", "v1", 0)])
        legacy = store.sibling(f"{store.collection}__legacy")
        legacy.ensure_collection(4)
        offset: Any = None
        while True:
            page, offset = store.scroll_points(offset, 100)
            legacy.upsert(page)
            if offset is None:
                break
        store.drop_collection(store.collection)
        store.point_alias(legacy.collection)
        assert store.count("t1", "d1") == 1 and store.alias_target() == legacy.collection

    def test_reopen_after_close_keeps_data(self, store: VectorStore) -> None:
        store.ensure_collection(4)
        pts = [
            replace(point("t1", "d1", "v1", i), sentences=[[1.0, 0.0, 0.0, 0.0]]) for i in range(3)
        ]
        store.upsert(pts)
        store.set_payload("t1", "d1", {"title": "kept"})
        store.delete_ids([pts[2].id])
        reopened = self.reopen(store)
        reopened.ensure_collection(4)
        assert reopened.point_ids("t1", "d1") == {pts[0].id, pts[1].id}
        hits = reopened.search_dense([1.0, 0.0, 0.5, 0.0], SearchFilter(tenant_id="t1"), 5)
        assert {h.payload["title"] for h in hits} == {"kept"}
        scores = reopened.score_sentences(
            [1.0, 0.0, 0.0, 0.0], [p.id for p in pts], SearchFilter(tenant_id="t1")
        )
        assert scores == pytest.approx({pts[0].id: 1.0, pts[1].id: 1.0}, abs=1e-5)

    def test_a_collection_made_before_sentence_vectors_still_serves(
        self, store: VectorStore
    ) -> None:
        """Collections of earlier gedrag versions have no sentence multivector: writes drop the
        sentences, sentence scores are empty, searches work (a re-embedding adds them)."""
        self.make_without_sentences(store, 4)
        store.ensure_collection(4)
        assert not store.has_sentences()
        p = replace(point("t1", "d1", "v1", 1), sentences=[[1.0, 0.0, 0.0, 0.0]])
        store.upsert([p])
        flt = SearchFilter(tenant_id="t1")
        assert [h.id for h in store.search_dense([1.0, 1.0, 0.5, 0.0], flt, 5)] == [p.id]
        assert store.score_sentences([1.0, 0.0, 0.0, 0.0], [p.id], flt) == {}
        page, _ = store.scroll_points()
        assert [q.sentences for q in page] == [[]]

    def test_ping_answers(self, store: VectorStore) -> None:
        store.ping()
        store.ensure_collection(4)
        store.ping()
