"""Ingestion guarantees, end to end: HTTP upload, the real embedded worker, the real stores
(catalog, local Qdrant, graph tables), on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pypdf
import pytest
import sqlalchemy as sa
from PIL import Image

from core import ids, media
from core.domain import JobState
from infra.migrate import verify
from ingestion.service import Incoming, IngestionService
from runtime import Runtime
from stores.vectors import SearchFilter
from tests.conftest import FIXTURES
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

CONTRACT = b"""# Contrat de maintenance

## Parties

Le contrat CTR-2024-0042 lie ACME Industries et la Caisse d'Allocations Familiales de Lyon.

## Montant

Le montant annuel est de 12 500,00 EUR, payable le 3 mars 2025.

## Contact

Marie Dupont (marie.dupont@acme.fr) suit le dossier pour ACME Industries.
"""

CONTRACT_V2 = CONTRACT.replace(b"Marie Dupont", b"Paul Martin").replace(
    b"marie.dupont@acme.fr", b"paul.martin@acme.fr"
)

GRAPH_TABLES = (
    "graph_chunks",
    "graph_mentions",
    "graph_entities",
    "graph_relations",
    "graph_documents",
)


def census(api: Api, tenant: str = "acme") -> dict[str, Any]:
    """Everything every store holds for the tenant."""
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    t = rt.catalog.tenants.authenticate(api.keys[tenant]).id
    with rt.catalog.engine.connect() as conn:
        rows = {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": t}
            ).scalar_one()
            for table in (
                "documents",
                "chunks",
                "graph_chunks",
                "graph_mentions",
                "graph_entities",
                "graph_relations",
            )
        }
        chunk_ids = set(
            conn.execute(sa.text("SELECT id FROM chunks WHERE tenant_id = :t"), {"t": t}).scalars()
        )
    points = {
        pid
        for (tenant_id, _), held in rt.vectors.point_index().items()
        if tenant_id == t
        for pid in held
    }
    blobs = {sha for tenant_id, sha in rt.blobs.all() if tenant_id == t}
    return {**rows, "chunk_ids": chunk_ids, "points": points, "blobs": blobs}


def test_a_document_reaches_every_store(api: Api) -> None:
    up = api.upload("contrat.md", CONTRACT).json()
    job = api.wait(up["job_id"])
    assert job["state"] == "succeeded", job
    doc = api.client.get(f"/v1/documents/{up['document_id']}", headers=api.h()).json()
    version = doc["versions"][0]
    c = census(api)
    assert version["chunk_count"] == len(c["chunk_ids"]) == c["graph_chunks"] >= 1
    assert c["points"] == c["chunk_ids"]  # one vector point per catalog chunk, same ids
    assert version["entity_count"] == c["graph_entities"] >= 4
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    keys = rt.graph.entity_keys(rt.catalog.tenants.authenticate(api.keys["acme"]).id)
    assert {"ref:ctr-2024-0042", "email:marie.dupont@acme.fr", "acme industries"} <= keys
    assert any(k.startswith("amount:EUR:12500") for k in keys)


def test_every_step_run_twice_changes_nothing(api: Api) -> None:
    up = api.upload("contrat.md", CONTRACT).json()
    assert api.wait(up["job_id"])["state"] == "succeeded"
    before = census(api)
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    job_id = up["job_id"]
    rt.catalog.jobs.update(job_id, state=JobState.RUNNING)  # as if redelivered mid-way
    service = IngestionService(rt)
    for step in (
        service.prepare,
        service.index_terms,
        service.index_graph,
        service.publish,
        service.index_vectors,
        service.index_terms,  # after the embedding: keeps the embedded points
        service.index_graph,
        service.index_vectors,
        service.finalize,
        service.finalize,
        service.publish,  # after the job succeeded: nothing
    ):
        step(job_id)
    assert census(api) == before
    assert rt.catalog.jobs.load(job_id).state == JobState.SUCCEEDED
    doc = api.client.get(f"/v1/documents/{up['document_id']}", headers=api.h()).json()
    assert doc["status"] == "ready"
    flt = SearchFilter(tenant_id=rt.catalog.tenants.authenticate(api.keys["acme"]).id)
    hits = rt.vectors.fetch(sorted(before["points"]), flt)
    assert hits and all(h.dense and "dense_pending" not in h.payload for h in hits)


def _registered(api: Api, name: str, data: bytes) -> tuple[IngestionService, str, str]:
    """A document registered, its job not run: the test runs its steps."""
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    tenant_id = rt.catalog.tenants.authenticate(api.keys["acme"]).id
    service = IngestionService(rt)
    f = Incoming(io.BytesIO(data), name, media.MARKDOWN, ids.sha256_hex(data), len(data))
    got = service.register(tenant_id, "default", f, title=name, tags=[], metadata={})
    assert got.job is not None
    return service, got.document.id, got.job.id


def _search(api: Api, query: str) -> list[dict[str, Any]]:
    r = api.client.post("/v1/search", headers=api.h(), json={"query": query})
    assert r.status_code == 200, r.text
    passages: list[dict[str, Any]] = r.json()["passages"]
    return passages


def test_a_version_is_searchable_by_its_words_before_its_embedding(api: Api) -> None:
    """Progressive indexing (issue #22): once parsed, chunked, its terms and graph written,
    the version is found by its words (status ``searchable``) while its dense vectors are
    still to come; the embedding then completes the same points (``ready``)."""
    service, document_id, job_id = _registered(api, "contrat.md", CONTRACT)
    rt = service.rt
    flt = SearchFilter(tenant_id=rt.catalog.tenants.authenticate(api.keys["acme"]).id)
    assert service.prepare(job_id)
    service.index_terms(job_id)
    service.index_graph(job_id)
    assert _search(api, "CTR-2024-0042") == []  # not published yet: nobody sees it
    assert service.publish(job_id)
    doc = api.client.get(f"/v1/documents/{document_id}", headers=api.h()).json()
    assert doc["status"] == "searchable"
    found = _search(api, "contrat CTR-2024-0042 montant annuel")
    assert found and found[0]["document_id"] == document_id
    version_id = rt.catalog.jobs.load(job_id).version_id
    assert version_id is not None
    chunk_ids = [c.id for c in rt.catalog.chunks.of_version(version_id)]
    pending = rt.vectors.fetch(chunk_ids, flt)
    assert len(pending) == len(chunk_ids)
    assert all(not h.dense and h.payload["dense_pending"] for h in pending)
    assert rt.vectors.search_dense(rt.models.embedder.embed_queries(["contrat"])[0], flt, 5) == []
    job = rt.catalog.jobs.load(job_id)
    assert job.state == JobState.RUNNING and job.stage == "searchable"

    service.index_vectors(job_id)
    service.finalize(job_id)
    doc = api.client.get(f"/v1/documents/{document_id}", headers=api.h()).json()
    assert doc["status"] == "ready"
    assert rt.catalog.jobs.load(job_id).state == JobState.SUCCEEDED
    dense = rt.vectors.search_dense(rt.models.embedder.embed_queries(["contrat"])[0], flt, 5)
    assert {h.id for h in dense} == set(chunk_ids)
    assert _search(api, "contrat CTR-2024-0042 montant annuel")[0]["document_id"] == document_id


def test_an_embedding_that_fails_leaves_the_version_searchable_and_says_so(api: Api) -> None:
    service, document_id, job_id = _registered(api, "contrat.md", CONTRACT)
    assert service.prepare(job_id)
    service.index_terms(job_id)
    service.index_graph(job_id)
    assert service.publish(job_id)
    service.fail_job(job_id, "embedding (vector store): the model crashed")
    service.finalize(job_id)
    job = service.rt.catalog.jobs.load(job_id)
    assert job.state == JobState.FAILED
    assert "the model crashed" in (job.error or "") and "stays searchable" in (job.error or "")
    doc = api.client.get(f"/v1/documents/{document_id}", headers=api.h()).json()
    assert doc["status"] == "searchable"
    assert _search(api, "contrat CTR-2024-0042")[0]["document_id"] == document_id
    # `gedrag migrate verify` names it; `repair` embeds it and makes it ready.
    found = verify.verify(service.rt)
    [drift] = [d for d in found.drift if d.document_id == document_id]
    assert drift.stores == {"vectors"} and "terms only" in drift.problems[0]
    verify.repair(service.rt, found)
    doc = api.client.get(f"/v1/documents/{document_id}", headers=api.h()).json()
    assert doc["status"] == "ready"
    assert all(d.document_id != document_id for d in verify.verify(service.rt).drift)
    version_id = service.rt.catalog.jobs.load(job_id).version_id
    assert version_id is not None
    chunk_ids = [c.id for c in service.rt.catalog.chunks.of_version(version_id)]
    tenant_id = service.rt.catalog.tenants.authenticate(api.keys["acme"]).id
    hits = service.rt.vectors.fetch(chunk_ids, SearchFilter(tenant_id=tenant_id))
    assert len(hits) == len(chunk_ids) and all(h.dense for h in hits)


def test_a_new_version_searchable_replaces_the_old_at_once(api: Api) -> None:
    """v2 published while v1 is ready: searches see v2's words only, never both versions."""
    up = api.upload("contrat.md", CONTRACT).json()
    assert api.wait(up["job_id"])["state"] == "succeeded"
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    tenant_id = rt.catalog.tenants.authenticate(api.keys["acme"]).id
    service = IngestionService(rt)
    f = Incoming(
        io.BytesIO(CONTRACT_V2),
        "contrat.md",
        media.MARKDOWN,
        ids.sha256_hex(CONTRACT_V2),
        len(CONTRACT_V2),
    )
    got = service.register_version(tenant_id, up["document_id"], f)
    assert got.job is not None
    job_id = got.job.id
    assert service.prepare(job_id)
    service.index_terms(job_id)
    service.index_graph(job_id)
    assert [p["version"] for p in _search(api, "Marie Dupont contrat")] == [1]
    assert service.publish(job_id)
    passages = _search(api, "Paul Martin contrat")
    assert passages and {p["version"] for p in passages} == {2}
    assert all("Marie Dupont" not in p["text"] for p in _search(api, "Marie Dupont"))
    service.index_vectors(job_id)
    service.finalize(job_id)
    assert {p["version"] for p in _search(api, "Paul Martin contrat")} == {2}


def test_new_version_replaces_the_old_in_every_store(api: Api) -> None:
    up = api.upload("contrat.md", CONTRACT).json()
    api.wait(up["job_id"])
    v1 = census(api)
    v2 = api.client.post(
        f"/v1/documents/{up['document_id']}/versions",
        headers=api.h(),
        files={"file": ("contrat.md", CONTRACT_V2)},
    ).json()
    assert api.wait(v2["job_id"])["state"] == "succeeded"
    after = census(api)
    assert after["chunk_ids"].isdisjoint(v1["chunk_ids"])  # new content, new chunk ids
    assert after["points"] == after["chunk_ids"]
    assert after["graph_chunks"] == len(after["chunk_ids"])
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    keys = rt.graph.entity_keys(rt.catalog.tenants.authenticate(api.keys["acme"]).id)
    assert "email:paul.martin@acme.fr" in keys and "email:marie.dupont@acme.fr" not in keys
    doc = api.client.get(f"/v1/documents/{up['document_id']}", headers=api.h()).json()
    assert doc["current_version"] == 2 and doc["status"] == "ready"
    assert len(after["blobs"]) == 2  # every version stays downloadable


def test_delete_leaves_nothing_anywhere(api: Api) -> None:
    a = api.upload("contrat.md", CONTRACT).json()
    b = api.upload("memo.pdf", (FIXTURES / "unstructured_fake-memo.pdf").read_bytes()).json()
    for up in (a, b):
        assert api.wait(up["job_id"])["state"] == "succeeded"
    v2 = api.client.post(
        f"/v1/documents/{a['document_id']}/versions",
        headers=api.h(),
        files={"file": ("contrat.md", CONTRACT_V2)},
    ).json()
    api.wait(v2["job_id"])
    for up in (a, b):
        assert api.purge(up["document_id"])["state"] == "succeeded"
    c = census(api)
    assert c == {
        "documents": 0,
        "chunks": 0,
        "graph_chunks": 0,
        "graph_mentions": 0,
        "graph_entities": 0,
        "graph_relations": 0,
        "chunk_ids": set(),
        "points": set(),
        "blobs": set(),
    }


def encrypted_pdf() -> bytes:
    out = io.BytesIO()
    with pikepdf.open(FIXTURES / "unstructured_fake-memo.pdf") as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    return out.getvalue()


def image_pdf() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(out, "PDF")
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"\0" * 300_000_000)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "cause"),
    [
        ("secret.pdf", encrypted_pdf, "encrypted"),
        ("scan.pdf", image_pdf, "no extractable text"),  # a blank scan: OCR reads nothing
        ("bomb.docx", zip_bomb_docx, "zip bomb"),
        ("huge.txt", lambda: b"line of text\n" * 2_400_000, "max_pages"),
        ("report.docx", lambda: b"%PDF-1.7\n" + b"\x00garbage" * 100, "PDF"),  # wrong extension
    ],
)
def test_bad_files_fail_with_their_cause_and_store_nothing(
    make_api: Callable[..., Api], name: str, make: Callable[[], bytes], cause: str
) -> None:
    api = make_api(None, api={"max_upload_bytes": 200_000_000})
    before = census(api)
    up = api.upload(name, make())
    assert up.status_code == 202, up.text
    job = api.wait(up.json()["job_id"])
    assert job["state"] == "failed" and cause in job["error"], job
    after = census(api)
    assert (after["chunk_ids"], after["points"], after["graph_chunks"]) == (set(), set(), 0)
    assert after["documents"] == before["documents"] + 1  # kept, failed, with its original
    doc = api.client.get(f"/v1/documents/{up.json()['document_id']}", headers=api.h()).json()
    assert doc["status"] == "failed"


def test_a_failing_store_is_retried_then_named(make_api: Callable[..., Api]) -> None:
    """The graph store is a real Neo4j driver pointed at a closed port: every attempt fails."""
    api = make_api(
        None,
        graph={"backend": "neo4j"},
        neo4j={"uri": "bolt://127.0.0.1:9", "password": "x", "timeout_s": 0.5},
        broker={"queue": "failing-store", "max_retries": 2, "retry_backoff_max_s": 1},
    )
    up = api.upload("contrat.md", CONTRACT).json()
    job = api.wait(up["job_id"])
    assert job["state"] == "failed"
    assert job["error"].startswith("graph store: Neo4j unavailable"), job["error"]
    assert "3 attempts" in job["error"]
    # The vectors written in parallel are removed by the finalize step, right after.
    deadline = time.monotonic() + 60
    while census(api)["points"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert census(api)["points"] == set()
    doc = api.client.get(f"/v1/documents/{up['document_id']}", headers=api.h()).json()
    assert doc["status"] == "failed"


SCANS = Path(__file__).resolve().parents[1] / "fixtures" / "scans"


@pytest.mark.skipif(
    shutil.which("tesseract") is None and os.environ.get("GEDRAG_TEST_REQUIRE_SERVICES") != "1",
    reason="Tesseract is not installed (make ocr)",
)
def test_a_scan_and_a_photo_are_read_by_ocr_searched_and_cited_by_page(
    make_api: Callable[..., Api],
) -> None:
    """Issue #16: an image-only PDF (a quote, stored sideways) and a TIFF (a contract, two
    pages) go through the worker's parse child (pages listed, then read with their OCR budget);
    their text is searched and answered from, cited with its page, and the version says which
    pages OCR read."""
    api = make_api(None)
    docs = {}
    for name in ("gd-0189-scan.pdf", "gd-0224-scan.tif"):
        up = api.upload(name, (SCANS / name).read_bytes())
        assert up.status_code == 202, up.text
        job = api.wait(up.json()["job_id"], timeout=300)
        assert job["state"] == "succeeded", job
        docs[name] = up.json()["document_id"]
    version = api.client.get(
        f"/v1/documents/{docs['gd-0224-scan.tif']}/versions", headers=api.h()
    ).json()["items"][0]
    assert version["media_type"] == "image/tiff"
    assert any("read by OCR" in w and "page(s) 1, 2" in w for w in version["warnings"]), version

    found = api.client.post(
        "/v1/search", headers=api.h(), json={"query": "devis DEV25-0277", "top_k": 3}
    ).json()["passages"]
    assert found[0]["document_id"] == docs["gd-0189-scan.pdf"] and found[0]["page_start"] == 1
    hits = api.client.post(
        "/v1/search",
        headers=api.h(),
        json={"query": "Le Prestataire Le Client Page 2/2", "top_k": 5},
    ).json()["passages"]
    pages = {(p["document_id"], p["page_start"], p["page_end"]) for p in hits}
    assert any(d == docs["gd-0224-scan.tif"] and s <= 2 <= e for d, s, e in pages), pages

    # Its pages as pictures (made once, kept), and the scan's searchable rendition.
    tif, pdf = docs["gd-0224-scan.tif"], docs["gd-0189-scan.pdf"]
    listed = api.client.get(f"/v1/documents/{tif}/pages", headers=api.h()).json()
    assert (listed["pages"], listed["media_type"]) == (2, "image/tiff")
    thumb = api.client.get(f"/v1/documents/{tif}/pages/2?size=thumb", headers=api.h())
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).width == 240
    again = api.client.get(f"/v1/documents/{tif}/pages/2?size=thumb", headers=api.h())
    assert again.content == thumb.content
    page = api.client.get(f"/v1/documents/{pdf}/pages/1", headers=api.h())
    assert Image.open(io.BytesIO(page.content)).width == 1240
    past = api.client.get(f"/v1/documents/{tif}/pages/3", headers=api.h())
    assert past.status_code == 404 and "has 2" in past.json()["detail"]
    other = api.client.get(f"/v1/documents/{tif}/pages/1", headers=api.h("globex"))
    assert other.status_code == 404

    original = api.client.get(f"/v1/documents/{pdf}/content", headers=api.h()).content
    assert original == (SCANS / "gd-0189-scan.pdf").read_bytes()
    rendition = api.client.get(f"/v1/documents/{pdf}/content?rendition=searchable", headers=api.h())
    assert rendition.status_code == 200, rendition.text
    assert rendition.headers["content-type"] == "application/pdf"
    assert "searchable.pdf" in rendition.headers["content-disposition"]
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(rendition.content)).pages)
    assert "DEV25-0277" in text.replace(" ", "")  # the scan had no text layer
    assert api.client.get(f"/v1/documents/{pdf}/content", headers=api.h()).content == original
    tiff_pdf = api.client.get(f"/v1/documents/{tif}/content?rendition=searchable", headers=api.h())
    assert len(pypdf.PdfReader(io.BytesIO(tiff_pdf.content)).pages) == 2

    note = api.upload("note.md", b"# Note\n\nNo pages here.\n")
    assert api.wait(note.json()["job_id"])["state"] == "succeeded"
    note_id = note.json()["document_id"]
    assert api.client.get(f"/v1/documents/{note_id}/pages", headers=api.h()).json()["pages"] == 0
    refused = api.client.get(f"/v1/documents/{note_id}/pages/1", headers=api.h())
    assert refused.status_code == 422 and "no page images" in refused.json()["detail"]
    bad = api.client.get(f"/v1/documents/{note_id}/content?rendition=bogus", headers=api.h())
    assert bad.status_code == 422
