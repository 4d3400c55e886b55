"""The CLI as a user runs it: `gedrag up` in its own process, then curl-like calls and
`gedrag ingest` / `gedrag docs list` against it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES
from tests.support.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    port = free_port()
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(tmp_path / "var"),
        "GEDRAG_CLIENT__URL": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    }
    for name in ("GEDRAG_CATALOG__URL", "GEDRAG_BROKER__URL", "GEDRAG_API__PORT"):
        env.pop(name, None)
    log = (tmp_path / "up.log").open("w+")
    # The address on the command line (issue #21: only environment variables set it).
    command = [GEDRAG, "up", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        key = None
        while time.monotonic() < deadline and proc.poll() is None:
            text = (tmp_path / "up.log").read_text()
            found = re.search(r"gdr_[A-Za-z0-9_-]{40,}", text)
            key = found.group(0) if found else None
            if key and "Application startup complete" in text:
                break
            time.sleep(0.3)
        assert key, (tmp_path / "up.log").read_text()
        # where to go next, said at start
        assert f"web console: http://127.0.0.1:{port}/" in (tmp_path / "up.log").read_text()
        yield f"http://127.0.0.1:{port}", key, {**env, "GEDRAG_CLIENT__API_KEY": key}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_up_prints_a_key_and_serves_the_api(platform: tuple[str, str, dict[str, str]]) -> None:
    url, key, env = platform
    auth = {"Authorization": f"Bearer {key}"}
    pdf = (FIXTURES / "unstructured_fake-memo.pdf").read_bytes()
    with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
        up = c.post(
            "/v1/documents", files={"file": ("memo.pdf", pdf)}, data={"collection": "memos"}
        )
        assert up.status_code == 202, up.text
        body = up.json()
        for _ in range(300):
            job = c.get(f"/v1/jobs/{body['job_id']}").json()
            if job["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert job["state"] == "succeeded", job
        assert c.get(f"/v1/documents/{body['document_id']}/content").content == pdf

    folder = FIXTURES
    run = subprocess.run(
        [
            GEDRAG,
            "ingest",
            str(folder / "docling_mixed.md"),
            str(folder / "unstructured_fake.docx"),
            "--collection",
            "cli",
            "--tag",
            "fixture",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 of 2 file(s) ingested into 'cli'" in run.stdout
    listed = subprocess.run(
        [GEDRAG, "docs", "list", "--collection", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    # titles: docling_mixed.md's first heading ("Title"), the DOCX without one its file name
    assert "Title" in listed.stdout and "unstructured_fake" in listed.stdout
    narrow = subprocess.run(
        [GEDRAG, "docs", "list"],
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, narrow.stdout
    ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", narrow.stdout)
    assert len(ids) == 3, narrow.stdout  # every id whole on one line, ready to copy
    assert "unstructured_fake" in narrow.stdout and "memos" in narrow.stdout

    faa = subprocess.run(
        [GEDRAG, "ingest", str(folder / "docling_amt_handbook_sample.pdf"), "--collection", "faa"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert faa.returncode == 0, faa.stdout + faa.stderr
    answer = subprocess.run(
        [GEDRAG, "ask", "What are the two general types of self-locking nuts?", "-c", "faa"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    assert "all-metal type and the fiber lock type" in answer.stdout
    # titled by its PDF /Title
    assert "Sources" in answer.stdout and "AMT General Handbook (v1)" in answer.stdout
    with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
        body = c.post(
            "/v1/ask",
            json={
                "question": "What are the two general types of self-locking nuts?",
                "collections": ["faa"],
            },
        ).json()
        assert body["grounded"] and body["citations"][0]["page"] == 1
        assert "self-locking nuts" in body["citations"][0]["quote"]
        stream = c.post(
            "/v1/ask",
            json={
                "question": "What are the two general types of self-locking nuts?",
                "collections": ["faa"],
                "stream": True,
            },
        ).text
        assert "event: token" in stream and "event: citations" in stream and "event: done" in stream
        none = c.post("/v1/ask", json={"question": "Who won the 1998 football world cup?"}).json()
        assert none["grounded"] is False and none["answer"].startswith("Not found")

    missing = subprocess.run(
        [GEDRAG, "ingest", "/no/such/file"], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_admin_commands(tmp_path: Path) -> None:
    env = {**os.environ, "GEDRAG_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "200"}

    def gedrag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GEDRAG, *args], env=env, capture_output=True, text=True, timeout=60)

    created = gedrag("tenants", "create", "acme")
    assert created.returncode == 0 and re.search(r"gdr_\S+", created.stdout)
    assert gedrag("tenants", "create", "acme").returncode == 1
    assert "acme" in gedrag("tenants", "list").stdout
    key = gedrag("keys", "create", "acme", "--name", "ci")
    key_id = re.search(r"key (\S+) for", key.stdout)
    assert key_id
    assert gedrag("keys", "revoke", key_id.group(1)).returncode == 0
    listing = gedrag("keys", "list", "acme").stdout
    assert "ci" in listing and "initial" in listing
    assert gedrag("keys", "list", "nobody").returncode == 1
    for command in ("up", "api"):
        helped = gedrag(command, "--help")
        assert "--host" in helped.stdout and "--port" in helped.stdout, helped.stdout
    no_redis = gedrag("worker")
    assert no_redis.returncode == 1 and "only serves `gedrag up`" in no_redis.stderr
