"""``gedrag records ...``: the trash, legal holds, retention, certificates, subject-access
requests and the daily run, acting on the catalog and the stores directly, as the operator.

Listing commands read the catalog only and run beside ``gedrag up``. Commands that remove
data (``purge``, ``run-daily``, ``subject erase|redact``) open the stores: in the embedded mode
the local vector folder admits one process, so run them while ``gedrag up`` is stopped, or
call the API (``POST /v1/records/run-daily``, ``DELETE /v1/trash/{id}``). A purge stopped
halfway is resumed by the next ``run-daily`` (or by ``gedrag up`` at its start).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import GedragError

if TYPE_CHECKING:
    from ingestion.records import RecordsService
    from runtime import Runtime

ACTOR = "cli"

app = typer.Typer(
    help="Records lifecycle: trash, legal holds, retention, certificates, GDPR requests.",
    no_args_is_help=True,
)
holds = typer.Typer(help="Legal holds.", no_args_is_help=True)
policies = typer.Typer(help="Retention policies.", no_args_is_help=True)
subject = typer.Typer(help="Subject-access requests (GDPR).", no_args_is_help=True)
app.add_typer(holds, name="holds")
app.add_typer(policies, name="policies")
app.add_typer(subject, name="subject")

console = Console()
err = Console(stderr=True)

Tenant = Annotated[str, typer.Argument(help="Tenant name.")]


@contextmanager
def _records() -> Iterator[tuple[RecordsService, Runtime]]:
    """The records service over this process's runtime; jobs run here, in-process."""
    from core.settings import get_settings
    from ingestion.records import RecordsService
    from ingestion.service import IngestionService, InProcessExecutor
    from runtime import Runtime

    try:
        rt = Runtime.build(get_settings())
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    try:
        service = IngestionService(rt)
        yield RecordsService(service, InProcessExecutor(service)), rt
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    finally:
        rt.close()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _tenant(rt: Runtime, name: str) -> str:
    return rt.catalog.tenants.get(name).id


def _json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str, ensure_ascii=False))


def _selector_options(
    document: list[str] | None,
    collection: str | None,
    tag: list[str] | None,
    doc_type: str | None,
    meta: list[str] | None,
    title: str | None,
) -> Any:
    from core.records import Selector

    metadata = {}
    for item in meta or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--meta takes key=value, not {item!r}")
        metadata[key] = value
    return Selector(
        document_ids=tuple(document or ()),
        collection=collection,
        tags=tuple(tag or ()),
        type=doc_type,
        metadata=metadata,
        title_contains=title,
    )


Doc = Annotated[list[str] | None, typer.Option("--document", help="A document id (repeat).")]
Coll = Annotated[str | None, typer.Option(help="A collection.")]
Tag = Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeat: any of).")]
Type = Annotated[
    str | None, typer.Option("--type", help="Document type: metadata 'type' or a tag.")
]
Meta = Annotated[
    list[str] | None, typer.Option("--meta", help="key=value metadata equality (repeat).")
]
Title = Annotated[str | None, typer.Option(help="Text the title contains (a saved query).")]


# -- the daily run and the trash ----------------------------------------------------------


@app.command("run-daily")
def run_daily(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: every tenant).")] = None,
) -> None:
    """Purge what the trash period released, apply retention, resume unfinished purges (what
    Celery beat runs daily; cron it in the embedded mode while `gedrag up` is stopped)."""
    from datetime import timedelta

    with _records() as (records, rt):
        tenant_id = _tenant(rt, tenant) if tenant else None
        # In-process: no broker holds queued purges, so every unfinished one runs again now.
        report = records.run_daily(tenant_id=tenant_id, lost_after=timedelta(0))
        _json(report.to_dict())


@app.command("trash")
def trash_list(tenant: Tenant) -> None:
    """The tenant's trash."""
    with _records() as (records, rt):
        table = Table("document", "title", "collection", "trashed", "purged after", "by")
        for e in records.records.trashed(_tenant(rt, tenant)):
            table.add_row(
                e.document_id,
                e.title,
                e.collection,
                e.trashed_at.isoformat(timespec="seconds"),
                e.purge_after.isoformat(timespec="seconds"),
                e.trashed_by,
            )
        console.print(table)


@app.command("delete")
def delete(tenant: Tenant, document_id: str) -> None:
    """Move a document to the trash."""
    with _records() as (records, rt):
        entry = records.trash(_tenant(rt, tenant), document_id, actor=ACTOR)
        console.print(f"in the trash until {entry.purge_after.isoformat(timespec='seconds')}")


@app.command("restore")
def restore(tenant: Tenant, document_id: str) -> None:
    """Take a document out of the trash."""
    with _records() as (records, rt):
        doc = records.restore(_tenant(rt, tenant), document_id, actor=ACTOR)
        console.print(f"restored: {doc.title} ({doc.status})")


@app.command("purge")
def purge(
    tenant: Tenant,
    document_id: str,
    reason: Annotated[
        str, typer.Option(help="Written in the certificate.")
    ] = "purged by the operator",
) -> None:
    """Purge a document from every store now (in the trash or not) and print its certificate."""
    from ingestion.records import public_certificate

    with _records() as (records, rt):
        tenant_id = _tenant(rt, tenant)
        _, cert = records.purge(tenant_id, document_id, actor=ACTOR, reason=reason)
        _json(public_certificate(rt.catalog.records.certificate(tenant_id, cert.id)))


@app.command("certificate")
def certificate(tenant: Tenant, certificate_id: str) -> None:
    """A deletion or redaction certificate (JSON)."""
    from ingestion.records import public_certificate

    with _records() as (records, rt):
        _json(public_certificate(records.records.certificate(_tenant(rt, tenant), certificate_id)))


@app.command("audit")
def audit(
    tenant: Tenant,
    limit: Annotated[int, typer.Option(help="Entries, newest first.")] = 50,
) -> None:
    """The tenant's records audit trail."""
    with _records() as (records, rt):
        table = Table("at", "actor", "action", "target", "outcome", "detail")
        for e in records.records.audit_trail(_tenant(rt, tenant), limit=limit):
            table.add_row(
                e.at.isoformat(timespec="seconds"),
                e.actor,
                e.action,
                e.target,
                e.outcome,
                json.dumps(e.detail, default=str)[:120],
            )
        console.print(table)


@app.command("trash-days")
def trash_days(tenant: Tenant, days: Annotated[int | None, typer.Argument()] = None) -> None:
    """Show the tenant's trash period, or set it."""
    with _records() as (records, rt):
        tenant_id = _tenant(rt, tenant)
        if days is not None:
            records.set_trash_days(tenant_id, days, actor=ACTOR)
        console.print(f"{records.trash_days(tenant_id)} days")


# -- holds ----------------------------------------------------------------------------------


@holds.command("place")
def hold_place(
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="The hold's name (refusals quote it).")],
    reason: Annotated[str, typer.Option(help="Why (a case, a request).")] = "",
    by: Annotated[str, typer.Option(help="Who places it.")] = ACTOR,
    document: Doc = None,
    collection: Coll = None,
    tag: Tag = None,
    doc_type: Type = None,
    meta: Meta = None,
    title: Title = None,
) -> None:
    """Place a legal hold on documents, a collection, tags, a type, metadata (a
    correspondent: --meta correspondent=ACME) or a saved query."""
    selector = _selector_options(document, collection, tag, doc_type, meta, title)
    with _records() as (records, rt):
        tenant_id = _tenant(rt, tenant)
        hold = records.place_hold(tenant_id, name=name, reason=reason, actor=by, selector=selector)
        n = len(records.held_documents(tenant_id, hold))
        console.print(f"hold {hold.id} {hold.name!r} placed: {n} document(s) held")


@holds.command("release")
def hold_release(tenant: Tenant, hold_id: str) -> None:
    with _records() as (records, rt):
        hold = records.release_hold(_tenant(rt, tenant), hold_id, actor=ACTOR)
        console.print(f"hold {hold.name!r} released")


@holds.command("list")
def hold_list(tenant: Tenant) -> None:
    with _records() as (records, rt):
        table = Table("id", "name", "reason", "by", "selects", "placed", "released")
        for h in records.records.holds(_tenant(rt, tenant)):
            table.add_row(
                h.id,
                h.name,
                h.reason,
                h.placed_by,
                json.dumps(h.selector.to_dict()),
                h.created_at.isoformat(timespec="seconds"),
                h.released_at.isoformat(timespec="seconds") if h.released_at else "",
            )
        console.print(table)


# -- retention ------------------------------------------------------------------------------


@policies.command("set")
def policy_set(
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="e.g. 'invoices 10 years'.")],
    years: Annotated[int, typer.Option(min=0)] = 0,
    months: Annotated[int, typer.Option(min=0)] = 0,
    days: Annotated[int, typer.Option(min=0)] = 0,
    anchor: Annotated[str, typer.Option(help="document_date or upload.")] = "document_date",
    action: Annotated[str, typer.Option(help="purge or trash.")] = "purge",
    confirm: Annotated[
        bool, typer.Option(help="Confirm the disposal of existing documents it makes due.")
    ] = False,
    collection: Coll = None,
    tag: Tag = None,
    doc_type: Type = None,
    meta: Meta = None,
    title: Title = None,
) -> None:
    """Create or change (same name) a retention policy; prints what it would dispose of at
    once, which waits for --confirm."""
    from core.records import Anchor, Disposal, Period

    selector = _selector_options(None, collection, tag, doc_type, meta, title)
    try:
        anchor_, action_ = Anchor(anchor), Disposal(action)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    with _records() as (records, rt):
        tenant_id = _tenant(rt, tenant)
        same = next((p for p in records.records.policies(tenant_id) if p.name == name), None)
        change = records.save_policy(
            tenant_id,
            name=name,
            selector=selector,
            period=Period(years, months, days),
            anchor=anchor_,
            action=action_,
            confirm=confirm,
            actor=ACTOR,
            policy_id=None if same is None else same.id,
        )
        state = "PENDING CONFIRMATION (--confirm)" if change.pending else "active"
        console.print(f"policy {change.policy.id} {name!r}: {state}")
        _due_table([d.to_dict() for d in change.would_dispose], "would dispose of at once")


@policies.command("confirm")
def policy_confirm(tenant: Tenant, policy_id: str) -> None:
    with _records() as (records, rt):
        change = records.confirm_policy(_tenant(rt, tenant), policy_id, actor=ACTOR)
        console.print(f"policy {change.policy.name!r} confirmed")


@policies.command("delete")
def policy_delete(tenant: Tenant, policy_id: str) -> None:
    with _records() as (records, rt):
        records.delete_policy(_tenant(rt, tenant), policy_id, actor=ACTOR)
        console.print("policy deleted")


@policies.command("list")
def policy_list(tenant: Tenant) -> None:
    with _records() as (records, rt):
        table = Table("id", "name", "selects", "keep", "from", "then", "confirmed")
        for p in records.records.policies(_tenant(rt, tenant)):
            table.add_row(
                p.id,
                p.name,
                json.dumps(p.selector.to_dict()),
                str(p.period),
                p.anchor.value,
                p.action.value,
                "yes" if p.confirmed else "PENDING",
            )
        console.print(table)


@app.command("preview")
def preview(
    tenant: Tenant,
    within_days: Annotated[int, typer.Option(min=0, help="Look this many days ahead.")] = 0,
) -> None:
    """The dry run: what retention would dispose of (held and pending ones flagged)."""
    with _records() as (records, rt):
        found = records.preview(_tenant(rt, tenant), within_days=within_days)
        _due_table([d.to_dict() for d in found], "due")


def _due_table(rows: list[dict[str, Any]], what: str) -> None:
    table = Table("document", "title", "policy", "due", "then", "state")
    for d in rows:
        state = (
            f"held: {', '.join(d['holds'])}"
            if d["holds"]
            else "ok"
            if d["confirmed"]
            else "pending confirmation"
        )
        table.add_row(
            d["document_id"], d["title"], d["policy"], d["due_at"][:10], str(d["action"]), state
        )
    console.print(f"{len(rows)} document(s) {what}")
    if rows:
        console.print(table)


# -- subject-access requests --------------------------------------------------------------


Terms = Annotated[list[str], typer.Argument(help="A name, an email, an identifier...")]


def _find(action: Callable[[RecordsService, Any], Any], tenant: str, terms: list[str]) -> None:
    with _records() as (records, rt):
        report = records.subjects.find(_tenant(rt, tenant), terms, actor=ACTOR)
        action(records, report)


@subject.command("find")
def subject_find(tenant: Tenant, terms: Terms) -> None:
    """Every document and chunk that mentions the person (JSON, with the chunks' text)."""
    _find(lambda _r, report: _json(report.to_dict()), tenant, terms)


@subject.command("export")
def subject_export(
    tenant: Tenant,
    terms: Terms,
    out: Annotated[Path, typer.Option(help="The zip to write.")] = Path("subject.zip"),
) -> None:
    """A zip of the report and the documents' originals."""

    def write(records: RecordsService, report: Any) -> None:
        out.write_bytes(records.subjects.export(report, actor=ACTOR))
        console.print(f"{len(report.documents)} document(s) → {out}")

    _find(write, tenant, terms)


@subject.command("erase")
def subject_erase(
    tenant: Tenant,
    terms: Terms,
    yes: Annotated[bool, typer.Option("--yes", help="Purge every document found.")] = False,
) -> None:
    """Purge every document that mentions the person, each with a certificate."""
    if not yes:
        raise _fail(
            "erasure purges every document found: run `gedrag records subject find` "
            "first, then again with --yes"
        )

    def erase(records: RecordsService, report: Any) -> None:
        done = records.subjects.erase(report, actor=ACTOR)
        _json({"request_id": done.request_id, "purged": done.certificates, "refused": done.refused})

    _find(erase, tenant, terms)


@subject.command("redact")
def subject_redact(tenant: Tenant, terms: Terms) -> None:
    """New versions with the person's terms replaced by [REDACTED]; older versions removed."""
    _find(
        lambda records, report: _json(records.subjects.redact(report, actor=ACTOR)), tenant, terms
    )
