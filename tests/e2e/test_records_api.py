"""Issue #20 end to end, over HTTP with the embedded worker: an administrator sets "invoices 10
years" and "CVs 2 years", places a hold on a supplier's documents, deletes a document and
restores it, purges another and downloads its certificate; a subject-access request for a
person's name lists every document mentioning them; the daily run applies the confirmed policy.
Administrators only where data goes for good; another tenant sees nothing (404)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

INVOICE = b"""# Invoice INV-2012-0042

ACME Industries invoices the city of Lyon 1,250 EUR. Contact: Jean Dupont, jean.dupont@acme.fr.
"""
CV = b"# Curriculum vitae\n\nMarie Curie, physicist, worked in Paris at the Sorbonne.\n"
MEMO = b"# Memo\n\nJean Dupont presented the remote work policy: four days a month at home.\n"
CONTRACT = b"# Supply contract\n\nGlobex supplies the Lyon office with paper and toner.\n"


def upload(api: Api, name: str, data: bytes, **metadata: Any) -> str:
    import json

    r = api.upload(name, data, metadata=json.dumps(metadata))
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["job_id"])["state"] == "succeeded"
    doc_id: str = r.json()["document_id"]
    return doc_id


def test_the_records_lifecycle_over_http(make_api: Callable[..., Api]) -> None:
    api = make_api(None)
    intern, _ = api.client.app.state.runtime.catalog.tenants.create_key(  # type: ignore[attr-defined]
        "acme", "intern"
    )
    as_intern = {"Authorization": f"Bearer {intern}"}
    invoice = upload(api, "invoice.md", INVOICE, type="invoice", date="2012-05-01")
    cv = upload(api, "cv.md", CV, type="cv")
    memo = upload(api, "memo.md", MEMO)
    contract = upload(api, "contract.md", CONTRACT, correspondent="Globex")
    assert api.client.get("/v1/records/me", headers=api.h()).json()["admin"] is True
    assert api.client.get("/v1/records/me", headers=as_intern).json()["admin"] is False

    # Retention: the invoice is overdue, so its policy waits for a confirmation.
    invoices = {"name": "invoices 10 years", "selector": {"type": "invoice"}, "years": 10}
    assert (
        api.client.post("/v1/retention/policies", headers=as_intern, json=invoices).status_code
        == 403
    )
    r = api.client.post("/v1/retention/policies", headers=api.h(), json=invoices)
    assert r.status_code == 202, r.text
    assert r.json()["pending_confirmation"] is True
    assert [d["document_id"] for d in r.json()["would_dispose"]] == [invoice]
    cvs = {"name": "CVs 2 years", "selector": {"type": "cv"}, "years": 2, "anchor": "upload"}
    r = api.client.post("/v1/retention/policies", headers=api.h(), json=cvs)
    assert r.status_code == 201 and r.json()["pending_confirmation"] is False
    preview = api.client.get("/v1/retention/preview", headers=as_intern).json()
    assert ([d["document_id"] for d in preview["pending"]], preview["due"]) == ([invoice], [])
    ahead = api.client.get("/v1/retention/preview", headers=api.h(), params={"within_days": 800})
    assert [d["document_id"] for d in ahead.json()["due"]] == [cv]

    # A legal hold on the supplier's documents refuses their deletion, naming it.
    hold = api.client.post(
        "/v1/holds",
        headers=api.h(),
        json={
            "name": "Globex audit",
            "reason": "supplier audit 2025",
            "metadata": {"correspondent": "Globex"},
        },
    )
    assert hold.status_code == 201 and hold.json()["documents"] == 1
    refused = api.client.delete(f"/v1/documents/{contract}", headers=api.h())
    assert refused.status_code == 409
    assert refused.json()["error"] == "held" and "Globex audit" in refused.json()["detail"]
    moved = api.client.patch(f"/v1/documents/{contract}", headers=api.h(), json={"collection": "x"})
    assert moved.status_code == 409 and moved.json()["error"] == "held"

    # Delete (the trash) hides at once; restore brings it back.
    trashed = api.client.delete(f"/v1/documents/{memo}", headers=as_intern)
    assert trashed.status_code == 200 and trashed.json()["document_id"] == memo
    listed = {d["id"] for d in api.client.get("/v1/documents", headers=api.h()).json()["items"]}
    assert memo not in listed and contract in listed
    found = api.client.post("/v1/search", headers=api.h(), json={"query": "remote work days"})
    assert memo not in {p["document_id"] for p in found.json()["passages"]}
    assert [
        e["document_id"] for e in api.client.get("/v1/trash", headers=api.h()).json()["items"]
    ] == [memo]
    restored = api.client.post(f"/v1/documents/{memo}/restore", headers=as_intern)
    assert restored.status_code == 200 and restored.json()["status"] == "ready"
    found = api.client.post("/v1/search", headers=api.h(), json={"query": "remote work days"})
    assert memo in {p["document_id"] for p in found.json()["passages"]}

    # Purge another now (administrators), and read its certificate.
    assert api.client.delete(f"/v1/documents/{cv}", headers=api.h()).status_code == 200
    assert api.client.delete(f"/v1/trash/{cv}", headers=as_intern).status_code == 403
    assert api.client.delete(f"/v1/trash/{cv}", headers=api.h("globex")).status_code == 404
    purge = api.client.delete(f"/v1/trash/{cv}", headers=api.h())
    assert purge.status_code == 202
    assert api.wait(purge.json()["job_id"])["state"] == "succeeded"
    cert = api.client.get(f"/v1/certificates/{purge.json()['certificate_id']}", headers=api.h())
    body = cert.json()
    assert body["complete"] and body["document_id"] == cv
    assert body["stores"]["vectors"]["points"]["before"] > 0
    assert all(
        c["after"] == 0
        for s in body["stores"].values()
        for c in s.values()
        if s is not body["stores"]["graph"]
    )
    assert len(body["originals"][0]["sha256"]) == 64 and body["originals"][0]["removed"]
    assert api.client.get(f"/v1/documents/{cv}", headers=api.h()).status_code == 404
    assert (
        api.client.get(f"/v1/certificates/{body['id']}", headers=api.h("globex")).status_code == 404
    )

    # A subject-access request lists every document mentioning the person.
    report = api.client.post(
        "/v1/subjects/search", headers=as_intern, json={"terms": ["Jean Dupont"]}
    ).json()
    assert {d["document_id"] for d in report["documents"]} == {invoice, memo}
    assert all(d["chunks"] for d in report["documents"])
    export = api.client.post(
        "/v1/subjects/export", headers=api.h(), json={"terms": ["jean.dupont@acme.fr"]}
    )
    assert export.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(export.content)) as z:
        assert f"originals/{invoice}/v1-invoice.md" in z.namelist()
    erase = api.client.post(
        "/v1/subjects/erase", headers=as_intern, json={"terms": ["Jean Dupont"], "confirm": True}
    )
    assert erase.status_code == 403

    # The confirmed policy disposes of the invoice at the daily run.
    policy_id = r.json()["policy"]["id"]
    invoices_id = next(
        p["id"]
        for p in api.client.get("/v1/retention/policies", headers=api.h()).json()
        if p["name"] == "invoices 10 years"
    )
    assert policy_id != invoices_id
    confirmed = api.client.post(f"/v1/retention/policies/{invoices_id}/confirm", headers=api.h())
    assert confirmed.json()["policy"]["confirmed"] is True
    daily = api.client.post("/v1/records/run-daily", headers=api.h()).json()
    assert daily["retention_purged"] == 1
    (purged,) = api.client.get(
        "/v1/certificates", headers=api.h(), params={"document_id": invoice}
    ).json()
    assert api.wait(purged["job_id"])["state"] == "succeeded"
    assert api.client.get(f"/v1/documents/{invoice}", headers=api.h()).status_code == 404

    audit = api.client.get("/v1/records/audit", headers=api.h()).json()
    assert any(e["action"] == "delete" and e["outcome"] == "refused" for e in audit)
    assert any(e["action"] == "restore" and e["actor"].startswith("key:intern:") for e in audit)
    release = api.client.post(f"/v1/holds/{hold.json()['id']}/release", headers=api.h())
    assert release.json()["active"] is False
    assert api.client.delete(f"/v1/documents/{contract}", headers=api.h()).status_code == 200
