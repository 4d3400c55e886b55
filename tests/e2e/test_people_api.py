"""Issue #19 over HTTP with the embedded worker: an administrator creates HR and Legal groups
and their users, restricts the payslips collection to HR, and a Legal user's lists, views,
downloads and collection list never show a payslip while HR's do; a change holds for the next
request; the graph's copy of each document's readers follows. Bad input is refused 401/403 and
audited: a reader granting itself write, an editor without manage, a key beyond its owner's
scopes, a disabled user's key, an expired session, a forged token, a wrong password. The audit
trail lists, exports (JSON lines, CSV) and verifies, and `gedrag audit verify` finds an edited
entry."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.settings import SourcesSettings
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

GEDRAG = str(Path(sys.executable).with_name("gedrag"))
PAYSLIP = b"# Payslip March\n\nMarie Curie, physicist at Globex, is paid 4,200 EUR net.\n"
MEMO = b"# Memo\n\nGlobex moves the Lyon office to the Part-Dieu district in June.\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ingest(api: Api, name: str, data: bytes, collection: str) -> str:
    r = api.upload(name, data, collection=collection)
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["job_id"])["state"] == "succeeded"
    doc: str = r.json()["document_id"]
    return doc


def login(api: Api, username: str, password: str, tenant: str = "acme") -> dict[str, str]:
    r = api.client.post(
        "/v1/auth/login", json={"tenant": tenant, "username": username, "password": password}
    )
    assert r.status_code == 200, r.text
    assert r.json()["token"].startswith("gds_")
    return bearer(r.json()["token"])


def audit(api: Api, **query: Any) -> list[dict[str, Any]]:
    r = api.client.get("/v1/audit", headers=api.h(), params={"limit": 1000, **query})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def test_restricted_collections_over_http(make_api: Callable[..., Api]) -> None:
    api = make_api(None)
    admin = api.h()
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    memo = ingest(api, "memo.md", MEMO, "default")
    payslip = ingest(api, "payslip.md", PAYSLIP, "payslips")

    people: dict[str, str] = {}
    for name, role in (("hr-anna", "reader"), ("legal-ben", "reader"), ("legal-eve", "editor")):
        r = api.client.post(
            "/v1/users",
            headers=admin,
            json={"username": name, "roles": [role], "password": f"{name}-secret-pw"},
        )
        assert r.status_code == 201, r.text
        people[name] = r.json()["id"]
    groups = {}
    for name, members in (("HR", ["hr-anna"]), ("Legal", ["legal-ben", "legal-eve"])):
        group = api.client.post("/v1/groups", headers=admin, json={"name": name}).json()
        r = api.client.put(
            f"/v1/groups/{group['id']}/members",
            headers=admin,
            json={"user_ids": [people[m] for m in members]},
        )
        assert sorted(r.json()["member_ids"]) == sorted(people[m] for m in members)
        groups[name] = group["id"]

    r = api.client.put(
        "/v1/collections/payslips/access",
        headers=admin,
        json={"entries": [{"principal": "group:HR", "permission": "read"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["entries"] == [{"principal": f"group:{groups['HR']}", "permission": "read"}]
    assert rt.graph.readers(rt.catalog.tenants.get("acme").id, payslip) == (
        f"group:{groups['HR']}",
    )

    hr, legal = (
        login(api, "hr-anna", "hr-anna-secret-pw"),
        login(api, "legal-ben", "legal-ben-secret-pw"),
    )

    def listed(who: dict[str, str]) -> set[str]:
        return {d["id"] for d in api.client.get("/v1/documents", headers=who).json()["items"]}

    assert listed(hr) == {memo, payslip}
    assert listed(legal) == {memo}
    assert listed(admin) == {memo, payslip}  # administrators read everything
    for path in ("", "/content", "/versions", "/versions/1/content"):
        refused = api.client.get(f"/v1/documents/{payslip}{path}", headers=legal)
        assert refused.status_code == 404, (path, refused.text)
        assert "Marie" not in refused.text and "Payslip" not in refused.text
        assert api.client.get(f"/v1/documents/{payslip}{path}", headers=hr).status_code == 200
    colls = {
        c["name"]: c["document_count"]
        for c in api.client.get("/v1/collections", headers=legal).json()
    }
    assert "payslips" not in colls and colls["default"] == 1
    assert b"4,200 EUR" in api.client.get(f"/v1/documents/{payslip}/content", headers=hr).content

    # Legal's editor may write the open collection, not the restricted one, nor upload there.
    eve = login(api, "legal-eve", "legal-eve-secret-pw")
    upload = api.client.post(
        "/v1/documents",
        headers=eve,
        files={"file": ("x.md", b"# X\n\nA note.\n")},
        data={"collection": "payslips"},
    )
    assert upload.status_code == 403 and upload.json()["error"] == "forbidden"
    changed = api.client.patch(f"/v1/documents/{memo}", headers=eve, json={"title": "Memo (Lyon)"})
    assert changed.status_code == 200

    # A change holds for the very next request: Legal may read this one payslip.
    r = api.client.put(
        f"/v1/documents/{payslip}/access",
        headers=admin,
        json={"entries": [{"principal": "group:Legal", "permission": "read"}], "inherit": True},
    )
    assert r.status_code == 200 and r.json()["caller_may"] == "manage"
    assert listed(legal) == {memo, payslip}
    assert set(rt.graph.readers(rt.catalog.tenants.get("acme").id, payslip)) == {
        f"group:{groups['HR']}",
        f"group:{groups['Legal']}",
    }
    # ... and no longer once the document stops inheriting and names HR alone.
    api.client.put(
        f"/v1/documents/{payslip}/access",
        headers=admin,
        json={"entries": [{"principal": "group:HR", "permission": "read"}], "inherit": False},
    )
    assert listed(legal) == {memo}

    trail = audit(api)
    actions = [(e["action"], e["outcome"]) for e in trail]
    assert ("access.change", "done") in actions and ("auth.sign_in", "done") in actions
    assert ("group.members", "done") in actions and ("user.create", "done") in actions
    downloads = [e for e in trail if e["action"] == "document.download"]
    assert {e["target"] for e in downloads} == {payslip} and all(e["source"] for e in downloads)
    assert any(
        e["action"] == "access.document"
        and e["outcome"] == "refused"
        and e["target"] == payslip
        and e["actor"] == "user:legal-ben"
        for e in trail
    )
    uploads = [e for e in trail if e["action"] == "document.upload"]
    assert {d for e in uploads for d in e["detail"]["documents"]} == {memo, payslip}
    assert api.client.get("/v1/audit/verify", headers=admin).json()["ok"] is True

    # A move into the restricted collection gives the document that collection's readers in
    # the graph too (the payload sync after a PATCH), not only in the catalog.
    moved = api.client.patch(
        f"/v1/documents/{memo}", headers=admin, json={"collection": "payslips"}
    )
    assert moved.status_code == 200, moved.text
    acme = rt.catalog.tenants.get("acme").id
    deadline = time.monotonic() + 60
    while rt.graph.readers(acme, memo) != (f"group:{groups['HR']}",):
        assert time.monotonic() < deadline, rt.graph.readers(acme, memo)
        time.sleep(0.2)
    assert listed(legal) == set()


def test_bad_input_is_refused_and_audited(make_api: Callable[..., Api]) -> None:
    api = make_api(None)
    admin = api.h()
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    memo = ingest(api, "memo.md", MEMO, "default")
    ids = {}
    for name, role in (("rita", "reader"), ("ed", "editor")):
        r = api.client.post(
            "/v1/users",
            headers=admin,
            json={"username": name, "roles": [role], "password": f"{name}-password-1"},
        )
        ids[name] = r.json()["id"]
    rita, ed = login(api, "rita", "rita-password-1"), login(api, "ed", "ed-password-1")

    # A reader granting itself write: refused before the route runs, audited.
    grab = {"entries": [{"principal": f"user:{ids['rita']}", "permission": "manage"}]}
    r = api.client.put(f"/v1/documents/{memo}/access", headers=rita, json=grab)
    assert r.status_code == 403 and "write scope" in r.json()["detail"]
    r = api.client.patch(f"/v1/users/{ids['rita']}", headers=rita, json={"roles": ["admin"]})
    assert r.status_code == 403
    r = api.client.post(
        "/v1/keys", headers=rita, json={"name": "mine", "scopes": ["read", "write"]}
    )
    assert r.status_code == 403 and "write" in r.json()["detail"]
    # An editor may write the open collection's documents but not manage their lists.
    r = api.client.put(f"/v1/documents/{memo}/access", headers=ed, json=grab)
    assert r.status_code == 403 and "manage" in r.json()["detail"]
    assert api.client.get(f"/v1/documents/{memo}/access", headers=admin).json()["entries"] == []

    # A key of a user who is then disabled; a session that expired; forged and unknown tokens.
    key = api.client.post("/v1/keys", headers=ed, json={"name": "ed-ci", "scopes": ["read"]})
    assert key.status_code == 201, key.text
    ed_key = bearer(key.json()["key"])
    assert api.client.get("/v1/documents", headers=ed_key).status_code == 200
    assert (
        api.client.post(  # the key carries read only, whatever its owner may do
            "/v1/documents", headers=ed_key, files={"file": ("y.md", b"# Y\n\nNote.\n")}
        ).status_code
        == 403
    )
    r = api.client.patch(f"/v1/users/{ids['ed']}", headers=admin, json={"disabled": True})
    assert r.json()["disabled"] is True
    for who in (ed_key, ed):
        r = api.client.get("/v1/documents", headers=who)
        assert r.status_code == 401 and "disabled" in r.json()["detail"]
    user = rt.catalog.people.user(rt.catalog.tenants.get("acme").id, ids["rita"])
    stale, _ = rt.catalog.people.create_session(
        user, method="password", source="test", ttl=timedelta(microseconds=1)
    )
    r = api.client.get("/v1/documents", headers=bearer(stale))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."
    assert api.client.get("/v1/documents", headers=bearer(forged)).status_code == 401
    assert api.client.get("/v1/documents", headers=bearer("gdr_forged")).status_code == 401
    r = api.client.post(
        "/v1/auth/login", json={"tenant": "acme", "username": "rita", "password": "wrong-password"}
    )
    assert r.status_code == 401 and r.json()["detail"] == "unknown user or wrong password"
    # The last administrator cannot be demoted (the bootstrap key's user, "admin").
    owner = next(
        u for u in api.client.get("/v1/users", headers=admin).json() if u["username"] == "admin"
    )
    r = api.client.patch(f"/v1/users/{owner['id']}", headers=admin, json={"roles": ["reader"]})
    assert r.status_code == 409

    refusals = {(e["action"], e["actor"]) for e in audit(api, outcome="refused")}
    assert ("auth.scope", "user:rita") in refusals
    assert ("key.create", "user:rita") in refusals
    assert ("access.document", "user:ed") in refusals
    assert ("auth.token", "user:ed") in refusals  # the disabled user's key, in its tenant
    assert ("auth.token", "user:rita") in refusals  # the expired session
    assert ("auth.sign_in", "user:rita") in refusals
    platform = rt.catalog.audit.trail("", None)  # tokens that name no tenant
    assert {e.detail["token"] for e in platform} >= {"jwt", "gdr_forged…"}


def test_the_audit_trail_exports_verifies_and_shows_tampering(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api(None)
    admin = api.h()
    memo = ingest(api, "memo.md", MEMO, "default")
    api.client.get(f"/v1/documents/{memo}", headers=admin)
    api.client.get(f"/v1/documents/{memo}/content", headers=admin)

    lines = api.client.get("/v1/audit/export", headers=admin, params={"format": "jsonl"})
    assert lines.status_code == 200
    rows = [json.loads(x) for x in lines.text.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a["hash"] == b["prev_hash"] for a, b in itertools.pairwise(rows))
    assert {"document.upload", "document.view", "document.download"} <= {r["action"] for r in rows}
    table = list(
        csv.DictReader(
            io.StringIO(
                api.client.get(
                    "/v1/audit/export",
                    headers=admin,
                    params={"format": "csv", "action": "document.*"},
                ).text
            )
        )
    )
    assert {r["action"] for r in table} == {"document.upload", "document.view", "document.download"}
    assert json.loads(table[0]["detail"])["documents"] == [memo]
    assert (
        api.client.get("/v1/audit", headers=admin, params={"action": "document.view"}).json()[0][
            "target"
        ]
        == memo
    )

    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    assert api.client.get("/v1/audit/verify", headers=admin).json() == {
        "ok": True,
        "entries": rt.catalog.audit.verify(rt.catalog.tenants.get("acme").id).entries,
        "breaks": [],
    }
    # The database refuses edits; whoever drops the trigger is caught by the chain.
    with pytest.raises(sa.exc.IntegrityError), rt.catalog.engine.begin() as conn:
        conn.execute(sa.text("UPDATE records_audit SET actor = 'nobody'"))
    view = next(r for r in rows if r["action"] == "document.view")
    with rt.catalog.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER records_audit_no_update"))
        conn.execute(
            sa.text("UPDATE records_audit SET target = 'another' WHERE id = :id"),
            {"id": view["id"]},
        )
    verdict = api.client.get("/v1/audit/verify", headers=admin).json()
    assert verdict["ok"] is False
    assert [(b["seq"], b["entry_id"]) for b in verdict["breaks"]] == [(view["seq"], view["id"])]
    assert "edited" in verdict["breaks"][0]["reason"]

    env = {**os.environ, "GEDRAG_CATALOG__URL": rt.settings.catalog_url}
    done = subprocess.run(
        [GEDRAG, "audit", "verify", "acme"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert f"entry {view['seq']} ({view['id']})" in done.stderr.replace("\n", "")


def mcp_call(api: Api, who: dict[str, str], tool: str, arguments: dict[str, Any]) -> Any:
    r = api.client.post(
        "/mcp",
        headers={**who, "Accept": "application/json, text/event-stream"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_search_answers_and_mcp_never_reach_a_document_the_caller_may_not_read(
    make_api: Callable[..., Api],
) -> None:
    """Access lists hold in retrieval: a Legal reader's search, ask, chat, OpenAI chat and MCP
    tools never see HR's payslip (no passage, no citation, no listing, no download), an HR
    reader's do, and a grant takes effect at the next question."""
    api = make_api(None)
    admin = api.h()
    memo = ingest(api, "memo.md", MEMO, "default")
    payslip = ingest(api, "payslip.md", PAYSLIP, "payslips")
    people = {}
    for name in ("hr-anna", "legal-ben"):
        r = api.client.post(
            "/v1/users",
            headers=admin,
            json={"username": name, "roles": ["reader"], "password": f"{name}-secret-pw"},
        )
        assert r.status_code == 201, r.text
        people[name] = r.json()["id"]
    r = api.client.put(
        "/v1/collections/payslips/access",
        headers=admin,
        json={"entries": [{"principal": f"user:{people['hr-anna']}", "permission": "read"}]},
    )
    assert r.status_code == 200, r.text
    hr = login(api, "hr-anna", "hr-anna-secret-pw")
    legal = login(api, "legal-ben", "legal-ben-secret-pw")
    question = "How much is Marie Curie paid at Globex?"

    def found(who: dict[str, str]) -> set[str]:
        r = api.client.post("/v1/search", headers=who, json={"query": question, "top_k": 10})
        assert r.status_code == 200, r.text
        return {p["document_id"] for p in r.json()["passages"]}

    def cited(route: str, who: dict[str, str]) -> tuple[set[str], str]:
        if route == "/v1/chat/completions":
            body: dict[str, Any] = {
                "model": "gedrag",
                "messages": [{"role": "user", "content": question}],
            }
        elif route == "/v1/chat":
            body = {"messages": [{"role": "user", "content": question}]}
        else:
            body = {"question": question}
        r = api.client.post(route, headers=who, json=body)
        assert r.status_code == 200, (route, r.text)
        data = r.json()
        if route == "/v1/chat/completions":
            return {c["document_id"] for c in data["citations"]}, data["choices"][0]["message"][
                "content"
            ]
        docs = {c["document_id"] for c in data["citations"]}
        docs |= {p["document_id"] for p in data.get("passages", [])}
        return docs, data["answer"]

    assert payslip in found(hr) and payslip in found(admin)
    assert payslip not in found(legal) and memo in found(legal)
    for route in ("/v1/ask", "/v1/chat", "/v1/chat/completions"):
        docs, answer = cited(route, legal)
        assert payslip not in docs and "4,200" not in answer, route
        docs, answer = cited(route, hr)
        assert payslip in docs and "4,200" in answer, route

    searched = mcp_call(api, legal, "search", {"query": question})["structuredContent"]
    assert payslip not in {p["document_id"] for p in searched["passages"]}
    asked = mcp_call(api, legal, "ask", {"question": question})["structuredContent"]
    assert "4,200" not in asked["answer"]
    listed = mcp_call(api, legal, "list_documents", {})["structuredContent"]
    assert {d["id"] for d in listed["items"]} == {memo}
    download = mcp_call(api, legal, "download_document", {"document_id": payslip})
    assert download["isError"] is True and "no document" in str(download["content"])
    hr_listed = mcp_call(api, hr, "list_documents", {})["structuredContent"]
    assert {d["id"] for d in hr_listed["items"]} == {memo, payslip}

    def jobs_of(who: dict[str, str]) -> set[str]:
        r = api.client.get("/v1/jobs", headers=who)
        assert r.status_code == 200, r.text
        return {j["document_id"] for j in r.json()["items"]}

    assert jobs_of(legal) == {memo} and jobs_of(hr) == {memo, payslip}

    api.client.put(  # a grant holds for the very next question
        f"/v1/documents/{payslip}/access",
        headers=admin,
        json={"entries": [{"principal": f"user:{people['legal-ben']}", "permission": "read"}]},
    )
    assert payslip in found(legal)


def test_listings_name_no_document_the_caller_may_not_read(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """Around search, the lists that name documents obey the same access lists: a Legal
    editor's models, source items, legal hold and subject search never name HR's payslip (an
    administrator's do), and the MCP tools it calls are in the audit trail as the /v1 routes."""
    shares = tmp_path / "shares"
    api = make_api(None, sources=SourcesSettings(folder_roots=[shares], settle_s=0, tick_s=0.5))
    admin = api.h()
    memo = ingest(
        api, "memo.md", b"# Memo\n\nMarie Curie presents the Lyon move in June.\n", "default"
    )
    r = api.client.post(
        "/v1/users",
        headers=admin,
        json={"username": "legal-eve", "roles": ["editor"], "password": "legal-eve-secret-pw"},
    )
    assert r.status_code == 201, r.text
    assert api.client.post("/v1/groups", headers=admin, json={"name": "HR"}).status_code == 201
    assert (
        api.client.post("/v1/collections", headers=admin, json={"name": "payslips"}).status_code
        == 201
    )
    r = api.client.put(
        "/v1/collections/payslips/access",
        headers=admin,
        json={"entries": [{"principal": "group:HR", "permission": "read"}]},
    )
    assert r.status_code == 200, r.text
    inbox = shares / "hr"
    inbox.mkdir(parents=True)
    (inbox / "payslip.md").write_bytes(PAYSLIP)
    r = api.client.post(
        "/v1/sources",
        headers=admin,
        json={
            "name": "hr-share",
            "collection": "payslips",
            "interval_s": 3600,
            "connection": {"kind": "folder", "path": str(inbox)},
        },
    )
    assert r.status_code == 201, r.text
    source = r.json()["id"]

    def items(who: dict[str, str]) -> list[dict[str, Any]]:
        r = api.client.get(f"/v1/sources/{source}/items", headers=who)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["items"]
        return found

    deadline = time.monotonic() + 120
    while not any(i["document_id"] for i in items(admin)):
        assert time.monotonic() < deadline, items(admin)
        time.sleep(0.3)
    payslip = items(admin)[0]["document_id"]
    job = api.client.get("/v1/jobs", headers=admin).json()["items"]
    for j in job:
        assert api.wait(j["id"])["state"] == "succeeded"
    legal = login(api, "legal-eve", "legal-eve-secret-pw")
    assert items(legal) == []

    def models(who: dict[str, str]) -> set[str]:
        r = api.client.get("/v1/models", headers=who)
        assert r.status_code == 200, r.text
        return {m["id"] for m in r.json()["data"]}

    assert "gedrag/payslips" in models(admin)
    assert "gedrag/payslips" not in models(legal) and "gedrag/default" in models(legal)

    hold = api.client.post(
        "/v1/holds", headers=admin, json={"name": "litigation", "document_ids": [memo, payslip]}
    )
    assert hold.status_code == 201, hold.text
    held = api.client.get(f"/v1/holds/{hold.json()['id']}", headers=legal).json()
    assert held["documents"] == 2 and [d["document_id"] for d in held["items"]] == [memo]
    held = api.client.get(f"/v1/holds/{hold.json()['id']}", headers=admin).json()
    assert {d["document_id"] for d in held["items"]} == {memo, payslip}

    def subject(who: dict[str, str]) -> set[str]:
        r = api.client.post("/v1/subjects/search", headers=who, json={"terms": ["Marie Curie"]})
        assert r.status_code == 200, r.text
        return {d["document_id"] for d in r.json()["documents"]}

    assert subject(admin) == {memo, payslip} and subject(legal) == {memo}
    export = api.client.post(
        "/v1/subjects/export", headers=legal, json={"terms": ["Marie Curie"], "format": "json"}
    )
    assert {d["document_id"] for d in export.json()["documents"]} == {memo}

    asked = mcp_call(api, legal, "ask", {"question": "Who presents the Lyon move?"})
    assert asked.get("isError") is not True, asked
    mcp_call(api, legal, "search", {"query": "Marie Curie"})
    mcp_call(api, legal, "download_document", {"document_id": memo})
    by_mcp = [e for e in audit(api) if e["actor"] == "user:legal-eve" and e["detail"].get("mcp")]
    assert sorted(e["action"] for e in by_mcp) == [
        "document.download",
        "question.ask",
        "question.search",
    ]
    ask_entry = next(e for e in by_mcp if e["action"] == "question.ask")
    assert payslip not in ask_entry["detail"]["returned"]
    assert memo in ask_entry["detail"]["returned"] and ask_entry["via"] == "session:password"
    assert api.client.get("/v1/audit/verify", headers=admin).json()["ok"] is True
