"""The GED API end to end: HTTP requests against the app with its real embedded Celery worker,
on the SQLite catalog and on the PostgreSQL server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

MEMO = b"""# Memo

## Budget

The budget for 2025 was approved by the board of ACME on March 3, 2025.

## Staff

Anne Martin joins the Lyon office as head of finance.
"""


def test_document_lifecycle(api: Api) -> None:
    r = api.upload(
        "memo.md",
        MEMO,
        collection="memos",
        tags="finance, 2025",
        metadata=json.dumps({"dept": "finance", "year": 2025}),
    )
    assert r.status_code == 202, r.text
    up = r.json()
    assert (up["version"], up["duplicate"], up["media_type"]) == (1, False, "text/markdown")
    job = api.wait(up["job_id"])
    assert job["state"] == "succeeded", job
    doc_id = up["document_id"]

    doc = api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).json()
    assert doc["status"] == "ready" and doc["collection"] == "memos"
    assert doc["tags"] == ["2025", "finance"] and doc["metadata"] == {
        "dept": "finance",
        "year": 2025,
    }
    assert doc["versions"][0]["chunk_count"] >= 1

    # identical content in the same collection is not ingested again
    again = api.upload("copy.md", MEMO, collection="memos")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["document_id"] == doc_id and again.json()["job_id"] is None
    # ... but in another collection it is a new document
    other = api.upload("memo.md", MEMO, collection="elsewhere")
    assert other.status_code == 202 and other.json()["document_id"] != doc_id

    dl = api.client.get(f"/v1/documents/{doc_id}/content", headers=api.h())
    assert dl.status_code == 200 and dl.content == MEMO
    assert dl.headers["content-type"].startswith("text/markdown")
    assert "memo.md" in dl.headers["content-disposition"]

    v2 = api.client.post(
        f"/v1/documents/{doc_id}/versions",
        headers=api.h(),
        files={"file": ("memo-v2.md", MEMO + b"\nAddendum.\n")},
    )
    assert v2.status_code == 202 and v2.json()["version"] == 2
    assert api.wait(v2.json()["job_id"])["state"] == "succeeded"
    same = api.client.post(
        f"/v1/documents/{doc_id}/versions",
        headers=api.h(),
        files={"file": ("again.md", MEMO + b"\nAddendum.\n")},
    )
    assert same.status_code == 200 and same.json()["duplicate"] is True
    old = api.client.get(f"/v1/documents/{doc_id}/versions/1/content", headers=api.h())
    assert old.content == MEMO
    assert (
        api.client.get(f"/v1/documents/{doc_id}/versions/9/content", headers=api.h()).status_code
        == 404
    )

    patched = api.client.patch(
        f"/v1/documents/{doc_id}",
        headers=api.h(),
        json={"tags": ["kept"], "metadata": {"dept": "legal"}},
    )
    assert patched.status_code == 200
    assert patched.json()["tags"] == ["kept"] and patched.json()["current_version"] == 2
    listed = api.client.get(
        "/v1/documents", headers=api.h(), params={"metadata": '{"dept": "legal"}'}
    ).json()
    assert [d["id"] for d in listed["items"]] == [doc_id]

    assert api.purge(doc_id)["state"] == "succeeded"
    assert api.client.get(f"/v1/documents/{doc_id}", headers=api.h()).status_code == 404
    assert api.client.get(f"/v1/documents/{doc_id}/content", headers=api.h()).status_code == 404
    # the other collection's copy keeps its original file
    remaining = {d["id"] for d in api.client.get("/v1/documents", headers=api.h()).json()["items"]}
    assert remaining == {other.json()["document_id"]}
    assert api.counts()["blobs"] == 1


def test_tenant_isolation_and_authentication(api: Api) -> None:
    up = api.upload("memo.md", MEMO).json()
    doc_id, job_id = up["document_id"], up["job_id"]
    api.wait(job_id)
    for method, path in [
        ("GET", f"/v1/documents/{doc_id}"),
        ("GET", f"/v1/documents/{doc_id}/content"),
        ("GET", f"/v1/documents/{doc_id}/versions/1/content"),
        ("PATCH", f"/v1/documents/{doc_id}"),
        ("DELETE", f"/v1/documents/{doc_id}"),
        ("GET", f"/v1/jobs/{job_id}"),
    ]:
        r = api.client.request(method, path, headers=api.h("globex"), json={"tags": []})
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["error"] == "not_found"
    nv = api.client.post(
        f"/v1/documents/{doc_id}/versions",
        headers=api.h("globex"),
        files={"file": ("x.md", b"# other")},
    )
    assert nv.status_code == 404
    assert api.client.get("/v1/documents", headers=api.h("globex")).json()["items"] == []
    # the same bytes uploaded by another tenant are that tenant's own document
    theirs = api.upload("memo.md", MEMO, tenant="globex").json()
    assert theirs["duplicate"] is False and theirs["document_id"] != doc_id

    assert api.client.get("/v1/documents").status_code == 401
    bad = api.client.get("/v1/documents", headers={"Authorization": "Bearer gdr_wrong"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert bad.headers["www-authenticate"] == "Bearer"
    assert (
        api.client.get("/v1/documents", headers={"Authorization": "Basic abc"}).status_code == 401
    )
    assert (
        api.client.get("/v1/documents", headers={"X-API-Key": api.keys["acme"]}).status_code == 200
    )


def test_bad_input_is_refused_and_leaves_nothing(
    catalog_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(catalog_url, api={"max_upload_bytes": 2000})
    before = api.counts()
    cases = [
        (api.upload("big.txt", b"x" * 2001), 413, "payload_too_large"),
        (api.upload("huge.txt", b"x" * 400_000), 413, "payload_too_large"),  # by Content-Length
        (
            api.upload("scan.pdf", b"GIF89a" + b"\x00" * 100),  # an image that is no page
            415,
            "unsupported_media_type",
        ),
        (api.upload("empty.txt", b""), 422, "empty_file"),
        (api.upload("a.txt", b"text", metadata="{not json"), 422, "invalid_input"),
        (api.upload("a.txt", b"text", metadata="[1]"), 422, "invalid_input"),
        (api.upload("a.txt", b"text", title="t" * 301), 422, "invalid_input"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"] == code
    assert cases[2][0].json()["detail"].count("application/") >= 5  # lists the supported types
    assert cases[4][0].json()["field"] == "metadata"
    assert api.counts() == before

    # a batch is all or nothing: one unsupported file rejects every file
    batch = api.client.post(
        "/v1/documents/batch",
        headers=api.h(),
        files=[("files", ("ok.md", b"# fine")), ("files", ("bad.bin", b"\x00\x01\x02"))],
    )
    assert batch.status_code == 415 and "bad.bin" in batch.json()["detail"]
    assert api.counts() == before


def test_hostile_file_names_are_stored_safely(api: Api) -> None:
    for raw, expected in [
        ("../../../etc/passwd.txt", "passwd.txt"),
        ("x" * 300 + ".txt", "x" * 251 + ".txt"),
        ("..\\..\\win.ini.txt", "win.ini.txt"),
    ]:
        r = api.upload(raw, f"content of {raw[:20]}".encode())
        assert r.status_code == 202, r.text
        assert r.json()["filename"] == expected
        dl = api.client.get(f"/v1/documents/{r.json()['document_id']}/content", headers=api.h())
        assert dl.status_code == 200
    # a NUL byte in a multipart file name (raw request: clients refuse to send one)
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="evil\x00.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nnul name\r\n--XX--\r\n"
    )
    r = api.client.post(
        "/v1/documents",
        headers={**api.h(), "Content-Type": "multipart/form-data; boundary=XX"},
        content=body,
    )
    assert r.status_code == 202, r.text
    assert "\x00" not in r.json()["filename"] and r.json()["filename"].startswith("evil")
    root = api.settings.blob_dir.resolve()
    assert all(root in p.resolve().parents for p in root.rglob("*") if p.is_file())


def test_batch_upload_and_pagination(api: Api) -> None:
    files = [("files", (f"note-{i}.txt", f"Note number {i}.".encode())) for i in range(5)]
    files.append(("files", ("dup.txt", b"Note number 0.")))
    r = api.client.post(
        "/v1/documents/batch",
        headers=api.h(),
        files=files,
        data={"collection": "notes", "tags": "batch"},
    )
    assert r.status_code == 202, r.text
    items = r.json()["items"]
    assert [i["duplicate"] for i in items] == [False] * 5 + [True]
    assert items[5]["document_id"] == items[0]["document_id"]
    for item in items[:5]:
        assert api.wait(item["job_id"])["state"] == "succeeded"

    seen: list[str] = []
    cursor = None
    while True:
        params = {"collection": "notes", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/documents", headers=api.h(), params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(i["document_id"] for i in items[:5]) and len(seen) == 5
    ready = api.client.get(
        "/v1/documents", headers=api.h(), params={"status": "ready", "tag": "batch"}
    )
    assert len(ready.json()["items"]) == 5
    titled = api.client.get("/v1/documents", headers=api.h(), params={"title": "NOTE-3"}).json()
    assert [d["title"] for d in titled["items"]] == ["note-3"]
    assert (
        api.client.get("/v1/documents", headers=api.h(), params={"status": "bogus"}).status_code
        == 422
    )
    bad = api.client.get("/v1/documents", headers=api.h(), params={"metadata": "{x"})
    assert bad.status_code == 422 and bad.json()["field"] == "metadata"


def test_collections(api: Api) -> None:
    r = api.client.post(
        "/v1/collections", headers=api.h(), json={"name": "contracts", "description": "signed"}
    )
    assert r.status_code == 201 and r.json()["document_count"] == 0
    assert (
        api.client.post("/v1/collections", headers=api.h(), json={"name": "contracts"}).status_code
        == 409
    )
    assert api.client.post("/v1/collections", headers=api.h(), json={"name": ""}).status_code == 422
    up = api.upload("c.txt", b"Contract 42", collection="contracts").json()
    listed = api.client.get("/v1/collections", headers=api.h()).json()
    assert [(c["name"], c["document_count"]) for c in listed] == [("contracts", 1)]
    assert api.client.get("/v1/collections", headers=api.h("globex")).json() == []
    assert api.client.delete("/v1/collections/contracts", headers=api.h()).status_code == 409
    api.wait(up["job_id"])
    api.purge(up["document_id"])
    assert api.client.delete("/v1/collections/contracts", headers=api.h()).status_code == 204
    assert api.client.delete("/v1/collections/contracts", headers=api.h()).status_code == 404


def test_unparseable_document_fails_its_job_with_the_cause(api: Api) -> None:
    r = api.upload("broken.pdf", b"%PDF-1.7\n" + b"garbage " * 50)
    assert r.status_code == 202
    job = api.wait(r.json()["job_id"])
    assert job["state"] == "failed" and "PDF" in job["error"]
    doc = api.client.get(f"/v1/documents/{r.json()['document_id']}", headers=api.h()).json()
    assert doc["status"] == "failed"
    # the failed document can still be downloaded and deleted
    dl = api.client.get(f"/v1/documents/{r.json()['document_id']}/content", headers=api.h())
    assert hashlib.sha256(dl.content).hexdigest() == doc["versions"][0]["sha256"]


def test_openapi_docs_are_served(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    spec = api.client.get("/openapi.json").json()
    assert {"/v1/documents", "/v1/documents/batch", "/v1/jobs/{job_id}", "/v1/collections"} <= set(
        spec["paths"]
    )
    assert api.client.get("/health").json() == {"status": "ok"}
