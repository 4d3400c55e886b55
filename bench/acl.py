"""Access-list benchmark (issue #19): what access lists cost a search, with 1, 100 and 1,000
groups in the tenant, and that no answer leaks.

    nice .venv/bin/python bench/acl.py [--dataset DIR] [--documents 200] [--requests 200]

The app runs in-process (the embedded worker, the default stores); ``--documents`` pages of the
dataset (``corpus.jsonl`` and ``queries.jsonl``, BEIR layout; default the shared French
service-public set) are uploaded into ten collections. Then, for each group count G:

- the tenant has G groups; collections ``c0``..``c4`` are restricted, each readable by the
  groups whose number is ``i`` modulo 5 (with one group only ``c0`` is restricted: an empty
  list leaves a collection open); ``c5``..``c9`` stay open;
- the measured reader belongs to every group numbered 0 or 1 modulo 5 (a fifth of them when
  G = 1: its one group), so it reads ``c0``, ``c1`` where they grant it, and the open ones;
- ``/v1/search`` is timed for the reader and for an administrator (who reads everything: no
  access-list query, no filter: the no-ACL figure) in alternating blocks of the same questions,
  so both see the same machine load; p50 and p95 of each, and the ratio of the p95s;
- every passage the reader got is checked against the catalog's access lists: leaks counted.

Before any list exists, the same reader against the administrator gives the cost of the
access-list query alone (phase ``open``). Prints its figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from core.settings import Settings
from evaluation.metrics import percentile
from serving.app import create_app

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "fr_service_public_qa"
COLLECTIONS = [f"c{i}" for i in range(10)]
RESTRICTED = COLLECTIONS[:5]
PASSWORD = "bench-reader-password"


def ok(r: Any, *codes: int) -> Any:
    if r.status_code not in (codes or (200,)):
        raise SystemExit(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


def upload(client: TestClient, auth: dict[str, str], corpus: list[dict[str, Any]]) -> int:
    """Upload the pages round-robin into the ten collections; wait for every job."""
    jobs: list[str] = []
    for i, row in enumerate(corpus):
        text = ((row.get("title") or "") + "\n\n" + row["text"]).strip().encode()
        r = client.post(
            "/v1/documents",
            headers=auth,
            files={"file": (f"{row['_id']}.txt", text, "text/plain")},
            data={"collection": COLLECTIONS[i % len(COLLECTIONS)]},
        )
        body = ok(r, 202)
        if body.get("job_id"):
            jobs.append(body["job_id"])
    pending = set(jobs)
    while pending:
        for job_id in list(pending):
            if ok(client.get(f"/v1/jobs/{job_id}", headers=auth))["state"] in (
                "succeeded",
                "failed",
            ):
                pending.discard(job_id)
        time.sleep(0.5)
    return len(jobs)


def grow_groups(client: TestClient, admin: dict[str, str], have: list[str], want: int) -> None:
    while len(have) < want:
        have.append(
            ok(client.post("/v1/groups", headers=admin, json={"name": f"g{len(have)}"}), 201)["id"]
        )


def restrict(client: TestClient, admin: dict[str, str], groups: list[str], reader: str) -> None:
    """``c0``..``c4`` readable by their groups; the reader in groups 0 and 1 modulo 5."""
    for i, name in enumerate(RESTRICTED):
        entries = [
            {"principal": f"group:{g}", "permission": "read"}
            for n, g in enumerate(groups)
            if n % len(RESTRICTED) == i
        ]
        ok(client.put(f"/v1/collections/{name}/access", headers=admin, json={"entries": entries}))
    for n, g in enumerate(groups):
        members = [reader] if n % len(RESTRICTED) in (0, 1) else []
        ok(client.put(f"/v1/groups/{g}/members", headers=admin, json={"user_ids": members}))


def readable(client: TestClient, reader_auth: dict[str, str]) -> set[str]:
    """The documents the reader may read, as the catalog lists them (the truth leaks are
    counted against)."""
    found: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get("/v1/documents", headers=reader_auth, params=params))
        found |= {d["id"] for d in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found


def timed(
    client: TestClient,
    who: dict[str, dict[str, str]],
    questions: list[str],
    n: int,
    block: int,
    allowed: set[str] | None,
) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in who}
    leaks = passages = 0
    i = 0
    while min(len(v) for v in times.values()) < n:
        for name, auth in who.items():
            for k in range(block):
                q = questions[(i + k) % len(questions)]
                start = time.perf_counter()
                r = client.post("/v1/search", headers=auth, json={"query": q, "top_k": 10})
                times[name].append((time.perf_counter() - start) * 1000)
                got = ok(r)["passages"]
                if name == "reader" and allowed is not None:
                    passages += len(got)
                    leaks += sum(p["document_id"] not in allowed for p in got)
        i += block
    out: dict[str, Any] = {
        name: {
            "p50_ms": round(percentile(v[:n], 50), 1),
            "p95_ms": round(percentile(v[:n], 95), 1),
        }
        for name, v in times.items()
    }
    out["p95_ratio"] = round(out["reader"]["p95_ms"] / out["admin"]["p95_ms"], 3)
    out["p50_ratio"] = round(out["reader"]["p50_ms"] / out["admin"]["p50_ms"], 3)
    out["reader_passages"] = passages
    out["leaks"] = leaks
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=DATASET, help="BEIR layout folder")
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200, help="searches per caller, phase")
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--groups", default="1,100,1000")
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").is_file():
        print(json.dumps({"bench": "acl", "skipped": f"no corpus.jsonl in {args.dataset}"}))
        return
    corpus = [
        json.loads(line) for line in (args.dataset / "corpus.jsonl").read_text().splitlines()
    ][: args.documents]
    questions = [
        json.loads(line)["text"]
        for line in (args.dataset / "queries.jsonl").read_text().splitlines()
    ]
    counts = [int(g) for g in args.groups.split(",")]
    result: dict[str, Any] = {
        "bench": "acl",
        "dataset": args.dataset.name,
        "documents": len(corpus),
        "requests": args.requests,
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        TestClient(create_app(Settings(data_dir=Path(tmp) / "var"))) as client,
    ):
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        catalog.tenants.create("bench")
        key, _ = catalog.tenants.create_key("bench")
        admin = {"Authorization": f"Bearer {key}"}
        start = time.perf_counter()
        result["jobs"] = upload(client, admin, corpus)
        result["ingest_s"] = round(time.perf_counter() - start, 1)
        reader_id = ok(
            client.post(
                "/v1/users",
                headers=admin,
                json={"username": "reader", "roles": ["reader"], "password": PASSWORD},
            ),
            201,
        )["id"]

        def login() -> dict[str, str]:
            body = {"tenant": "bench", "username": "reader", "password": PASSWORD}
            token = ok(client.post("/v1/auth/login", json=body))["token"]
            return {"Authorization": f"Bearer {token}"}

        for q in questions[:20]:  # warm-up, not counted
            ok(client.post("/v1/search", headers=admin, json={"query": q}))
        phases: dict[str, Any] = {}
        callers = {"admin": admin, "reader": login()}
        phases["open"] = timed(client, callers, questions, args.requests, args.block, None)
        groups: list[str] = []
        for g in counts:
            grow_groups(client, admin, groups, g)
            restrict(client, admin, groups, reader_id)
            callers = {"admin": admin, "reader": login()}
            allowed = readable(client, callers["reader"])
            phase = timed(client, callers, questions, args.requests, args.block, allowed)
            phase["readable_documents"] = len(allowed)
            phases[f"{g}_groups"] = phase
        result["phases"] = phases
    print(f"{'phase':<12} {'admin p50/p95':>16} {'reader p50/p95':>16} {'p95 ratio':>10} leaks")
    for name, p in phases.items():
        print(
            f"{name:<12} {p['admin']['p50_ms']:>7} / {p['admin']['p95_ms']:<6} "
            f"{p['reader']['p50_ms']:>7} / {p['reader']['p95_ms']:<6} {p['p95_ratio']:>10} "
            f"{p['leaks']}"
        )
    result["target"] = "reader p95 within 10 % of the administrator's (no access lists)"
    result["met"] = all(p["p95_ratio"] <= 1.10 for p in phases.values())
    result["leaks"] = sum(p["leaks"] for p in phases.values())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
