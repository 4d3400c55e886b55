"""Syncing a source (``sources.sync``) over real embedded stores, with a folder on this disk:
documents in, dedup with origins, versions, moves, deletions everywhere, outcomes, restarts,
failing sources and their backoff, fair shares between tenants, bad input, secrets at rest."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.errors import Conflict, Forbidden, InvalidInput
from core.settings import LimitsSettings, SourcesSettings
from sources import folder as folder_module
from sources.config import ImapConfig, SmbConfig, SourceSpec
from sources.credentials import DEV_KEY, SecretBox
from sources.sync import SourceUpdate, SyncService
from stores.catalog.models import utcnow
from tests.support.sources_lab import Lab, make_lab

pytestmark = pytest.mark.integration

CONTRACT = b"# Maintenance contract\n\nACME Industries maintains the lifts of the city of Lyon.\n"
INVOICE = b"# Invoice 2024-17\n\nThe city of Lyon owes ACME Industries 1,250 EUR by March.\n"
MEMO = b"# Memo\n\nThe lifts of the town hall are inspected every June.\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = make_lab(tmp_path)
    yield made
    made.rt.close()


def test_new_files_become_indexed_documents_with_their_origin(lab: Lab) -> None:
    lab.put("contract.md", CONTRACT)
    lab.put("2024/invoice.md", INVOICE)
    source = lab.folder(tags=["scanner"])
    summary = lab.run(source)
    assert summary.ok and dict(summary.counts) == {"taken": 2}
    items = lab.items(source)
    assert {k: i.outcome for k, i in items.items()} == {
        "contract.md": "taken",
        "2024/invoice.md": "taken",
    }
    for item in items.values():
        assert item.document_id is not None and lab.indexed(item.document_id)
        doc = lab.rt.catalog.documents.get(lab.tenant, item.document_id)
        assert (doc.collection, doc.tags, doc.metadata["source"]) == ("scans", ["scanner"], "scans")
        origins = lab.rt.catalog.sources.origins(lab.tenant, item.document_id)
        assert [(o.source_name, o.key) for o in origins] == [("scans", item.key)]
    done = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (done.state, done.failures, done.last_error) == ("ok", 0, None)
    assert done.last_round["counts"] == {"taken": 2}
    assert done.next_sync_at is not None and done.next_sync_at > utcnow() + timedelta(seconds=250)


def test_a_resync_with_no_change_processes_nothing(lab: Lab) -> None:
    for i in range(5):
        lab.put(f"note-{i}.md", CONTRACT + f"\nNote {i}.\n".encode())
    source = lab.folder()
    assert lab.run(source).counts["taken"] == 5
    jobs = lab.jobs()
    again = lab.run(source)
    assert again.ok and dict(again.counts) == {}
    assert lab.jobs() == jobs  # no document queued again


def test_the_same_file_in_two_places_is_one_document_that_leaves_with_its_last_origin(
    lab: Lab,
) -> None:
    lab.put("a/contract.md", CONTRACT)
    lab.put("b/contract-copy.md", CONTRACT)
    source = lab.folder()
    summary = lab.run(source)
    assert sorted(summary.counts.elements()) == ["duplicate", "taken"]
    items = lab.items(source)
    doc_id = items["a/contract.md"].document_id
    assert doc_id is not None and items["b/contract-copy.md"].document_id == doc_id
    assert len(lab.documents()) == 1
    assert len(lab.rt.catalog.sources.origins(lab.tenant, doc_id)) == 2

    (lab.inbox / "a/contract.md").unlink()
    assert dict(lab.run(source).counts) == {"deleted": 1}
    assert lab.indexed(doc_id)  # the other origin still holds it
    assert "another origin holds it" in lab.items(source)["a/contract.md"].detail

    (lab.inbox / "b/contract-copy.md").unlink()
    assert dict(lab.run(source).counts) == {"deleted": 1}
    assert lab.gone(doc_id)  # catalog, vectors and graph
    assert lab.rt.catalog.sources.origins(lab.tenant, doc_id) == []
    assert lab.items(source)["b/contract-copy.md"].present is False


def test_a_changed_file_is_a_new_version_and_a_moved_one_is_not_processed_again(
    lab: Lab,
) -> None:
    lab.put("contract.md", CONTRACT)
    lab.put("memo.md", MEMO)
    source = lab.folder()
    lab.run(source)
    items = lab.items(source)
    contract, memo = items["contract.md"].document_id, items["memo.md"].document_id
    assert contract and memo
    old_chunks = lab.rt.vectors.point_ids(lab.tenant, contract)

    lab.put("contract.md", CONTRACT + b"\n## Renewal\n\nRenewed until 2030.\n")
    (lab.inbox / "archive").mkdir()
    (lab.inbox / "memo.md").rename(lab.inbox / "archive" / "memo.md")
    jobs = lab.jobs()
    summary = lab.run(source)
    assert dict(summary.counts) == {"updated": 1, "moved": 1}
    assert lab.jobs() == jobs + 1  # the new version only
    doc = lab.rt.catalog.documents.get(lab.tenant, contract)
    assert (doc.current_version, doc.active_version) == (2, 2)
    assert lab.rt.vectors.point_ids(lab.tenant, contract).isdisjoint(old_chunks)
    items = lab.items(source)
    assert items["archive/memo.md"].document_id == memo and "memo.md" not in items
    assert lab.indexed(memo)

    lab.put("contract.md", CONTRACT + b"\n## Renewal\n\nRenewed until 2030.\n")  # same bytes
    assert dict(lab.run(source).counts) == {"unchanged": 1}
    assert lab.jobs() == jobs + 1


@pytest.mark.parametrize(("on_delete", "outcome"), [("keep", "kept"), ("trash", "deleted")])
def test_a_source_may_keep_or_trash_what_is_deleted_there(
    lab: Lab, on_delete: str, outcome: str
) -> None:
    lab.put("memo.md", MEMO)
    source = lab.folder(on_delete=on_delete)
    lab.run(source)
    doc_id = lab.items(source)["memo.md"].document_id
    assert doc_id is not None
    (lab.inbox / "memo.md").unlink()
    assert dict(lab.run(source).counts) == {outcome: 1}
    doc = lab.rt.catalog.documents.get(lab.tenant, doc_id)  # still in the catalog
    assert doc.status.value == ("ready" if on_delete == "keep" else "trashed")
    assert lab.rt.vectors.count(lab.tenant, doc_id) > 0


def test_a_round_takes_a_bounded_share_and_a_restart_resumes_without_repeats(
    tmp_path: Path,
) -> None:
    lab = make_lab(tmp_path, max_items_per_round=2)
    try:
        for i in range(5):
            lab.put(f"n{i}.md", CONTRACT + f"\nNumber {i}.\n".encode())
        source = lab.folder()
        first = lab.run(source)
        assert (first.counts["taken"], first.more) == (2, True)
        rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
        assert rec.next_sync_at is not None and rec.next_sync_at <= utcnow()  # due again
        # Another process (a restarted worker) picks up from the catalog alone.
        other = SyncService(lab.service, lab.executor)
        taken = first.counts["taken"]
        while True:
            summary = other.sync(lab.tenant, source.id)
            taken += summary.counts["taken"]
            if not summary.more:
                break
        assert taken == 5 and len(lab.documents()) == 5
        assert all(i.outcome == "taken" for i in lab.items(source).values())
    finally:
        lab.rt.close()


def test_a_round_lost_with_its_worker_frees_the_source_when_its_lease_expires(
    lab: Lab,
) -> None:
    source = lab.folder()
    repo = lab.rt.catalog.sources
    now = utcnow()
    token = repo.claim(source.id, now, lease_s=60)
    assert token is not None
    assert repo.claim(source.id, now, lease_s=60) is None  # one round at a time
    with pytest.raises(Conflict, match="syncing already"):
        lab.sync.sync(lab.tenant, source.id)
    # The worker died: after its lease, another round starts; the dead one cannot finish.
    later = now + timedelta(seconds=61)
    assert [r.id for r in repo.due(later, 10)] == [source.id]
    again = repo.claim(source.id, later, lease_s=60)
    assert again is not None and again != token
    assert not repo.heartbeat(source.id, token, later, 60)
    assert lab.sync.run_round(source.id, token) is None


def test_a_failing_source_says_why_and_is_retried_with_backoff(lab: Lab) -> None:
    source = lab.folder(path=lab.inbox / "not-yet")
    first = lab.run(source)
    assert not first.ok and "does not exist" in (first.error or "")
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (rec.state, rec.failures) == ("failing", 1)
    assert rec.last_error == first.error
    assert rec.last_finished_at is not None and rec.next_sync_at is not None
    assert rec.next_sync_at - rec.last_finished_at == timedelta(seconds=30)
    lab.run(source)
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert rec.failures == 2 and rec.last_finished_at is not None
    assert rec.next_sync_at is not None
    assert rec.next_sync_at - rec.last_finished_at == timedelta(seconds=60)
    lab.put("not-yet/memo.md", MEMO)
    assert lab.run(source).ok
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (rec.state, rec.failures, rec.last_error) == ("ok", 0, None)


def test_a_source_is_bound_by_the_tenants_daily_quota_and_waits_for_it(tmp_path: Path) -> None:
    """Three uploads a day: a folder of five files gives three documents, then the round stops
    on the quota (the source says so, and syncs again when the window frees up, not after a
    backoff); the two others are not recorded, so a later round takes them."""
    lab = make_lab(tmp_path, limits=LimitsSettings(tenant_documents_per_day=3))
    try:
        for i in range(5):
            lab.put(f"note-{i}.md", CONTRACT + f"\nNote {i}.\n".encode())
        source = lab.folder()
        summary = lab.run(source)
        assert not summary.ok and "daily upload quota reached" in (summary.error or "")
        assert dict(summary.counts) == {"taken": 3}
        assert sorted(i.outcome for i in lab.items(source).values()) == ["taken"] * 3
        rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
        assert rec.state == "failing" and "TENANT_DOCUMENTS_PER_DAY" in (rec.last_error or "")
        assert rec.last_finished_at is not None and rec.next_sync_at is not None
        assert rec.next_sync_at - rec.last_finished_at > timedelta(hours=23)
        lab.rt.settings.limits.tenant_documents_per_day = 10  # the window freed up
        again = lab.run(source)
        assert again.ok and dict(again.counts) == {"taken": 2}
    finally:
        lab.rt.close()


def test_a_big_source_does_not_starve_another_tenants(tmp_path: Path) -> None:
    """Jobs stay queued (no worker): the big source fills its share of the queue and waits;
    the small one, another tenant's, still gets its round and its documents queued."""
    lab = make_lab(tmp_path, executor="celery", max_items_per_round=5)
    try:
        big_root, small_root = lab.inbox / "big", lab.inbox / "small"
        for i in range(30):
            lab.put(f"f{i}.md", CONTRACT + f"\nFile {i}.\n".encode(), root=big_root)
        for i in range(2):
            lab.put(f"s{i}.md", INVOICE + f"\nCopy {i}.\n".encode(), root=small_root)
        other = lab.rt.catalog.tenants.create("small-tenant").id
        big = lab.folder("big", path=big_root)
        small = lab.sync.add(
            other,
            SourceSpec(
                name="small",
                collection="mail",
                connection={"kind": "folder", "path": str(small_root)},
            ),
        )
        sent: list[str] = []
        sync = lab.sync

        def send(source_id: str, token: str) -> None:
            sent.append(source_id)
            assert sync.run_round(source_id, token) is not None

        assert sync.dispatch_due(send) == 2
        assert sorted(sent) == sorted([big.id, small.id])
        assert lab.rt.catalog.sources.in_flight(big.id) == 5
        assert lab.rt.catalog.sources.in_flight(small.id) == 2
        # The big one is due again at once, but its share of the queue is full: it waits.
        sent.clear()
        assert sync.dispatch_due(send) == 1 and sent == [big.id]
        rec = lab.rt.catalog.sources.get(lab.tenant, big.id)
        assert rec.last_round["waiting_jobs"] == 5 and rec.last_round["counts"] == {}
        assert lab.rt.catalog.sources.in_flight(big.id) == 5
        assert rec.state == "ok"  # waiting is not failing
    finally:
        lab.rt.close()


def zip_bomb_docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/media/filler.bin", b"\0" * (50 * 1024 * 1024))
    return buf.getvalue()


def test_bad_files_fail_alone_with_their_cause_and_nothing_is_stored(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, max_upload_bytes=100_000)
    try:
        lab.put("good.md", CONTRACT)
        lab.put("huge.md", b"# Huge\n\n" + b"word " * 40_000)  # 200 kB > the 100 kB cap
        lab.put("bomb.docx", zip_bomb_docx())
        lab.put("archive.zip", zipfile_bytes())
        lab.put("empty.md", b"")
        lab.put("vanishing.md", MEMO * 1000)
        source = lab.folder()
        real = folder_module.blocks_of

        def vanishing(stream: io.BufferedReader, block: int = 1 << 20) -> Iterator[bytes]:
            """Reads the first block, then the file is deleted (a user moving it away)."""
            for i, data in enumerate(real(stream, 4096)):
                if i == 1 and str(stream.name).endswith("vanishing.md"):
                    Path(str(stream.name)).unlink()
                yield data

        blobs_before = len(lab.rt.blobs.all())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(folder_module, "blocks_of", vanishing)
            summary = lab.run(source)
        assert summary.ok, summary.error
        items = lab.items(source)
        outcomes = {k: (i.outcome, i.detail) for k, i in items.items()}
        assert outcomes["good.md"][0] == "taken"
        assert outcomes["huge.md"][0] == "failed"
        assert "larger than the 100000 byte limit" in outcomes["huge.md"][1]
        assert outcomes["bomb.docx"][0] == "failed" and "zip bomb" in outcomes["bomb.docx"][1]
        assert outcomes["archive.zip"][0] == "failed" and "supported:" in outcomes["archive.zip"][1]
        assert outcomes["empty.md"] == ("failed", "'empty.md' is empty")
        assert outcomes["vanishing.md"][0] == "failed"
        assert "vanished while it was read" in outcomes["vanishing.md"][1]
        # One document, one original: nothing of the refused files is stored.
        assert len(lab.documents()) == 1
        assert len(lab.rt.blobs.all()) == blobs_before + 1
        # A refused file is not tried again until it changes; a vanished one was never kept.
        assert dict(lab.run(source).counts) == {"deleted": 1}  # vanishing.md is gone
        lab.put("huge.md", b"# Huge\n\nnow small\n")
        assert dict(lab.run(source).counts) == {"taken": 1}
    finally:
        lab.rt.close()


def zipfile_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "an archive is not a document")
    return buf.getvalue()


def test_folders_are_watched_only_under_the_configured_roots(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(Forbidden, match="GEDRAG_SOURCES__FOLDER_ROOTS"):
        lab.folder("etc", path=Path("/etc"))
    with pytest.raises(InvalidInput, match="data folder"):
        lab.folder("data", path=lab.rt.settings.data_dir.parent)
    lab.rt.settings.sources.folder_roots.clear()
    try:
        with pytest.raises(Forbidden, match="watched folders are off"):
            lab.folder("any")
    finally:
        lab.rt.settings.sources.folder_roots.append(tmp_path)


def test_credentials_are_encrypted_at_rest_and_never_logged(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    password = "correct horse battery staple"
    spec = SourceSpec(
        name="accounting",
        connection=SmbConfig(
            server="127.0.0.1",
            port=1,
            share="acct",
            username="gedrag",
            password=SecretStr(password),
        ),
    )
    caplog.set_level(logging.DEBUG)
    source = lab.sync.add(lab.tenant, spec)
    assert password not in repr(spec) and password not in repr(source)
    with lab.rt.catalog.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT config, secret FROM sources WHERE id = :id"), {"id": source.id}
        ).one()
    assert password not in str(row.config) and password not in row.secret
    assert row.secret.startswith("gAAAA")  # a Fernet token
    assert SecretBox(lab.rt.settings.sources).open(row.secret, source="x") == {"password": password}
    summary = lab.run(source)  # nothing listens on port 1: the round fails, and logs
    assert not summary.ok and "cannot be reached" in (summary.error or "")
    assert caplog.records and all(password not in r.getMessage() for r in caplog.records)
    assert all(password not in str(r.__dict__) for r in caplog.records)

    # Rotation: the old key still opens it; saving again seals it with the new key.
    rotated = SourcesSettings(
        secret_key=SecretStr("a brand new and long enough secret key"),
        previous_keys=[DEV_KEY],  # the lab sets no key: a development install's
    )
    assert SecretBox(rotated).open(row.secret, source="x") == {"password": password}
    # A new password replaces the stored one, the rest of the connection is kept.
    updated = lab.sync.update(
        lab.tenant, source.id, SourceUpdate(connection={"password": "another one"})
    )
    assert updated.config["share"] == "acct"
    assert SecretBox(lab.rt.settings.sources).open(updated.secret, source="x") == {
        "password": "another one"
    }


def test_a_mailbox_password_never_reaches_the_catalog_in_clear(lab: Lab) -> None:
    source = lab.sync.add(
        lab.tenant,
        SourceSpec(
            name="invoices",
            connection=ImapConfig(host="127.0.0.1", username="inv", password=SecretStr("s3cr3t!")),
        ),
    )
    assert "password" not in source.config and source.secret
    with lab.rt.catalog.engine.connect() as conn:
        dumped = "".join(str(v) for v in conn.execute(sa.text("SELECT * FROM sources")).one())
    assert "s3cr3t!" not in dumped
