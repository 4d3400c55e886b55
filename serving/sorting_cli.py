"""``gedrag sort ...``: the review queue, one document's decision, accept / correct / undo, the
vocabulary and the tenant's settings, through a running API (``GEDRAG_CLIENT__URL``,
``GEDRAG_CLIENT__API_KEY``), as ``gedrag docs`` does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    help="Automatic sorting: review queue, decisions, vocabulary.", no_args_is_help=True
)
vocab = typer.Typer(
    help="The tenant's types, correspondents, tags and fields.", no_args_is_help=True
)
app.add_typer(vocab, name="vocab")


def _call(method: str, path: str, **kw: Any) -> Any:
    """One request to the API; a clear error and exit 1 when it fails."""
    import httpx

    from core.errors import GedragError
    from serving.cli import _check, _client, _fail

    with _client() as client:
        try:
            return _check(client.request(method, path, **kw))
        except (GedragError, httpx.HTTPError) as exc:
            raise _fail(str(exc)) from exc


def _print(decision: dict[str, Any]) -> None:
    from serving.cli import console

    conf = decision["confidence"]
    console.print(
        f"[bold]{decision.get('title') or decision['document_id']}[/bold]  "
        f"{decision['state']}: {decision['document_type'] or '—'} "
        f"(suggested {decision['suggested_type'] or '—'}, "
        f"{'' if conf is None else f'{conf:.2f}, '}{decision['reason']})"
    )
    if decision["ranked"]:
        console.print("  " + ", ".join(f"{k} {p:.2f}" for k, p in decision["ranked"]))
    for key in ("issuer", "recipient"):
        if decision.get(key):
            console.print(f"  {key}: {decision[key]}")
    if decision["tags"]:
        console.print(f"  tags: {', '.join(decision['tags'])}")
    for key, value in sorted(decision["fields"].items()):
        console.print(f"  {key}: {json.dumps(value, ensure_ascii=False)}", soft_wrap=True)
    for e in decision.get("events", []):
        console.print(f"  [dim]{e['at']} {e['actor']} {e['action']} ({e['reason']})[/dim]")


@app.command("queue")
def queue(
    state: Annotated[str, typer.Option(help="review, applied, confirmed or unsorted.")] = "review",
    limit: int = 50,
) -> None:
    """Documents waiting for a decision ("à trier"), newest first."""
    from serving.cli import console

    page = _call("GET", "/v1/sorting/queue", params={"state": state, "limit": limit})
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("document, id", "suggested", "confidence", "reason"):
        table.add_column(column, overflow="fold")
    for d in page["items"]:
        conf = "" if d["confidence"] is None else f"{d['confidence']:.2f}"
        table.add_row(
            f"{d.get('title') or ''}\n{d['document_id']}",
            d["suggested_type"] or "—",
            conf,
            d["reason"],
        )
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(page["counts"].items())), style="dim")


@app.command("show")
def show(document_id: str) -> None:
    """A document's decision, suggestion, fields and history."""
    _print(_call("GET", f"/v1/sorting/documents/{document_id}"))


@app.command("accept")
def accept(document_id: str) -> None:
    """Confirm the suggested type (applied, filed, learned from)."""
    _print(_call("POST", f"/v1/sorting/documents/{document_id}/accept"))


@app.command("correct")
def correct(
    document_id: str,
    type_: Annotated[str | None, typer.Option("--type", help="The document type's key.")] = None,
    issuer: Annotated[str | None, typer.Option(help="Correspondent key ('' clears).")] = None,
    recipient: Annotated[str | None, typer.Option(help="Correspondent key ('' clears).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Repeat per tag.")] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="key=value, the value as JSON when it parses."),
    ] = None,
) -> None:
    """Give the document its type (and more): applied, filed, and learned from."""
    body: dict[str, Any] = {}
    if type_:
        body["document_type"] = type_
    if issuer is not None:
        body["issuer"] = issuer
    if recipient is not None:
        body["recipient"] = recipient
    if tag:
        body["tags"] = tag
    if field:
        values: dict[str, Any] = {}
        for item in field:
            key, sep, raw = item.partition("=")
            if not sep:
                from serving.cli import _fail

                raise _fail(f"--field {item!r}: write key=value")
            try:
                values[key] = json.loads(raw)
            except ValueError:
                values[key] = raw
        body["fields"] = values
    _print(_call("POST", f"/v1/sorting/documents/{document_id}/correct", json=body))


@app.command("undo")
def undo(document_id: str) -> None:
    """Put back what the last decision changed; the document returns to the review queue."""
    _print(_call("POST", f"/v1/sorting/documents/{document_id}/undo"))


@app.command("again")
def again(document_id: str) -> None:
    """Sort the document again (after the vocabulary changed)."""
    _print(_call("POST", f"/v1/sorting/documents/{document_id}/sort"))


@app.command("settings")
def settings(
    threshold: Annotated[float | None, typer.Option(help="Apply at or above (0-1).")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
) -> None:
    """Show, or change, the tenant's threshold and whether sorting runs."""
    from serving.cli import console

    body = {k: v for k, v in {"threshold": threshold, "enabled": enable}.items() if v is not None}
    result = (
        _call("PATCH", "/v1/sorting/settings", json=body)
        if body
        else _call("GET", "/v1/sorting/settings")
    )
    console.print_json(data=result)


@vocab.command("list")
def vocab_list() -> None:
    """Every entry, by kind."""
    from serving.cli import console

    v = _call("GET", "/v1/sorting/vocabulary")
    for kind in ("types", "correspondents", "tags", "fields"):
        table = Table(title=kind, box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("key", "name", "auto", "details"):
            table.add_column(column, overflow="fold")
        for e in v[kind]:
            details = e["collection"] or ", ".join(e["identifiers"]) or (e["field_kind"] or "")
            table.add_row(e["key"], e["name"], "yes" if e["auto"] else "never", details)
        console.print(table)


@vocab.command("add")
def vocab_add(
    kind: Annotated[str, typer.Argument(help="type, correspondent, tag or field")],
    name: str,
    key: Annotated[str | None, typer.Option(help="Default: a slug of the name.")] = None,
    description: str = "",
    collection: Annotated[str | None, typer.Option(help="Types: filed into.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Types: tags given.")] = None,
    identifier: Annotated[
        list[str] | None, typer.Option("--identifier", help="Correspondents: SIRET/VAT.")
    ] = None,
    field_kind: Annotated[str | None, typer.Option(help="Fields: date, amount, ...")] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="algorithm:pattern (any, all, exact, regex, fuzzy)."),
    ] = None,
    auto: Annotated[bool, typer.Option("--auto/--never-auto")] = True,
) -> None:
    """Create or replace an entry."""
    from serving.cli import console

    rules = []
    for r in rule or []:
        algorithm, _, pattern = r.partition(":")
        rules.append({"algorithm": algorithm, "pattern": pattern})
    body: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "key": key,
        "description": description,
        "auto": auto,
        "rules": rules,
        "collection": collection,
        "tags": tag or [],
        "identifiers": identifier or [],
        "field_kind": field_kind,
    }
    console.print_json(data=_call("POST", "/v1/sorting/vocabulary", json=body))


@vocab.command("remove")
def vocab_remove(kind: str, key: str) -> None:
    """Delete an entry."""
    from serving.cli import console

    _call_empty("DELETE", f"/v1/sorting/vocabulary/{kind}/{key}")
    console.print(f"{kind} {key} removed")


def _call_empty(method: str, path: str) -> None:
    import httpx

    from serving.cli import _client, _fail

    with _client() as client:
        try:
            resp: httpx.Response = client.request(method, path)
        except httpx.HTTPError as exc:
            raise _fail(str(exc)) from exc
    if resp.status_code >= 400:
        raise _fail(f"{resp.status_code} {resp.text[:200]}")
