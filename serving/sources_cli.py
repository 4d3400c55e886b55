"""``gedrag sources ...``: a tenant's watched folders, SMB shares and IMAP mailboxes, through
the running API (``GEDRAG_CLIENT__URL``, ``GEDRAG_CLIENT__API_KEY``), like ``gedrag ingest``.

Sources are named by their name. Passwords are asked for (hidden) or read from stdin
(``--password-stdin``), never taken from the command line where the shell's history would
keep them.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    help="Sources that pour documents in: watched folders, SMB shares, IMAP mailboxes.",
    no_args_is_help=True,
)
add = typer.Typer(
    help="Add a source (it syncs at once, then every --interval).", no_args_is_help=True
)
app.add_typer(add, name="add")

console = Console()
err = Console(stderr=True)

Name = Annotated[str, typer.Argument(help="The source's name.")]
Collection = Annotated[str, typer.Option(help="Collection its documents go to.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="A tag of its documents (repeat).")]
Interval = Annotated[
    int | None,
    typer.Option(help="Seconds between syncs (default GEDRAG_SOURCES__DEFAULT_INTERVAL_S)."),
]
OnDelete = Annotated[
    str,
    typer.Option(help="A file deleted at the source: delete its document, trash it, or keep it."),
]
Subfolders = Annotated[
    str,
    typer.Option(help="Sub-folders name the collection (collection), add tags (tags), or none."),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin (one line).")
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _client() -> httpx.Client:
    import httpx

    from core.settings import get_settings

    c = get_settings().client
    if c.api_key is None:
        raise _fail("set GEDRAG_CLIENT__API_KEY (the key printed by `gedrag up`)")
    return httpx.Client(
        base_url=c.url,
        headers={"Authorization": f"Bearer {c.api_key.get_secret_value()}"},
        timeout=60,
    )


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        if isinstance(detail, list):  # FastAPI's validation errors
            detail = "; ".join(
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
            )
        raise _fail(f"{resp.status_code}: {detail}")
    return None if resp.status_code == 204 else resp.json()


def _call(method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    try:
        with _client() as client:
            return _check(client.request(method, path, **kwargs))
    except httpx.TransportError as exc:
        raise _fail(f"the API does not answer: {exc}") from exc


def _by_name(name: str) -> dict[str, Any]:
    for source in _call("GET", "/v1/sources")["items"]:
        if source["name"] == name:
            return dict(source)
    raise _fail(f"no source named {name!r} (`gedrag sources list`)")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True))


def _create(
    name: str,
    connection: dict[str, Any],
    collection: str,
    tags: list[str] | None,
    interval: int | None,
    on_delete: str,
) -> None:
    body: dict[str, Any] = {
        "name": name,
        "collection": collection,
        "tags": tags or [],
        "on_delete": on_delete,
        "connection": connection,
    }
    if interval is not None:
        body["interval_s"] = interval
    source = _call("POST", "/v1/sources", json=body)
    console.print(
        f"source {source['name']!r} added ({source['kind']}, id {source['id']}); it syncs now"
    )


@add.command("folder")
def add_folder(
    name: Name,
    path: Annotated[str, typer.Argument(help="Absolute path of the folder, on the server.")],
    collection: Collection = "default",
    tag: Tags = None,
    interval: Interval = None,
    on_delete: OnDelete = "delete",
    subfolders: Subfolders = "none",
    settle: Annotated[
        float | None, typer.Option(help="Seconds a file must stay unchanged before it is taken.")
    ] = None,
) -> None:
    """Watch a folder on the server's disk (under GEDRAG_SOURCES__FOLDER_ROOTS)."""
    connection: dict[str, Any] = {"kind": "folder", "path": path, "subfolders": subfolders}
    if settle is not None:
        connection["settle_s"] = settle
    _create(name, connection, collection, tag, interval, on_delete)


_SMB = re.compile(
    r"^(?://|\\\\)(?P<server>[^/\\:]+)(?::(?P<port>\d+))?[/\\](?P<share>[^/\\]+)(?P<path>.*)$"
)


@add.command("smb")
def add_smb(
    name: Name,
    location: Annotated[
        str, typer.Argument(help="//server:port/share/folder (port and folder optional)")
    ],
    user: Annotated[str, typer.Option(help="User name on the file server.")],
    domain: Annotated[str, typer.Option(help="Windows domain of the user.")] = "",
    password_stdin: PasswordStdin = False,
    encrypt: Annotated[bool, typer.Option(help="Require SMB 3 encryption.")] = False,
    collection: Collection = "default",
    tag: Tags = None,
    interval: Interval = None,
    on_delete: OnDelete = "delete",
    subfolders: Subfolders = "none",
) -> None:
    """Watch a share of an SMB/CIFS file server."""
    m = _SMB.match(location)
    if m is None:
        raise _fail(f"{location!r} is not //server:port/share/folder (port and folder optional)")
    connection: dict[str, Any] = {
        "kind": "smb",
        "server": m["server"],
        "share": m["share"],
        "path": m["path"].strip("/\\"),
        "username": user,
        "domain": domain,
        "password": _password(password_stdin),
        "encrypt": encrypt,
        "subfolders": subfolders,
    }
    if m["port"]:
        connection["port"] = int(m["port"])
    _create(name, connection, collection, tag, interval, on_delete)


@add.command("imap")
def add_imap(
    name: Name,
    server: Annotated[str, typer.Argument(help="host[:port] of the IMAP server.")],
    user: Annotated[str, typer.Option(help="Mailbox user name.")],
    password_stdin: PasswordStdin = False,
    security: Annotated[str, typer.Option(help="ssl, starttls or none.")] = "ssl",
    folder: Annotated[str, typer.Option(help="Folder to read.")] = "INBOX",
    processed: Annotated[
        str, typer.Option(help="Handled mails: flag them, or move them.")
    ] = "flag",
    processed_folder: Annotated[
        str, typer.Option(help="Where --processed move puts them.")
    ] = "Processed",
    body: Annotated[bool, typer.Option(help="Also take each mail's text as a document.")] = False,
    collection: Collection = "default",
    tag: Tags = None,
    interval: Interval = None,
) -> None:
    """Read a mailbox: attachments (and with --body the text) become documents."""
    host, _, port = server.partition(":")
    connection: dict[str, Any] = {
        "kind": "imap",
        "host": host,
        "security": security,
        "username": user,
        "password": _password(password_stdin),
        "folder": folder,
        "processed": processed,
        "processed_folder": processed_folder,
        "body": body,
    }
    if port:
        if not port.isdigit():
            raise _fail(f"{server!r} is not host[:port]")
        connection["port"] = int(port)
    _create(name, connection, collection, tag, interval, "keep")


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "—"


@app.command("list")
def list_sources() -> None:
    """Every source: state, last sync, next sync, items per outcome, last error."""
    items = _call("GET", "/v1/sources")["items"]
    table = Table("name", "kind", "status", "last sync", "next sync", "items", "last error")
    for s in items:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())) or "—"
        table.add_row(
            s["name"],
            s["kind"],
            s["status"] + (f" ({s['failures']}x)" if s["failures"] else ""),
            _when(s["last_finished_at"]),
            _when(s["next_sync_at"]),
            counts,
            s["last_error"] or "",
        )
    console.print(table)


@app.command("sync")
def sync(
    name: Name,
    full: Annotated[bool, typer.Option(help="Start over from an empty cursor.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the round to end and print it.")] = False,
    timeout: Annotated[float, typer.Option(help="Longest wait, seconds.")] = 600,
) -> None:
    """Sync a source now."""
    source = _by_name(name)
    before = source["last_finished_at"]
    _call("POST", f"/v1/sources/{source['id']}/sync", json={"full": full})
    if not wait:
        console.print(f"source {name!r}: sync started")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _call("GET", f"/v1/sources/{source['id']}")
        if now["status"] != "syncing" and now["last_finished_at"] != before:
            summary = now["last_round"]
            console.print(f"source {name!r}: {now['status']}; {summary.get('counts', {})}")
            if now["status"] == "failing":
                raise _fail(now["last_error"] or "the round failed")
            return
    raise _fail(f"source {name!r}: no round ended within {timeout:g} s")


@app.command("pause")
def pause(name: Name) -> None:
    """Stop syncing a source (until `resume`)."""
    _call("POST", f"/v1/sources/{_by_name(name)['id']}/pause")
    console.print(f"source {name!r} paused")


@app.command("resume")
def resume(name: Name) -> None:
    """Sync a paused source again."""
    _call("POST", f"/v1/sources/{_by_name(name)['id']}/resume")
    console.print(f"source {name!r} resumed")


@app.command("remove")
def remove(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a source (its documents stay)."""
    source = _by_name(name)
    if not yes and not typer.confirm(f"Remove source {name!r}? Its documents stay."):
        raise typer.Exit(1)
    _call("DELETE", f"/v1/sources/{source['id']}")
    console.print(f"source {name!r} removed")


@app.command("items")
def items(
    name: Name,
    outcome: Annotated[str | None, typer.Option(help="Only this outcome (e.g. failed).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """A source's items, most recent first, with their outcome and its cause."""
    source = _by_name(name)
    params: dict[str, Any] = {"limit": limit}
    if outcome:
        params["outcome"] = outcome
    page = _call("GET", f"/v1/sources/{source['id']}/items", params=params)
    table = Table("item", "outcome", "detail", "document", "when")
    for i in page["items"]:
        table.add_row(
            i["key"], i["outcome"], i["detail"], i["document_id"] or "", _when(i["updated_at"])
        )
    console.print(table)
