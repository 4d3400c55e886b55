"""`gedrag records ...` as the operator runs it, in its own processes, on a data folder holding
a document indexed by the real pipeline (MiniLM): a hold refuses the delete, the trash takes it
after the release, a purge prints its certificate, `gedrag migrate verify` finds no trace."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import ids, media
from core.settings import Settings
from ingestion.service import Incoming, IngestionService, InProcessExecutor
from runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))
INVOICE = b"# Invoice INV-2024-0042\n\nACME Industries invoices the city of Lyon 1,250 EUR.\n"


def test_the_records_commands(tmp_path: Path) -> None:
    env = {**os.environ, "GEDRAG_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "250"}
    for name in ("GEDRAG_CATALOG__URL", "GEDRAG_BROKER__URL", "GEDRAG_QDRANT__URL"):
        env.pop(name, None)

    def gedrag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GEDRAG, *args], env=env, capture_output=True, text=True, timeout=300)

    assert gedrag("tenants", "create", "acme").returncode == 0
    rt = Runtime.build(Settings(data_dir=tmp_path / "var"))
    try:
        service = IngestionService(rt)
        f = Incoming(
            io.BytesIO(INVOICE), "invoice.md", media.MARKDOWN, ids.sha256_hex(INVOICE), len(INVOICE)
        )
        tenant = rt.catalog.tenants.get("acme").id
        reg = service.register(
            tenant,
            "finance",
            f,
            title="Invoice",
            tags=["invoice"],
            metadata={"correspondent": "ACME"},
        )
        assert reg.job is not None
        InProcessExecutor(service).submit(reg.job)
        doc = reg.document.id
        assert rt.vectors.count(tenant, doc) > 0
    finally:
        rt.close()  # the local vector folder admits one process: the commands' now

    placed = gedrag(
        "records",
        "holds",
        "place",
        "acme",
        "--name",
        "ACME audit",
        "--meta",
        "correspondent=ACME",
        "--reason",
        "case 17",
    )
    assert placed.returncode == 0, placed.stderr
    assert "1 document(s) held" in placed.stdout
    hold = re.search(r"hold (\S+) 'ACME audit'", placed.stdout)
    assert hold
    refused = gedrag("records", "delete", "acme", doc)
    assert refused.returncode == 1 and "legal hold 'ACME audit'" in refused.stderr
    assert "ACME audit" in gedrag("records", "holds", "list", "acme").stdout
    assert gedrag("records", "holds", "release", "acme", hold.group(1)).returncode == 0

    policy = gedrag(
        "records",
        "policies",
        "set",
        "acme",
        "--name",
        "invoices 10 years",
        "--type",
        "invoice",
        "--years",
        "10",
    )
    assert policy.returncode == 0 and "active" in policy.stdout, policy.stdout + policy.stderr
    assert (
        "1 document(s) due" in gedrag("records", "preview", "acme", "--within-days", "4000").stdout
    )

    trashed = gedrag("records", "delete", "acme", doc)
    assert trashed.returncode == 0 and "in the trash until" in trashed.stdout
    assert doc in gedrag("records", "trash", "acme").stdout
    purged = gedrag("records", "purge", "acme", doc, "--reason", "operator test")
    assert purged.returncode == 0, purged.stderr
    cert = json.loads(purged.stdout)
    assert cert["complete"] and cert["reason"] == "operator test"
    assert cert["stores"]["vectors"]["points"]["before"] > 0
    assert cert["stores"]["vectors"]["points"]["after"] == 0
    again = json.loads(gedrag("records", "certificate", "acme", cert["id"]).stdout)
    assert again["id"] == cert["id"]
    assert "hold.place" in gedrag("records", "audit", "acme").stdout
    verified = gedrag("migrate", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    daily = gedrag("records", "run-daily")
    assert daily.returncode == 0 and json.loads(daily.stdout)["tenants"] == 1
