"""The OpenAPI contract holds: a bounded, seeded schemathesis run (its CLI, ``st run``) against
gedrag served by uvicorn on loopback finds no server error, no status code, content type or
body outside the schema, accepts no request the schema forbids (malformed JSON, ``"stream": 0``,
``"uploaded_before": 0`` answer 422) and answers 405 with the right ``Allow``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.settings import BrokerSettings, Settings
from serving.app import create_app
from tests.support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ST = str(Path(sys.executable).with_name("st"))
# Bounded: 10 examples per operation and phase, one worker, a fixed seed (~1 min on 2 cores).
CONFIG = """
seed = 2323
workers = 1
request-timeout = 60

[generation]
max-examples = 10
database = "none"

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
negative_data_rejection.enabled = true
unsupported_method.enabled = true
allow_header_conformance.enabled = true

# Operations that start background work (an evaluation run over a whole suite, the daily
# records job, an erasure job): fuzzing them would run that work, not check a contract.
[[operations]]
include-path-regex = "^/v1/(eval/runs|records/run-daily|subjects/erase)$"
include-method = "POST"
enabled = false

# Operations that would take the fuzzer's own access away for the tests after it (revoking its
# key, ending its session, disabling or demoting the user that owns the key): their refusals
# of bad input are tested in tests/e2e/test_people_api.py.
[[operations]]
include-path-regex = "^/v1/keys/[^/]+$"
include-method = "DELETE"
enabled = false

[[operations]]
include-path-regex = "^/v1/auth/logout$"
include-method = "POST"
enabled = false

[[operations]]
include-path-regex = "^/v1/users/[^/]+$"
include-method = "PATCH"
enabled = false

# Multipart uploads: a form part carries bytes, never a JSON type, so the "invalid" file that
# schemathesis makes of a boolean (the bytes "false") is a valid text file; every other check
# runs on them.
[[operations]]
include-path-regex = "^/v1/documents(/batch|/[^/]+/versions)?$"
include-method = "POST"
checks.negative_data_rejection.enabled = false
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """gedrag's app on a free loopback port (no worker: jobs stay queued), with one key."""
    root = tmp_path_factory.mktemp("contract")
    settings = Settings(
        data_dir=root / "var", broker=BrokerSettings(queue=f"st-{uuid.uuid4().hex[:8]}")
    )
    app = create_app(settings, embedded_worker=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    catalog = app.state.runtime.catalog
    catalog.tenants.create("acme")
    key, _ = catalog.tenants.create_key("acme")
    url = f"http://127.0.0.1:{port}"
    # The first question loads the embedding model (seconds; a minute on a loaded machine):
    # once, here, not inside a fuzzed request's time limit.
    warm = httpx.post(
        f"{url}/v1/search",
        headers={"Authorization": f"Bearer {key}"},
        json={"query": "warm up"},
        timeout=300,
    )
    assert warm.status_code == 200, warm.text
    try:
        yield url, key
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_api_holds_its_openapi_contract(served: tuple[str, str], tmp_path: Path) -> None:
    url, key = served
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        ST,
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]


def test_allow_header_names_every_method_of_the_path(served: tuple[str, str]) -> None:
    url, key = served
    headers = {"Authorization": f"Bearer {key}"}
    wrong = httpx.put(f"{url}/v1/documents/some-id", headers=headers)
    batch = httpx.get(f"{url}/v1/documents/batch/x", headers=headers)
    listing = httpx.delete(f"{url}/v1/documents", headers=headers)

    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "DELETE, GET, HEAD, PATCH"
    assert batch.status_code == 404
    assert listing.status_code == 405 and listing.headers["Allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/ask", b'{"question": "q", "stream": 0}', "stream"),
        ("/v1/search", b'{"query": "q", "uploaded_before": 0}', "uploaded_before"),
        ("/v1/search", b'{"query": "q", "top_k": "5"}', "top_k"),
        ("/v1/collections", b'{"name": 42}', "name"),
        ("/v1/search", b'{"query": "q",', None),
        ("/v1/search", b"\xff\xfe not utf-8", None),
    ],
)
def test_malformed_or_mistyped_bodies_answer_422(
    served: tuple[str, str], path: str, body: bytes, field: str | None
) -> None:
    url, key = served
    response = httpx.post(
        f"{url}{path}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        content=body,
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert response.json().get("field") == field
