"""An SMB share synced into gedrag, against the session's Samba: sub-folders filed into
collections, a changed file versioned, a deleted one removed from every store, and a share
that refuses the password shown failing, retried with backoff, nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from sources.config import SmbConfig, SourceSpec
from sources.sync import SourceUpdate
from stores.catalog.sources import SourceRecord
from tests.support.mailshare import SmbServer
from tests.support.sources_lab import Lab, make_lab

pytestmark = pytest.mark.integration

CONTRACT = b"# Maintenance contract\n\nACME Industries maintains the lifts of the city of Lyon.\n"
INVOICE = b"# Invoice 2024-17\n\nThe city of Lyon owes ACME Industries 1,250 EUR by March.\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = make_lab(tmp_path)
    yield made
    made.rt.close()


def share(lab: Lab, smb: SmbServer, password: str | None = None, **spec: object) -> SourceRecord:
    config = SmbConfig(
        server=smb.host,
        port=smb.port,
        share=smb.share,
        username=smb.user,
        password=SecretStr(smb.password if password is None else password),
        subfolders="collection",
    )
    return lab.sync.add(
        lab.tenant, SourceSpec(name="accounting", collection="general", connection=config, **spec)
    )


def put(smb: SmbServer, name: str, data: bytes) -> None:
    path = smb.folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_share_is_filed_versioned_and_deleted_everywhere(lab: Lab, smb: SmbServer) -> None:
    put(smb, "contracts/lyon.md", CONTRACT)
    put(smb, "invoices/2024-17.md", INVOICE)
    put(smb, "readme.md", b"# Accounting share\n\nWhat is where.\n")
    source = share(lab, smb)
    summary = lab.run(source)
    assert summary.ok and dict(summary.counts) == {"taken": 3}, summary.error
    items = lab.items(source)
    docs = lab.documents()
    collections = {k: docs[i.document_id].collection for k, i in items.items() if i.document_id}
    assert collections == {
        "contracts/lyon.md": "contracts",
        "invoices/2024-17.md": "invoices",
        "readme.md": "general",
    }
    assert all(lab.indexed(d) for d in docs)

    put(smb, "contracts/lyon.md", CONTRACT + b"\n## Renewal\n\nRenewed until 2030.\n")
    (smb.folder / "invoices/2024-17.md").unlink()
    summary = lab.run(source)
    assert dict(summary.counts) == {"updated": 1, "deleted": 1}
    contract = items["contracts/lyon.md"].document_id
    invoice = items["invoices/2024-17.md"].document_id
    assert contract and invoice
    assert lab.rt.catalog.documents.get(lab.tenant, contract).active_version == 2
    assert lab.gone(invoice)


def test_a_share_that_refuses_the_password_fails_and_is_retried_with_backoff(
    lab: Lab, smb: SmbServer
) -> None:
    put(smb, "lyon.md", CONTRACT)
    source = share(lab, smb, password="not-the-password")
    first = lab.run(source)
    assert not first.ok and "refused the user name or password" in (first.error or "")
    second = lab.run(source)
    assert not second.ok
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (rec.state, rec.failures, rec.last_error) == ("failing", 2, second.error)
    assert rec.last_finished_at is not None and rec.next_sync_at is not None
    assert rec.next_sync_at - rec.last_finished_at == timedelta(seconds=60)  # 30 s, doubled
    assert lab.documents() == {} and lab.items(source) == {}
    lab.sync.update(lab.tenant, source.id, SourceUpdate(connection={"password": smb.password}))
    fixed = lab.run(source)
    assert fixed.ok and dict(fixed.counts) == {"taken": 1}
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (rec.state, rec.failures, rec.last_error) == ("ok", 0, None)
