"""The MCP server with the official SDK's own client, over streamable HTTP, against the real
app served by uvicorn on a free port: the tools, and the API's keys and tenant rules."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import BlobResourceContents, CallToolResult, EmbeddedResource, TextResourceContents

from core.settings import BrokerSettings, Settings
from serving.app import create_app
from tests.conftest import FIXTURES
from tests.support.net import free_port

pytestmark = pytest.mark.e2e

MEMO = b"# Budget memo\n\nThe budget for 2025 is 12,500 EUR, approved by the board in March.\n"
SECRET = b"# Globex plans\n\nThe budget of Globex for 2025 is 99,000 EUR.\n"
PDF = "unstructured_fake-memo.pdf"


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    docs: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("mcp") / "var",
        broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
    )
    app = create_app(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    catalog = app.state.runtime.catalog
    keys, docs = {}, {}
    for tenant in ("acme", "globex"):
        catalog.tenants.create(tenant)
        keys[tenant], _ = catalog.tenants.create_key(tenant)
    uploads = [
        ("acme", "memo", ("memo.md", MEMO)),
        ("acme", "pdf", (PDF, (FIXTURES / PDF).read_bytes())),
        ("globex", "secret", ("plans.md", SECRET)),
    ]
    with httpx.Client(base_url=base, timeout=60) as http:
        for tenant, name, file in uploads:
            h = {"Authorization": f"Bearer {keys[tenant]}"}
            up = http.post("/v1/documents", headers=h, files={"file": file}).json()
            docs[name] = up["document_id"]
            while http.get(f"/v1/jobs/{up['job_id']}", headers=h).json()["state"] not in (
                "succeeded",
                "failed",
            ):
                assert time.monotonic() < deadline + 240, "ingestion did not finish"
                time.sleep(0.1)
    yield Server(f"{base}/mcp", keys, docs)
    uv.should_exit = True
    thread.join(timeout=30)


def call(server: Server, tenant: str, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """List the tools, then make each call, in one MCP client session with the tenant's key."""

    async def run() -> list[Any]:
        headers = {"Authorization": f"Bearer {server.keys[tenant]}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            Client(streamable_http_client(server.url, http_client=http)) as client,
        ):
            results: list[Any] = [await client.list_tools()]
            for name, args in calls:
                results.append(await client.call_tool(name, args))
            return results

    return asyncio.run(run())


def test_tools_answer_for_the_keys_tenant_only(server: Server) -> None:
    tools, found, answer, listed, text, pdf = call(
        server,
        "acme",
        ("search", {"query": "budget for 2025"}),
        ("ask", {"question": "What is the budget for 2025?"}),
        ("list_documents", {"limit": 10}),
        ("download_document", {"document_id": server.docs["memo"]}),
        ("download_document", {"document_id": server.docs["pdf"]}),
    )
    assert {t.name for t in tools.tools} == {"search", "ask", "list_documents", "download_document"}
    schema = next(t for t in tools.tools if t.name == "search").input_schema
    assert "query" in schema["required"] and "ctx" not in schema["properties"]

    assert isinstance(found, CallToolResult) and not found.is_error, found
    passages = found.structured_content["passages"]
    assert passages and "12,500 EUR" in passages[0]["text"]
    assert {p["document_id"] for p in passages} <= {server.docs["memo"], server.docs["pdf"]}
    assert not answer.is_error and "12,500 EUR" in answer.structured_content["answer"]
    assert answer.structured_content["grounded"] is True
    assert answer.structured_content["citations"][0]["document_id"] == server.docs["memo"]
    items = listed.structured_content["items"]
    assert {d["id"] for d in items} == {server.docs["memo"], server.docs["pdf"]}

    (block,) = text.content
    assert isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents)
    assert block.resource.text == MEMO.decode() and block.resource.mime_type == "text/markdown"
    (block,) = pdf.content
    assert isinstance(block, EmbeddedResource) and isinstance(block.resource, BlobResourceContents)
    assert base64.b64decode(block.resource.blob) == (FIXTURES / PDF).read_bytes()
    assert block.resource.mime_type == "application/pdf"

    # globex's key sees globex's documents and nothing of acme's
    _, theirs, stolen, their_list = call(
        server,
        "globex",
        ("search", {"query": "budget for 2025"}),
        ("download_document", {"document_id": server.docs["memo"]}),
        ("list_documents", {}),
    )
    assert {p["document_id"] for p in theirs.structured_content["passages"]} == {
        server.docs["secret"]
    }
    assert stolen.is_error and "no document" in stolen.content[0].text
    assert [d["id"] for d in their_list.structured_content["items"]] == [server.docs["secret"]]


def test_requests_without_a_valid_key_are_refused(server: Server) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer gdr_wrong"}, {"X-API-Key": "nope"}):
        r = httpx.post(server.url, json=init, headers={**accept, **headers}, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    ok = httpx.post(
        server.url,
        json=init,
        headers={**accept, "X-API-Key": server.keys["acme"]},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "gedrag"
