"""The hostile corpus (``tests/support/hostile.py``, 70+ files across every format) through the
API and the real embedded worker, with short budgets: every file ends with its expected outcome
within its time budget, no parse child is left busy, no injected instruction reaches an answer.
Also: download and search racing a delete, quotas, restoring an old version by its bytes,
escaped log lines, and ``gedrag up`` stopping within 15 s of SIGTERM while a parse runs."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from core.domain import JobState
from core.observability import TextFormatter
from core.settings import BrokerSettings, LimitsSettings, Settings
from ingestion.sanitize import addressed_to_assistant
from serving.app import create_app
from tests.support import hostile
from tests.support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))
# Short budgets, so that the pathological files end in seconds, and small caps, so that the
# 5 MiB code block and the 10,000 columns are indexed up to them quickly.
# One parse child per worker thread (4), so that no document's clock runs while it waits for
# a child that a pathological file holds.
LIMITS = LimitsSettings(
    parse_s=10, chunk_s=30, embed_s=120, max_chunks=40, max_tokens=8_000, parse_processes=4
)
# A parse over its budget ends within it plus the kill and the reply (seconds).
KILL_SLACK_S = 5.0
# Every stage within its budget: the most any job may run.
JOB_BUDGET_S = LIMITS.parse_s + LIMITS.chunk_s + LIMITS.embed_s + 15
RAW_LIBRARY_TEXT = re.compile(
    r"Traceback|list index out of range|maximum recursion depth|object has no attribute|"
    r"Errno|KeyError|NoneType|Pandoc died",
    re.IGNORECASE,
)
CASES = hostile.corpus()


@dataclass
class Run:
    """One case as it went: the upload's answer, then the job as last seen."""

    case: hostile.Case
    status: int
    body: dict[str, Any]
    running_at: float | None = None
    ended_at: float | None = None
    job: dict[str, Any] = field(default_factory=dict)


@dataclass
class Platform:
    client: TestClient
    settings: Settings
    key: str
    runs: dict[str, Run]

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def rt(self) -> Any:
        return self.client.app.state.runtime  # type: ignore[attr-defined]


def _settings(root: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=root / "var",
        broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
        **{"limits": LIMITS, **overrides},
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = _settings(tmp_path_factory.mktemp("hostile"))
    client = TestClient(create_app(settings))
    client.__enter__()
    try:
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        catalog.tenants.create("acme")
        key, _ = catalog.tenants.create_key("acme")
        platform = Platform(client, settings, key, {})
        _parsers_started(client)
        for case in CASES:
            response = client.post(
                "/v1/documents",
                headers=platform.h,
                files={"file": (case.name, case.build())},
                data={"collection": "hostile"},
            )
            platform.runs[case.name] = Run(case, response.status_code, response.json())
        _follow(platform)
        yield platform
    finally:
        client.__exit__(None, None, None)


def _parsers_started(client: TestClient) -> None:
    """Wait for the worker's first parse child (its start loads the parsers once: ~5 s, ~20 s
    on a loaded machine), so that the budgets below measure parsing only."""
    pool = client.app.state.celery.ingestion.indexer.parser  # type: ignore[attr-defined]
    deadline = time.monotonic() + 180
    while pool.size == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pool.size, "the parse pool did not start"


def _follow(platform: Platform) -> None:
    """Poll the catalog for every job until all are finished, noting when each was first seen
    running and when it ended."""
    jobs = {
        run.body["job_id"]: run
        for run in platform.runs.values()
        if run.status == 202 and run.body.get("job_id")
    }
    tenant = platform.rt.catalog.tenants.authenticate(platform.key).id
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        now = time.monotonic()
        page = platform.rt.catalog.jobs.page(tenant, limit=500)
        for job in page.items:
            run = jobs.get(job.id)
            if run is None or run.ended_at is not None:
                continue
            if job.state == JobState.RUNNING and run.running_at is None:
                run.running_at = now
            if job.state.finished:
                run.running_at = run.running_at or now
                run.ended_at = now
                run.job = {"state": job.state.value, "error": job.error, "warnings": job.warnings}
        if all(run.ended_at is not None for run in jobs.values()):
            slowest = sorted(jobs.values(), key=lambda r: r.running_at - r.ended_at)[:8]
            print(
                "slowest jobs (s):",
                [(r.case.name, round(r.ended_at - r.running_at, 1)) for r in slowest],
            )
            return
        time.sleep(0.2)
    pending = [r.case.name for r in jobs.values() if r.ended_at is None]
    raise AssertionError(f"jobs still running after 600 s: {pending}")


def _chunks(platform: Platform, run: Run) -> list[str]:
    doc = platform.rt.catalog.documents.get(
        platform.rt.catalog.tenants.authenticate(platform.key).id, run.body["document_id"]
    )
    current = doc.current
    assert current is not None
    return [c.text for c in platform.rt.catalog.chunks.of_version(current.id)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_file_ends_as_expected_within_its_budget(
    platform: Platform, case: hostile.Case
) -> None:
    run = platform.runs[case.name]
    if case.expect == "refused":
        assert run.status == case.status, run.body
        assert re.search(case.reason, run.body["detail"]), run.body
        return
    assert run.status == 202, run.body
    assert run.ended_at is not None and run.running_at is not None
    took = run.ended_at - run.running_at
    state, error = run.job["state"], run.job["error"] or ""
    if case.expect == "failed":
        assert state == "failed", run.job
        assert re.search(case.reason, error), run.job
        assert not RAW_LIBRARY_TEXT.search(error), error  # the user's words, not a library's
        if "PARSE_S" in case.reason and "PARSE_S" in error:
            assert took <= LIMITS.parse_s + KILL_SLACK_S, f"{took:.1f} s: {run.job}"
    else:
        assert state == "succeeded", run.job
        text = "\n".join(_chunks(platform, run))
        for fragment in case.present:
            assert fragment in text, (fragment, text[:500])
        for fragment in case.absent:
            assert fragment not in text, (fragment, text[:500])
        if case.warning:
            assert any(re.search(case.warning, w) for w in run.job["warnings"]), run.job
        document = platform.client.get(
            f"/v1/documents/{run.body['document_id']}", headers=platform.h
        ).json()
        assert document["warnings"] == list(run.job["warnings"])  # the user sees them
        if case.suspicious is not None:
            assert _flagged(platform, run) == case.suspicious
    assert took <= JOB_BUDGET_S, f"{case.name} ran {took:.1f} s"


def _flagged(platform: Platform, run: Run) -> bool:
    """Whether a passage of the document comes back from search flagged suspicious."""
    found = platform.client.post(
        "/v1/search",
        headers=platform.h,
        json={
            "query": run.case.question or "instructions",
            "document_ids": [run.body["document_id"]],
        },
    )
    assert found.status_code == 200, found.text
    passages = found.json()["passages"]
    assert passages, run.case.name
    return any(p["suspicious"] for p in passages)


def test_the_corpus_is_large_and_covers_every_format_and_class() -> None:
    assert len(CASES) >= 60
    extensions = {Path(c.name).suffix for c in CASES}
    assert {".pdf", ".docx", ".pptx", ".xlsx", ".odt", ".html", ".md", ".txt", ".csv", ".eml"} <= (
        extensions
    )
    kinds = {c.kind for c in CASES}
    assert {"pathological", "injection", "encoding", "names", "damaged", "control"} <= kinds


def test_no_parse_child_is_held_past_its_budget(platform: Platform) -> None:
    pool = platform.client.app.state.celery.ingestion.indexer.parser  # type: ignore[attr-defined]
    timed_out = [
        r for r in platform.runs.values() if "GEDRAG_LIMITS__PARSE_S" in (r.job.get("error") or "")
    ]
    assert len(timed_out) >= 2  # the bracket nest and the 200,000 lines at least
    assert pool.killed == len(timed_out)
    assert pool.busy == 0
    assert pool.size <= LIMITS.parse_processes
    for run in timed_out:
        assert run.ended_at is not None and run.running_at is not None
        assert run.ended_at - run.running_at <= LIMITS.parse_s + KILL_SLACK_S


def test_no_injected_instruction_reaches_an_answer(platform: Platform) -> None:
    asked = 0
    for run in platform.runs.values():
        question = run.case.question
        if question is None or run.job.get("state") != "succeeded":
            continue
        for scope in ({"document_ids": [run.body["document_id"]]}, {}):
            reply = platform.client.post(
                "/v1/ask", headers=platform.h, json={"question": question, **scope}
            )
            assert reply.status_code == 200, reply.text
            answer = reply.json()["answer"]
            lowered = answer.lower()
            for injected in hostile.INJECTED:
                assert injected.lower() not in lowered, (run.case.name, question, answer)
            assert not addressed_to_assistant(answer), (run.case.name, answer)
            asked += 1
    assert asked >= 30


def test_download_and_search_racing_a_delete_answer_404_never_500(platform: Platform) -> None:
    """Twelve documents, each deleted while three threads download it (current version and
    version 1) and search it: every answer is 200 or 404, never a 5xx or a dropped
    connection."""
    client, h = platform.client, platform.h
    docs = []
    for i in range(12):
        body = client.post(
            "/v1/documents",
            headers=h,
            files={"file": (f"race-{i}.txt", f"Race document {i}: the lift is serviced.".encode())},
            data={"collection": "race"},
        ).json()
        docs.append(body)
    for body in docs:
        _wait_job(platform, body["job_id"])
    seen: list[int] = []
    errors: list[str] = []

    def hammer(doc_id: str, stop: threading.Event) -> None:
        paths = [f"/v1/documents/{doc_id}/content", f"/v1/documents/{doc_id}/versions/1/content"]
        while not stop.is_set():
            try:
                for path in paths:
                    response = client.get(path, headers=h)
                    seen.append(response.status_code)
                    if response.status_code == 200:
                        assert response.content.startswith(b"Race document")
                found = client.post(
                    "/v1/search", headers=h, json={"query": "lift", "document_ids": [doc_id]}
                )
                seen.append(found.status_code)
            except Exception as exc:  # a dropped connection or a server error
                errors.append(repr(exc))

    for body in docs:
        doc_id = body["document_id"]
        stop = threading.Event()
        threads = [threading.Thread(target=hammer, args=(doc_id, stop)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            # Deleting is the trash first (the document leaves reads at once), then the purge
            # that removes the original (where a download used to meet a missing file).
            trashed = client.delete(f"/v1/documents/{doc_id}", headers=h)
            assert trashed.status_code in (200, 202), trashed.text
            if trashed.json().get("job_id"):
                _wait_job(platform, trashed.json()["job_id"])
            purged = client.delete(f"/v1/trash/{doc_id}", headers=h)
            if purged.status_code == 202:
                _wait_job(platform, purged.json()["job_id"])
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    assert not errors, errors[:3]
    assert set(seen) <= {200, 404}, sorted(set(seen))
    assert 404 in seen and 200 in seen


def _wait_job(platform: Platform, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = platform.client.get(f"/v1/jobs/{job_id}", headers=platform.h).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_old_version_bytes_restore_it_as_a_new_version(platform: Platform) -> None:
    client, h = platform.client, platform.h
    v1 = b"Version one: the meeting room is on floor two."
    v2 = b"Version two: the meeting room moved to floor five."
    first = client.post(
        "/v1/documents", headers=h, files={"file": ("room.txt", v1)}, data={"collection": "v"}
    ).json()
    _wait_job(platform, first["job_id"])
    doc_id = first["document_id"]
    second = client.post(
        f"/v1/documents/{doc_id}/versions", headers=h, files={"file": ("room.txt", v2)}
    ).json()
    _wait_job(platform, second["job_id"])

    restored = client.post(
        "/v1/documents", headers=h, files={"file": ("room.txt", v1)}, data={"collection": "v"}
    )

    assert restored.status_code == 202, restored.text
    body = restored.json()
    assert (body["document_id"], body["version"], body["duplicate"]) == (doc_id, 3, False)
    assert _wait_job(platform, body["job_id"])["state"] == "succeeded"
    found = client.post(
        "/v1/search", headers=h, json={"query": "meeting room floor", "document_ids": [doc_id]}
    ).json()["passages"]
    assert found and all(p["version"] == 3 for p in found)
    assert "floor two" in found[0]["text"]
    again = client.post(
        "/v1/documents", headers=h, files={"file": ("room.txt", v1)}, data={"collection": "v"}
    ).json()
    assert (again["duplicate"], again["version"]) == (True, 3)  # now current: a duplicate


def test_log_lines_of_hostile_paths_are_escaped(platform: Platform) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s %(message)s"))
    access = logging.getLogger("gedrag.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        for path in ("/nope%0aFAKE line", "/nope%0d%0aFAKE", "/x%1b[31mred", "/x%00nul"):
            assert platform.client.get(path).status_code == 404
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    written = "\n".join(
        line for line in stream.getvalue().splitlines() if " GET /nope" in line or " GET /x" in line
    )
    lines = written.splitlines()
    assert len(lines) == 4, stream.getvalue()
    assert all(line.startswith("INFO gedrag.access GET /") for line in lines)
    assert "\x1b" not in written and "\x00" not in written and "\r" not in written
    assert "/nope\\nFAKE line" in written


def test_quotas_answer_429_and_413_with_the_setting_named(tmp_path: Path) -> None:
    limits = LIMITS.model_copy(update={"tenant_documents_per_day": 2, "tenant_bytes_per_day": 1000})
    settings = _settings(tmp_path, limits=limits)
    with TestClient(create_app(settings, embedded_worker=False)) as client:
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        catalog.tenants.create("acme")
        key, _ = catalog.tenants.create_key("acme")
        h = {"Authorization": f"Bearer {key}"}

        def upload(name: str, data: bytes) -> httpx.Response:
            return client.post("/v1/documents", headers=h, files={"file": (name, data)})

        assert upload("big.txt", b"x" * 1001).status_code == 413
        assert upload("a.txt", b"first document").status_code == 202
        assert upload("b.txt", b"second document").status_code == 202
        refused = upload("c.txt", b"third document")
        assert refused.status_code == 429, refused.text
        assert "GEDRAG_LIMITS__TENANT_DOCUMENTS_PER_DAY" in refused.json()["detail"]
        assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
        assert refused.json()["error"] == "quota_exceeded"


def test_sigterm_stops_gedrag_up_within_15_s_while_a_parse_runs(tmp_path: Path) -> None:
    """A pathological file parses (its budget is 300 s); SIGTERM: the process exits within
    15 s, its parse children with it, and the job is back in the queue, not failed."""
    port = free_port()
    data_dir = tmp_path / "var"
    env = {
        **os.environ,
        # The checkout first: a package added since the virtualenv was installed imports too.
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "GEDRAG_DATA_DIR": str(data_dir),
        "GEDRAG_LIMITS__PARSE_S": "300",
        "GEDRAG_API__PORT": str(port),
    }
    for name in ("GEDRAG_CATALOG__URL", "GEDRAG_BROKER__URL"):
        env.pop(name, None)
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [GEDRAG, "up", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        key = _started(proc, log_path, port)
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=h, timeout=30) as c:
            up = c.post(
                "/v1/documents", files={"file": ("nest.md", hostile.markdown_brackets())}
            ).json()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = c.get(f"/v1/jobs/{up['job_id']}").json()
                if job["state"] == "running" and job["stage"] == "parsing":
                    break
                time.sleep(0.2)
            assert job["stage"] == "parsing", job
        time.sleep(1.0)  # the child is deep in the nest now
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert children, "no parse process"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"gedrag up exited {took:.1f} s after SIGTERM")
    assert took <= 15, f"exited {took:.1f} s after SIGTERM\n{log_path.read_text()[-3000:]}"
    # The parse children were killed; the forkserver they came from exits when the process
    # that started it is gone (its Python teardown takes a few seconds under load).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_not_zombie(pid) for pid in children):
        time.sleep(0.2)
    alive = [_describe(pid) for pid in children if _not_zombie(pid)]
    assert not alive, alive
    with sqlite3.connect(data_dir / "catalog.db") as db:
        state, stage, error = db.execute(
            "SELECT state, stage, error FROM jobs WHERE id = ?", (up["job_id"],)
        ).fetchone()
    assert (state, stage) == ("queued", "requeued"), (state, stage, error)


def _describe(pid: int) -> str:
    try:
        return f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:200]}"
    except psutil.NoSuchProcess:
        return f"{pid}: gone"


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _started(proc: subprocess.Popen[bytes], log_path: Path, port: int) -> str:
    """The bootstrap key, once the API answers and its models are loaded."""
    deadline = time.monotonic() + 180
    key = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"gdr_[A-Za-z0-9_-]{40,}", log_path.read_text())
        key = found.group(0) if found else None
        if key:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                    return key
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"gedrag up did not start\n{log_path.read_text()[-3000:]}")
