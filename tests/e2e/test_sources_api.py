"""Sources end to end: the HTTP API, the embedded worker (its ticker stands in for Celery
beat), the CLI and the console page. A watched folder is synced by itself, its files become
searchable, "sync now" takes a new file, a deleted file leaves search; credentials go in and
never come out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core.settings import SourcesSettings
from serving import sources_cli
from serving.cli import app as cli
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

CONTRACT = b"# Maintenance contract\n\nACME Industries maintains the lifts of the city of Lyon.\n"
INVOICE = b"# Invoice 2024-17\n\nThe town hall of Grenoble owes Initech 4,780 EUR for paint.\n"
TIMEOUT_S = 180  # the model's first load and a parse child's start on a loaded 2-core machine


def eventually(check: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def api(make_api: Callable[..., Api], tmp_path: Path) -> Api:
    return make_api(
        sources=SourcesSettings(folder_roots=[tmp_path / "shares"], settle_s=0, tick_s=0.5)
    )


def searchable(api: Api, query: str, document_id: str) -> bool:
    r = api.client.post("/v1/search", headers=api.h(), json={"query": query})
    assert r.status_code == 200, r.text
    return any(p["document_id"] == document_id for p in r.json()["passages"])


def document_of(api: Api, source_id: str, key: str) -> str | None:
    items = api.client.get(f"/v1/sources/{source_id}/items", headers=api.h()).json()["items"]
    return next((i["document_id"] for i in items if i["key"] == key), None)


def test_a_watched_folder_is_synced_by_itself_and_kept_in_sync(api: Api, tmp_path: Path) -> None:
    inbox = tmp_path / "shares" / "scans"
    inbox.mkdir(parents=True)
    (inbox / "contract.md").write_bytes(CONTRACT)
    r = api.client.post(
        "/v1/sources",
        headers=api.h(),
        json={
            "name": "scanner",
            "collection": "scans",
            "interval_s": 3600,
            "connection": {"kind": "folder", "path": str(inbox)},
        },
    )
    assert r.status_code == 201, r.text
    source = r.json()
    assert (source["kind"], source["password_set"], source["status"]) in {
        ("folder", False, "new"),
        ("folder", False, "syncing"),
    }
    # No "sync now": the ticker finds it due.
    contract = eventually(lambda: document_of(api, source["id"], "contract.md"), "a round")
    eventually(lambda: searchable(api, "lifts of the city of Lyon", contract), "the contract")
    listed = api.client.get("/v1/sources", headers=api.h()).json()["items"]
    assert [(s["name"], s["status"], s["counts"]) for s in listed] == [
        ("scanner", "ok", {"taken": 1})
    ]
    assert listed[0]["last_finished_at"] and listed[0]["next_sync_at"]

    # Sync now: a new file is taken without waiting for the hour.
    (inbox / "invoice.md").write_bytes(INVOICE)
    r = api.client.post(f"/v1/sources/{source['id']}/sync", headers=api.h())
    assert r.status_code == 202, r.text
    invoice = eventually(lambda: document_of(api, source["id"], "invoice.md"), "the round")
    eventually(lambda: searchable(api, "town hall of Grenoble paint", invoice), "the invoice")
    origins = api.client.get(f"/v1/documents/{contract}/origins", headers=api.h()).json()
    assert [(o["source_name"], o["key"]) for o in origins["items"]] == [("scanner", "contract.md")]

    # A deleted file leaves search, and the catalog.
    (inbox / "contract.md").unlink()
    api.client.post(f"/v1/sources/{source['id']}/sync", headers=api.h(), json={"full": False})
    eventually(
        lambda: api.client.get(f"/v1/documents/{contract}", headers=api.h()).status_code == 404,
        "the contract gone",
    )
    assert not searchable(api, "lifts of the city of Lyon", contract)
    deleted = api.client.get(
        f"/v1/sources/{source['id']}/items", headers=api.h(), params={"outcome": "deleted"}
    ).json()["items"]
    assert [i["key"] for i in deleted] == ["contract.md"]


def test_credentials_go_in_and_never_come_out(api: Api, tmp_path: Path) -> None:
    password = "Tr0ub4dor&3-never-shown"
    body = {
        "name": "invoices",
        "connection": {
            "kind": "imap",
            "host": "127.0.0.1",
            "port": 9,
            "security": "none",
            "username": "invoices",
            "password": password,
        },
    }
    created = api.client.post("/v1/sources", headers=api.h(), json=body)
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["password_set"] is True and "password" not in source["connection"]
    for path in ("/v1/sources", f"/v1/sources/{source['id']}"):
        r = api.client.get(path, headers=api.h())
        assert r.status_code == 200 and password not in r.text
    patched = api.client.patch(
        f"/v1/sources/{source['id']}", headers=api.h(), json={"interval_s": 600}
    )
    assert patched.status_code == 200 and password not in patched.text
    assert patched.json()["interval_s"] == 600
    for connection in ({"port": "not a port"}, {"kind": "folder"}, {"unknown": 1}):
        r = api.client.patch(
            f"/v1/sources/{source['id']}", headers=api.h(), json={"connection": connection}
        )
        assert r.status_code == 422, (connection, r.text)

    assert api.client.post("/v1/sources", headers=api.h(), json=body).status_code == 409
    other = api.client.get(f"/v1/sources/{source['id']}", headers=api.h("globex"))
    assert other.status_code == 404  # another tenant's
    outside = api.client.post(
        "/v1/sources",
        headers=api.h(),
        json={"name": "etc", "connection": {"kind": "folder", "path": "/etc"}},
    )
    assert outside.status_code == 403 and "FOLDER_ROOTS" in outside.json()["detail"]
    bad = api.client.post(
        "/v1/sources", headers=api.h(), json={"name": "x", "connection": {"kind": "ftp"}}
    )
    assert bad.status_code == 422

    paused = api.client.post(f"/v1/sources/{source['id']}/pause", headers=api.h()).json()
    assert (paused["status"], paused["paused"]) == ("paused", True)
    refused = api.client.post(f"/v1/sources/{source['id']}/sync", headers=api.h())
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
    resumed = api.client.post(f"/v1/sources/{source['id']}/resume", headers=api.h()).json()
    assert resumed["paused"] is False
    # Nothing answers on port 9: the round fails, shown with its cause, never the password.
    failing = eventually(
        lambda: (
            (s := api.client.get(f"/v1/sources/{source['id']}", headers=api.h()).json())["status"]
            == "failing"
            and s
        ),
        "the source shown failing",
    )
    assert "cannot be reached" in failing["last_error"] and password not in str(failing)
    assert api.client.delete(f"/v1/sources/{source['id']}", headers=api.h()).status_code == 204
    assert api.client.get("/v1/sources", headers=api.h()).json()["items"] == []


def test_the_cli_adds_lists_syncs_pauses_and_removes(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "shares" / "cli"
    inbox.mkdir(parents=True)
    (inbox / "contract.md").write_bytes(CONTRACT)
    # The CLI's HTTP client is the test's, on the app in this process.
    monkeypatch.setattr(sources_cli, "_client", lambda: contextlib.nullcontext(api.client))
    api.client.headers["Authorization"] = api.h()["Authorization"]
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, ["sources", *args], input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("add", "folder", "scans", str(inbox), "--collection", "scans", "--tag", "paper")
    assert "source 'scans' added (folder" in out
    out = run("sync", "scans", "--wait", "--timeout", str(TIMEOUT_S))
    assert "ok" in out and "taken" in out
    assert "scans" in run("list")
    assert "contract.md" in run("items", "scans")
    out = run(
        "add",
        "imap",
        "mail",
        "127.0.0.1:9",
        "--user",
        "inv",
        "--security",
        "none",
        "--password-stdin",
        stdin="s3cret\n",
    )
    assert "source 'mail' added (imap" in out
    assert "s3cret" not in run("list")
    assert "paused" in run("pause", "mail")
    assert "resumed" in run("resume", "mail")
    assert "removed" in run("remove", "mail", "--yes")
    result = runner.invoke(cli, ["sources", "sync", "nope"])
    assert result.exit_code == 1 and "no source named 'nope'" in result.output


def test_the_console_serves_the_sources_page(api: Api) -> None:
    page = api.client.get("/console/sources.js")
    assert page.status_code == 200 and "renderSources" in page.text
    assert "Content-Security-Policy" in page.headers


def test_a_source_pours_only_into_a_collection_its_author_may_write(
    api: Api, tmp_path: Path
) -> None:
    """Access lists (#19): an editor may not aim a source at a collection restricted to others
    (403, on create and on change), as an upload there is refused; the open one is fine."""
    admin = api.h()
    r = api.client.post(
        "/v1/users",
        headers=admin,
        json={"username": "eve", "roles": ["editor"], "password": "eve-secret-password"},
    )
    assert r.status_code == 201, r.text
    api.client.post("/v1/collections", headers=admin, json={"name": "payroll"})
    r = api.client.put(
        "/v1/collections/payroll/access",
        headers=admin,
        json={"entries": [{"principal": "user:admin", "permission": "write"}]},
    )
    assert r.status_code == 200, r.text
    login = api.client.post(
        "/v1/auth/login",
        json={"tenant": "acme", "username": "eve", "password": "eve-secret-password"},
    )
    eve = {"Authorization": f"Bearer {login.json()['token']}"}
    (tmp_path / "shares" / "scans").mkdir(parents=True)
    body = {
        "name": "scans",
        "collection": "payroll",
        "connection": {"kind": "folder", "path": str(tmp_path / "shares" / "scans")},
    }
    refused = api.client.post("/v1/sources", headers=eve, json=body)
    assert refused.status_code == 403 and "payroll" in refused.json()["detail"]
    created = api.client.post("/v1/sources", headers=eve, json={**body, "collection": "default"})
    assert created.status_code == 201, created.text
    moved = api.client.patch(
        f"/v1/sources/{created.json()['id']}", headers=eve, json={"collection": "payroll"}
    )
    assert moved.status_code == 403
