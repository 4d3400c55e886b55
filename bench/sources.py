"""Sources benchmark: a watched folder of 1,000 files and a mailbox of 200 mails, synced by
gedrag as `gedrag up` runs it (the API, its embedded worker and the ticker that stands in for
Celery beat; Dovecot started on loopback for the mailbox).

    nice .venv/bin/python bench/sources.py [--files 1000] [--mails 200] [--limit N]

1. Import: every file and attachment taken and searchable (its document active, i.e. in the
   vector store and the graph); a sample of files found again by a phrase of their own.
2. Re-sync with no change: how long a round over the whole folder takes, and that nothing is
   processed again (no new job).
3. 50 changed files and 20 deleted ones: only those are processed; each deleted one is counted
   gone from the catalog, the vectors and the graph.

The folder holds text files (SQuAD paragraphs and French service-public pages, ../shared/
datasets) and copies of the doc_fixtures made distinct (a PDF comment, a zip comment, a line
of text), plus exact copies in a second folder (one document, two origins). Prints its figures,
then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.errors import NotFound
from core.settings import Settings, SourcesSettings
from serving.app import create_app
from stores.catalog.models import utcnow

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TIMEOUT_S = 3600
MIME = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".html": "text/html",
    ".md": "text/markdown",
    ".txt": "text/plain",
}


def texts(datasets: Path) -> list[tuple[str, str]]:
    """(title, text) of SQuAD paragraphs and French service-public pages."""
    out: list[tuple[str, str]] = []
    for corpus in ("squad_v2_dev_subset", "fr_service_public_qa"):
        path = datasets / corpus / "corpus.jsonl"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                out.append((row.get("title") or row["_id"], row["text"]))
    return out


def vary(name: str, data: bytes, n: int) -> bytes:
    """Distinct bytes, same document: a PDF comment, a zip comment, a line of text."""
    ext = Path(name).suffix
    if ext == ".pdf":
        return data + f"\n%gedrag copy {n}\n".encode()
    if ext in {".docx", ".pptx", ".odt", ".xlsx"}:
        src = zipfile.ZipFile(io.BytesIO(data))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info.filename), compress_type=info.compress_type)
            dst.comment = f"gedrag copy {n}".encode()
        return buf.getvalue()
    if ext == ".html":
        return data.replace(b"</body>", f"<p>Copy {n}.</p></body>".encode(), 1)
    return data + f"\n\nCopy {n}.\n".encode()


def corpus(datasets: Path, files: int, seed: int = 7) -> tuple[dict[str, bytes], dict[str, str]]:
    """``relative path → bytes`` of the folder, and ``path → a phrase of its own`` for the
    text files (the search check)."""
    rng = random.Random(seed)
    fixtures = sorted(
        p for p in (datasets / "doc_fixtures").rglob("*") if p.suffix in MIME and p.is_file()
    )
    pool = texts(datasets)
    rng.shuffle(pool)
    out: dict[str, bytes] = {}
    phrases: dict[str, str] = {}
    copies = max(1, files // 50)  # exact copies in a second folder: one document, two origins
    n_fixture = min(len(fixtures) * 7, files // 7)
    for i in range(n_fixture):
        src = fixtures[i % len(fixtures)]
        name = f"fixtures/{i:04d}-{src.name}"
        out[name] = vary(src.name, src.read_bytes(), i)
    i = 0
    while len(out) < files - copies:
        title, text = pool[i % len(pool)]
        lap = i // len(pool)
        ext = ".md" if i % 3 else ".txt"
        name = f"texts/{i // 100:02d}/{i:04d}{ext}"
        body = f"# {title}\n\n{text}\n" + (f"\nCopy {lap}.\n" if lap else "")
        out[name] = body.encode()
        phrases[name] = " ".join(text.split()[:14])
        i += 1
    originals = [k for k in out if k.startswith("texts/")][:copies]
    for k in originals:
        out["copies/" + k.split("/", 1)[1]] = out[k]
    return out, phrases


def mails(files: dict[str, bytes], count: int, seed: int = 11) -> list[bytes]:
    """Mails with one or two attachments from the folder's files (a few shared by two mails)."""
    rng = random.Random(seed)
    names = sorted(files)
    out = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = f"Sender {i % 17} <sender{i % 17}@example.org>"
        msg["To"] = "invoices@acme.example"
        msg["Subject"] = f"Documents {i}"
        msg["Date"] = "Tue, 02 Dec 2026 09:30:00 +0100"
        msg["Message-ID"] = f"<bench-{i}@example.org>"
        msg.set_content(f"Mail {i}: see the attachments.\n")
        if i % 25 == 0:
            picks = [names[0]]  # the same file in every 25th mail: one document, many origins
        else:
            picks = [rng.choice(names) for _ in range(2 if i % 10 == 0 else 1)]
        for name in picks:
            data = files[name]
            if i % 25 and name.endswith((".md", ".txt")):
                data += f"\n\nMailed {i}.\n".encode()
            maintype, subtype = MIME[Path(name).suffix].split("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=Path(name).name)
        out.append(bytes(msg))
    return out


def wait(
    what: str, check: Callable[[], Any], timeout: float = TIMEOUT_S, every: float = 1.0
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise SystemExit(f"{what}: not within {timeout} s")


class Bench:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.h = headers
        self.rt = client.app.state.runtime  # type: ignore[attr-defined]

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, headers=self.h, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        r = self.client.post(path, headers=self.h, json=body)
        if r.status_code >= 400:
            raise SystemExit(f"{path}: {r.status_code} {r.text}")
        return r.json()

    def sql(self, query: str, **params: Any) -> int:
        with self.rt.catalog.engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar_one())

    def jobs(self, since: datetime, kind: str | None = None) -> int:
        """Jobs created since then (a purge removes its document's earlier jobs: counting
        rows before and after would miss as many new ones)."""
        query = "SELECT count(*) FROM jobs WHERE created_at >= :t"
        if kind is None:
            return self.sql(query, t=since.replace(tzinfo=None))
        return self.sql(query + " AND kind = :k", t=since.replace(tzinfo=None), k=kind)

    def unfinished(self) -> int:
        return self.sql("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")

    def items(self, source_id: str) -> int:
        return self.sql("SELECT count(*) FROM source_items WHERE source_id = :s", s=source_id)

    def document_of(self, source_id: str, key: str) -> str | None:
        with self.rt.catalog.engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT document_id FROM source_items WHERE source_id = :s AND key = :k"),
                {"s": source_id, "k": key},
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def source(self, source_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/v1/sources/{source_id}")
        return found

    def settled(self, source_id: str) -> bool:
        """The source has no round running, nothing left to take now, and no job pending."""
        s = self.source(source_id)
        return bool(
            s["status"] in ("ok", "failing")
            and not s["last_round"].get("more")
            and not s["last_round"].get("settling")
            and not s["last_round"].get("waiting_jobs")
        )

    def round_after(self, source_id: str, since: str | None) -> dict[str, Any]:
        """The first round of the source that ended after ``since``."""

        def ended() -> dict[str, Any] | None:
            s = self.source(source_id)
            if s["status"] != "syncing" and s["last_finished_at"] != since:
                return s
            return None

        return dict(wait("a sync round", ended, every=0.2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        "--datasets",
        dest="datasets",
        type=Path,
        default=DATASETS,
        help="the folder holding doc_fixtures, squad_v2_dev_subset and fr_service_public_qa",
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mails", type=int, default=200)
    parser.add_argument(
        "--limit", type=int, help="a quick run: this many files, a fifth as many mails"
    )
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--deletions", type=int, default=20)
    args = parser.parse_args()
    os.nice(10)  # the machine is shared: the benchmark yields to everything else
    files_n = args.limit or args.files
    mails_n = max(1, files_n // 5) if args.limit else args.mails
    changes_n = min(args.changes, files_n // 10) if args.limit else args.changes
    deletions_n = min(args.deletions, files_n // 25) if args.limit else args.deletions
    if not (args.datasets / "doc_fixtures").is_dir():
        raise SystemExit(f"no datasets at {args.datasets} (pass --datasets)")

    root = Path(tempfile.mkdtemp(prefix="gedrag-bench-sources-"))
    try:
        run(root, args.datasets, files_n, mails_n, changes_n, deletions_n)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(
    root: Path, datasets: Path, files_n: int, mails_n: int, changes_n: int, deletions_n: int
) -> None:
    from contextlib import ExitStack

    files, phrases = corpus(datasets, files_n)
    folder = root / "shares" / "scans"
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"folder: {len(files)} files ({sum(map(len, files.values())) / 1e6:.1f} MB)", flush=True)

    stack = ExitStack()
    imap = None
    if mails_n:
        try:
            from tests.support.mailshare import dovecot

            imap = stack.enter_context(dovecot())
            for raw in mails(files, mails_n):
                imap.append(raw)
            print(f"mailbox: {mails_n} mails on Dovecot 127.0.0.1:{imap.port}", flush=True)
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"mailbox skipped: {exc}", flush=True)
    settle_s = 2.0
    settings = Settings(
        data_dir=root / "var",
        sources=SourcesSettings(folder_roots=[root / "shares"], tick_s=2, settle_s=settle_s),
    )
    with stack, TestClient(create_app(settings)) as client:
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        catalog.tenants.create("acme")
        key, _ = catalog.tenants.create_key("acme")
        b = Bench(client, {"Authorization": f"Bearer {key}"})
        result = measure(b, folder, files, phrases, imap, changes_n, deletions_n)
        result |= {"files": len(files), "mails": mails_n if imap else 0, "settle_s": settle_s}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mb"] = round(peak)
    print(json.dumps(result))


def measure(
    b: Bench,
    folder: Path,
    files: dict[str, bytes],
    phrases: dict[str, str],
    imap: Any,
    changes_n: int,
    deletions_n: int,
) -> dict[str, Any]:
    # -- 1. import ----------------------------------------------------------------------------
    start = time.perf_counter()
    scans = b.post(
        "/v1/sources",
        {
            "name": "scans",
            "collection": "scans",
            "connection": {"kind": "folder", "path": str(folder)},
        },
    )
    sources = [scans]
    if imap is not None:
        sources.append(
            b.post(
                "/v1/sources",
                {
                    "name": "invoices",
                    "collection": "mail",
                    "connection": {
                        "kind": "imap",
                        "host": imap.host,
                        "port": imap.port,
                        "security": "none",
                        "username": imap.user,
                        "password": imap.password,
                    },
                },
            )
        )
    last_print = 0.0

    def imported() -> bool:
        nonlocal last_print
        done = all(b.settled(s["id"]) for s in sources) and b.unfinished() == 0
        if time.perf_counter() - last_print > 30:
            last_print = time.perf_counter()
            ready = b.sql("SELECT count(*) FROM documents WHERE status = 'ready'")
            print(
                f"  {time.perf_counter() - start:6.0f} s: {ready} documents ready, "
                f"{b.unfinished()} jobs pending",
                flush=True,
            )
        return done

    wait("everything taken and indexed", imported, every=2)
    import_s = time.perf_counter() - start
    counts = {s["name"]: b.source(s["id"])["counts"] for s in sources}
    documents = b.sql("SELECT count(*) FROM documents")
    ready = b.sql("SELECT count(*) FROM documents WHERE status = 'ready'")
    chunks = b.sql("SELECT count(*) FROM chunks")
    failed_docs = b.sql("SELECT count(*) FROM documents WHERE status = 'failed'")
    sample = list(phrases.items())[:: max(1, len(phrases) // 20)][:20]
    found = 0
    for name, phrase in sample:
        wanted = b.document_of(scans["id"], name)
        hits = b.post("/v1/search", {"query": phrase, "top_k": 8})["passages"]
        found += wanted is not None and any(p["document_id"] == wanted for p in hits)
    print(
        f"import: {import_s:.0f} s until all {ready} of {documents} documents were searchable "
        f"({chunks} chunks, {failed_docs} failed); outcomes {counts}; "
        f"search found {found} of {len(sample)} sampled files by a phrase of their own",
        flush=True,
    )

    # -- 2. re-sync, no change --------------------------------------------------------------------
    resync: dict[str, Any] = {}
    for s in sources:
        since = utcnow()
        before = b.source(s["id"])["last_finished_at"]
        t0 = time.perf_counter()
        b.post(f"/v1/sources/{s['id']}/sync")
        after = b.round_after(s["id"], before)
        wall = time.perf_counter() - t0
        resync[s["name"]] = {
            "round_s": after["last_round"]["seconds"],
            "wall_s": round(wall, 2),
            "outcomes": after["last_round"]["counts"],
            "new_jobs": b.jobs(since),
        }
    print(f"re-sync, no change: {resync}", flush=True)

    # -- 3. 50 changes, 20 deletions -----------------------------------------------------------
    texts_ = sorted(k for k in files if k.startswith("texts/"))
    rng = random.Random(3)
    picked = rng.sample(texts_, changes_n + deletions_n)
    changed, deleted = picked[:changes_n], picked[changes_n:]
    doc_of = {k: b.document_of(scans["id"], k) for k in deleted}
    # A deleted file's document may have another origin (its exact copy, or a mail): those stay.
    others = {
        k: b.sql(
            "SELECT count(*) FROM source_items WHERE document_id = :d AND present AND key != :k",
            d=doc_of[k],
            k=k,
        )
        for k in deleted
    }
    since = utcnow()
    for k in changed:
        (folder / k).write_bytes(files[k] + b"\n\nAmended on 2026-12-07.\n")
    for k in deleted:
        (folder / k).unlink()
    t0 = time.perf_counter()
    b.post(f"/v1/sources/{scans['id']}/sync")

    def applied() -> bool:
        s = b.source(scans["id"])
        return (
            s["counts"].get("updated", 0) >= changes_n
            and s["counts"].get("deleted", 0) >= deletions_n
            and b.settled(scans["id"])
            and b.unfinished() == 0
        )

    wait("the changes synced and indexed", applied, every=1)
    changes_s = time.perf_counter() - t0
    reprocessed = b.jobs(since, "ingest")
    removals = b.jobs(since, "delete")
    gone = {"catalog": 0, "vectors": 0, "graph": 0}
    tenant_id = b.rt.catalog.tenants.get("acme").id
    for k in deleted:
        d = doc_of[k]
        if others[k] or d is None:
            continue
        try:
            b.rt.catalog.documents.get(tenant_id, d)
        except NotFound:
            gone["catalog"] += 1
        gone["vectors"] += b.rt.vectors.count(tenant_id, d) == 0
        gone["graph"] += not b.rt.graph.chunk_ids(tenant_id, d)
    kept = sum(1 for k in deleted if others[k])
    print(
        f"{changes_n} changes + {deletions_n} deletions: {changes_s:.0f} s until indexed; "
        f"{reprocessed} documents processed again, {removals} removals; deleted files whose "
        f"document had no other origin ({deletions_n - kept}): gone from catalog "
        f"{gone['catalog']}, vectors {gone['vectors']}, graph {gone['graph']}",
        flush=True,
    )
    return {
        "import_s": round(import_s, 1),
        "documents": documents,
        "documents_ready": ready,
        "documents_failed": failed_docs,
        "chunks": chunks,
        "outcomes": counts,
        "search_found": f"{found}/{len(sample)}",
        "resync": resync,
        "changes": changes_n,
        "deletions": deletions_n,
        "changes_s": round(changes_s, 1),
        "reprocessed": reprocessed,
        "removal_jobs": removals,
        "deleted_with_other_origin": kept,
        "gone": gone,
    }


if __name__ == "__main__":
    main()
