"""Automatic sorting end to end (issue #17), through the HTTP API with the real worker.

A user defines five document types, labels ten invoices and ten contracts, uploads a folder of
mixed documents and finds them typed, tagged, filed and their fields filled, with the uncertain
ones in the review queue; a correction changes the next prediction; an automatic decision is
undone. The documents are 30 small PDFs of ged_docs (``tests/fixtures/ged``, CC0-1.0).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stores.graph import LabelRef
from stores.vectors import SearchFilter
from tests.conftest import FIXTURES
from tests.e2e.conftest import Api

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GED = FIXTURES / "ged"
TYPES = [
    {
        "kind": "type",
        "key": "invoice",
        "name": "Facture / Invoice",
        "description": "A bill a supplier sends to a client to request payment: invoice number, "
        "due date, total HT, TVA, total TTC, payment by bank transfer (IBAN).",
        "collection": "factures",
        "tags": ["compta"],
    },
    {
        "kind": "type",
        "key": "contract",
        "name": "Contrat / Contract",
        "description": "An agreement between parties with articles and clauses: object, "
        "duration, price, obligations, termination, signatures.",
        "collection": "contrats",
    },
    {
        "kind": "type",
        "key": "quote",
        "name": "Devis / Quote",
        "description": "An estimate a supplier sends before a sale: proposed prices, validity, "
        "to be accepted and signed by the client.",
    },
    {
        "kind": "type",
        "key": "payslip",
        "name": "Bulletin de paie / Payslip",
        "description": "An employee's monthly pay statement: gross salary, contributions, net.",
        "auto": False,  # never assigned automatically: always asked
    },
    {
        "kind": "type",
        "key": "letter",
        "name": "Lettre / Letter",
        "description": "A letter to an addressee: subject, salutation, body, signature.",
    },
]


def manifest() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (GED / "manifest.jsonl").read_text().splitlines()]


def upload_all(api: Api, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Upload the files in one batch into the inbox; wait for their jobs; ged id → doc id."""
    files = [("files", (r["file"], (GED / r["file"]).read_bytes())) for r in rows]
    reply = api.client.post(
        "/v1/documents/batch", headers=api.h(), files=files, data={"collection": "inbox"}
    )
    assert reply.status_code == 202, reply.text
    out = {}
    for r, item in zip(rows, reply.json()["items"], strict=True):
        job = api.wait(item["job_id"], timeout=600)
        assert job["state"] == "succeeded", job
        out[r["id"]] = item["document_id"]
    for doc_id in out.values():
        wait_sorted(api, doc_id)
    return out


def wait_sorted(api: Api, doc_id: str, timeout: float = 60) -> None:
    """Sorting runs once the ingestion job has succeeded (filing moves the document)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.client.get(f"/v1/sorting/documents/{doc_id}", headers=api.h()).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"document {doc_id} was not sorted in {timeout}s")


@pytest.fixture(scope="module")
def sorted_api(make_api_module: Callable[..., Api]) -> tuple[Api, dict[str, Any]]:
    api = make_api_module()
    for entry in [
        {"kind": "tag", "key": "compta", "name": "Comptabilité"},
        *TYPES,
    ]:
        reply = api.client.post("/v1/sorting/vocabulary", headers=api.h(), json=entry)
        assert reply.status_code == 201, reply.text
    # Accounting's collection is restricted before anything is filed there: filing must give
    # each invoice that collection's readers in the graph too.
    group = api.client.post("/v1/groups", headers=api.h(), json={"name": "Compta"})
    assert group.status_code == 201, group.text
    assert api.client.post(
        "/v1/collections", headers=api.h(), json={"name": "factures"}
    ).status_code in (201, 409)
    reply = api.client.put(
        "/v1/collections/factures/access",
        headers=api.h(),
        json={"entries": [{"principal": "group:Compta", "permission": "read"}]},
    )
    assert reply.status_code == 200, reply.text
    rows = manifest()
    invoices = [r for r in rows if r["doc_type"] == "invoice"]
    contracts = [r for r in rows if r["doc_type"] == "contract"]
    training = invoices[:10] + contracts[:10]
    mixed = (
        invoices[10:]
        + contracts[10:]
        + [r for r in rows if r["doc_type"] not in ("invoice", "contract")]
    )
    # A correspondent known by its SIRET: the issuer of one of the mixed invoices.
    issuer = mixed[0]["fields"]["issuer"]
    reply = api.client.post(
        "/v1/sorting/vocabulary",
        headers=api.h(),
        json={
            "kind": "correspondent",
            "key": "fournisseur-1",
            "name": issuer["name"],
            "identifiers": [issuer["siret"]],
        },
    )
    assert reply.status_code == 201, reply.text
    trained = upload_all(api, training)
    for r in training:
        reply = api.client.post(
            f"/v1/sorting/documents/{trained[r['id']]}/correct",
            headers=api.h(),
            json={"document_type": r["doc_type"]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["state"] == "confirmed"
    ids = upload_all(api, mixed)
    return api, {
        "mixed": mixed,
        "ids": ids,
        "trained": trained,
        "training": training,
        "compta": group.json()["id"],
    }


def decision(api: Api, doc_id: str) -> dict[str, Any]:
    reply = api.client.get(f"/v1/sorting/documents/{doc_id}", headers=api.h())
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_labelled_types_are_applied_filed_tagged_and_their_fields_filled(
    sorted_api: tuple[Api, dict[str, Any]],
) -> None:
    api, ctx = sorted_api
    threshold = api.client.get("/v1/sorting/settings", headers=api.h()).json()["threshold"]
    for r in ctx["mixed"]:
        if r["doc_type"] not in ("invoice", "contract"):
            continue
        doc_id = ctx["ids"][r["id"]]
        d = decision(api, doc_id)
        assert d["state"] == "applied", (r["id"], d)
        assert d["document_type"] == r["doc_type"]
        assert d["confidence"] >= threshold and d["reason"] == "classifier"
        assert [e["action"] for e in d["events"]] == ["auto_apply"]
        doc = api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).json()
        assert doc["collection"] == ("factures" if r["doc_type"] == "invoice" else "contrats")
        if r["doc_type"] == "invoice":
            assert "compta" in doc["tags"]
            tenant = api.client.app.state.runtime.catalog.tenants.get("acme").id  # type: ignore[attr-defined]
            graph = api.client.app.state.runtime.graph  # type: ignore[attr-defined]
            assert graph.readers(tenant, doc_id) == (f"group:{ctx['compta']}",)
            truth = r["fields"]
            assert d["fields"]["total_ttc"] == truth["total_ttc"]
            assert d["fields"]["iban"] == truth["iban"]
            assert d["fields"]["date"] == truth["date"]
    # The correspondent known by its SIRET is the first mixed invoice's issuer.
    first = decision(api, ctx["ids"][ctx["mixed"][0]["id"]])
    assert first["issuer"] == "fournisseur-1"


def test_uncertain_and_never_automatic_documents_wait_in_the_review_queue(
    sorted_api: tuple[Api, dict[str, Any]],
) -> None:
    api, ctx = sorted_api
    threshold = api.client.get("/v1/sorting/settings", headers=api.h()).json()["threshold"]
    queue = api.client.get("/v1/sorting/queue", headers=api.h()).json()
    waiting = {item["document_id"]: item for item in queue["items"]}
    assert waiting, queue
    for r in ctx["mixed"]:
        d = decision(api, ctx["ids"][r["id"]])
        if d["state"] == "review":
            assert d["document_id"] in waiting
            assert d["document_type"] is None and d["suggested_type"] is not None
            suggested = d["suggested_type"]
            assert d["confidence"] < threshold or suggested == "payslip"
        else:
            assert d["state"] == "applied" and d["confidence"] >= threshold
    # Payslips are never typed automatically, however sure the classifier is; nobody labelled
    # one, yet their name and description find them.
    for r in ctx["mixed"]:
        d = decision(api, ctx["ids"][r["id"]])
        if d["suggested_type"] == "payslip":
            assert d["state"] == "review"
        if r["doc_type"] == "payslip":
            assert d["suggested_type"] == "payslip"
    assert queue["counts"]["review"] == len(waiting)


def test_a_correction_changes_the_next_prediction(
    sorted_api: tuple[Api, dict[str, Any]],
) -> None:
    api, ctx = sorted_api
    quotes = [r for r in ctx["mixed"] if r["doc_type"] == "quote"]
    first, second = (ctx["ids"][r["id"]] for r in quotes)
    before = dict(decision(api, second)["ranked"])
    reply = api.client.post(
        f"/v1/sorting/documents/{first}/correct",
        headers=api.h(),
        json={"document_type": "quote"},
    )
    assert reply.status_code == 200, reply.text
    corrected = reply.json()
    assert corrected["state"] == "confirmed" and corrected["label"] == "quote"
    assert corrected["events"][0]["action"] in ("correct", "accept")
    again = api.client.post(f"/v1/sorting/documents/{second}/sort", headers=api.h()).json()
    after = dict(again["ranked"])
    assert after["quote"] > before.get("quote", 0.0)
    assert again["suggested_type"] == "quote"


def test_listing_and_search_filter_by_type_correspondent_and_fields(
    sorted_api: tuple[Api, dict[str, Any]],
) -> None:
    api, ctx = sorted_api
    invoices = [r for r in ctx["mixed"] if r["doc_type"] == "invoice"]
    low = min(r["fields"]["total_ttc"] for r in invoices)
    page = api.client.get(
        "/v1/documents",
        headers=api.h(),
        params={"type": "invoice", "field.total_ttc_gte": str(low)},
    ).json()
    found = {d["id"] for d in page["items"]}
    assert {ctx["ids"][r["id"]] for r in invoices} <= found
    trained_invoices = {
        ctx["trained"][r["id"]] for r in ctx["training"] if r["doc_type"] == "invoice"
    }
    assert found <= trained_invoices | {ctx["ids"][r["id"]] for r in invoices}
    high = api.client.get(
        "/v1/documents",
        headers=api.h(),
        params={"type": "invoice", "field.total_ttc_gt": "100000000"},
    ).json()
    assert high["items"] == []
    by_corr = api.client.get(
        "/v1/documents", headers=api.h(), params={"correspondent": "fournisseur-1"}
    ).json()
    assert ctx["ids"][invoices[0]["id"]] in {d["id"] for d in by_corr["items"]}
    bad = api.client.get(
        "/v1/documents", headers=api.h(), params={"field.total_ttc_gte": "beaucoup"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "field.total_ttc_gte"
    unknown = api.client.get("/v1/documents", headers=api.h(), params={"field.nope": "1"})
    assert unknown.status_code == 422
    # The vector payload carries the type and the fields: search filters on them.
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    tenant = rt.catalog.tenants.get("acme").id
    doc_id = ctx["ids"][invoices[0]["id"]]
    hits = rt.vectors.fetch(
        list(rt.vectors.point_ids(tenant, doc_id)), SearchFilter(tenant_id=tenant)
    )
    assert hits and all(h.payload["document_type"] == "invoice" for h in hits)
    assert all(h.payload["fields"]["total_ttc"] == invoices[0]["fields"]["total_ttc"] for h in hits)
    assert all("fournisseur-1" in h.payload["correspondents"] for h in hits)
    # Through the API: search within the invoices above an amount.
    searched = api.client.post(
        "/v1/search",
        headers=api.h(),
        json={
            "query": "facture total",
            "document_types": ["invoice"],
            "fields": {"total_ttc_gte": low},
        },
    )
    assert searched.status_code == 200, searched.text
    passages = searched.json()["passages"]
    assert (
        passages
        and {p["document_id"] for p in passages}
        <= {ctx["ids"][r["id"]] for r in invoices} | trained_invoices
    )
    bad_search = api.client.post(
        "/v1/search", headers=api.h(), json={"query": "x", "fields": {"total_ttc_gte": "lots"}}
    )
    assert bad_search.status_code == 422
    # And the graph links the document to its type and issuer.
    labels = rt.graph.labels(tenant, doc_id)
    assert labels.document_type == LabelRef("invoice", "Facture / Invoice")
    assert labels.issuer is not None and labels.issuer.key == "fournisseur-1"


def test_an_automatic_decision_is_undone(sorted_api: tuple[Api, dict[str, Any]]) -> None:
    api, ctx = sorted_api
    contract = next(r for r in ctx["mixed"] if r["doc_type"] == "contract")
    doc_id = ctx["ids"][contract["id"]]
    assert decision(api, doc_id)["state"] == "applied"
    reply = api.client.post(f"/v1/sorting/documents/{doc_id}/undo", headers=api.h())
    assert reply.status_code == 200, reply.text
    d = reply.json()
    assert d["state"] == "review" and d["document_type"] is None
    assert d["suggested_type"] == "contract"
    assert [e["action"] for e in d["events"]][:2] == ["undo", "auto_apply"]
    doc = api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).json()
    assert doc["collection"] == "inbox"
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    tenant = rt.catalog.tenants.get("acme").id
    assert rt.graph.labels(tenant, doc_id).document_type is None
    again = api.client.post(f"/v1/sorting/documents/{doc_id}/undo", headers=api.h())
    assert again.status_code == 409
    # One click puts it back, confirmed this time.
    accepted = api.client.post(f"/v1/sorting/documents/{doc_id}/accept", headers=api.h()).json()
    assert accepted["state"] == "confirmed" and accepted["document_type"] == "contract"


def test_a_document_under_legal_hold_is_never_refiled_by_sorting(
    sorted_api: tuple[Api, dict[str, Any]],
) -> None:
    """Issue #20's promise holds for sorting: a held document is neither corrected, undone nor
    moved by a decision (409 naming the hold), and stays where it is."""
    api, ctx = sorted_api
    contract = [r for r in ctx["mixed"] if r["doc_type"] == "contract"][1]
    doc_id = ctx["ids"][contract["id"]]
    before = api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).json()
    typed = decision(api, doc_id)["document_type"]
    hold = api.client.post(
        "/v1/holds",
        headers=api.h(),
        json={"name": "Contract dispute", "reason": "litigation", "document_ids": [doc_id]},
    )
    assert hold.status_code == 201, hold.text
    for action, body in (("correct", {"document_type": "invoice"}), ("undo", None)):
        reply = api.client.post(
            f"/v1/sorting/documents/{doc_id}/{action}", headers=api.h(), json=body
        )
        assert reply.status_code == 409, (action, reply.text)
        assert reply.json()["error"] == "held" and "Contract dispute" in reply.json()["detail"]
    after = api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).json()
    assert (after["collection"], after["tags"]) == (before["collection"], before["tags"])
    assert decision(api, doc_id)["document_type"] == typed


def test_bad_input_gets_a_clear_error(sorted_api: tuple[Api, dict[str, Any]]) -> None:
    api, ctx = sorted_api
    h = api.h()
    bad_rule = api.client.post(
        "/v1/sorting/vocabulary",
        headers=h,
        json={"kind": "tag", "name": "x", "rules": [{"algorithm": "regex", "pattern": "("}]},
    )
    assert bad_rule.status_code == 422 and bad_rule.json()["field"] == "rules"
    doc_id = next(iter(ctx["ids"].values()))
    unknown = api.client.post(
        f"/v1/sorting/documents/{doc_id}/correct", headers=h, json={"document_type": "nope"}
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "document_type"
    bad_iban = api.client.post(
        f"/v1/sorting/documents/{doc_id}/correct",
        headers=h,
        json={"fields": {"iban": "FR7628023419452945239381603"}},
    )
    assert bad_iban.status_code == 422 and bad_iban.json()["field"] == "fields.iban"
    other = api.client.get(f"/v1/sorting/documents/{doc_id}", headers=api.h("globex"))
    assert other.status_code == 404
    assert Path(GED / "SOURCE.md").is_file()
