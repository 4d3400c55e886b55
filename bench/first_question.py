"""The first question after a start: how long a user waits, measured on a real `gedrag up`.

    .venv/bin/python bench/first_question.py [--docs N] [--wait-ready] [--root DIR]

Starts `gedrag up` in a temporary data folder, ingests the test fixtures (and N French fiches
when ../shared/datasets is there), stops it, starts it again and asks at once when /health
answers (what a user typing fast meets), or, with ``--wait-ready``, once /ready says so. Prints
the figures, then one JSON line. ``--root`` runs another source tree of gedrag (e.g. an older
commit from ``git archive``) with this virtualenv, to compare on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FICHES = ROOT.parent / "shared" / "datasets" / "fr_service_public_qa" / "corpus.jsonl"
KEY = re.compile(r"gdr_[A-Za-z0-9_-]+")
QUESTION = "What are the two general types of self-locking nuts?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(env: dict[str, str], log: Path, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "up"],
        env={**env, "PYTHONPATH": str(root)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=root,
    )


def wait_health(base: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"gedrag up exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("no /health in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ingest(base: str, key: str, docs: int) -> int:
    h = {"Authorization": f"Bearer {key}"}
    jobs = []
    with httpx.Client(base_url=base, headers=h, timeout=120) as c:
        for f in sorted(FIXTURES.iterdir()):
            if f.is_file() and f.suffix in (".pdf", ".docx", ".md", ".html"):
                r = c.post("/v1/documents", files={"file": (f.name, f.read_bytes())})
                r.raise_for_status()
                jobs.append(r.json()["job_id"])
        if docs and FICHES.exists():
            with FICHES.open(encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i >= docs:
                        break
                    row = json.loads(line)
                    text = f"# {row.get('title', '')}\n\n{row['text']}".encode()
                    r = c.post("/v1/documents", files={"file": (f"fiche-{i}.md", text)})
                    r.raise_for_status()
                    jobs.append(r.json()["job_id"])
        for job in jobs:
            while c.get(f"/v1/jobs/{job}").json()["state"] not in ("succeeded", "failed"):
                time.sleep(0.2)
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50, help="French fiches to ingest too.")
    parser.add_argument("--wait-ready", action="store_true", help="Ask once /ready is 200.")
    parser.add_argument("--root", type=Path, default=ROOT, help="Source tree to run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "GEDRAG_DATA_DIR": str(Path(tmp) / "var"),
            "GEDRAG_API__PORT": str(port),
            "DO_NOT_TRACK": "1",
            "SCARF_NO_ANALYTICS": "true",
            "UNSTRUCTURED_DISABLE_NOTICE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        log = Path(tmp) / "gedrag.log"
        proc = start(env, log, args.root)
        wait_health(base, proc)
        found = KEY.search(log.read_text(errors="replace"))
        if found is None:
            raise SystemExit("no API key printed")
        key = found.group(0)
        n = ingest(base, key, args.docs)
        stop(proc)

        t0 = time.monotonic()
        proc = start(env, log, args.root)
        try:
            healthy = wait_health(base, proc)
            ready = None
            if args.wait_ready:
                while httpx.get(f"{base}/ready", timeout=10).status_code != 200:
                    time.sleep(0.1)
                ready = time.monotonic()
            h = {"Authorization": f"Bearer {key}"}
            timings: list[float] = []
            for _ in range(3):
                t = time.monotonic()
                r = httpx.post(
                    f"{base}/v1/ask", json={"question": QUESTION}, headers=h, timeout=300
                )
                r.raise_for_status()
                timings.append(time.monotonic() - t)
            status = httpx.get(f"{base}/ready", timeout=10).json()
        finally:
            stop(proc)
    result: dict[str, Any] = {
        "root": str(args.root),
        "documents": n,
        "health_s": round(healthy - t0, 2),
        "ready_s": None if ready is None else round(ready - t0, 2),
        "first_ask_s": round(timings[0], 2),
        "second_ask_s": round(timings[1], 2),
        "third_ask_s": round(timings[2], 2),
        "start_to_first_answer_s": round(
            healthy - t0 + (ready - healthy if ready else 0) + timings[0], 2
        ),
        "ready_components": sorted(status.get("components", {})),
    }
    print(
        f"{n} documents; /health after {result['health_s']} s"
        + (f", /ready after {result['ready_s']} s" if ready else "")
        + f"; first /v1/ask {result['first_ask_s']} s, then {result['second_ask_s']} s, "
        f"{result['third_ask_s']} s"
    )
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
