"""The ``gedrag`` command: run the platform, administer tenants and keys, ingest files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn
from prometheus_client import start_http_server
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import GedragError
from core.observability import configure_logging
from core.settings import Settings, get_settings
from infra.migrate.cli import app as migrate_app
from ingestion.celery_app import GedragCelery
from ingestion.runtime import Runtime
from serving.app import create_app

app = typer.Typer(
    help="gedrag: document management with grounded, cited answers.", no_args_is_help=True
)
tenants = typer.Typer(help="Manage tenants.", no_args_is_help=True)
keys = typer.Typer(help="Manage API keys.", no_args_is_help=True)
docs = typer.Typer(help="Browse documents through the API.", no_args_is_help=True)
app.add_typer(tenants, name="tenants")
app.add_typer(keys, name="keys")
app.add_typer(docs, name="docs")
app.add_typer(migrate_app, name="migrate")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _runtime() -> Runtime:
    try:
        return Runtime.build(get_settings())
    except GedragError as exc:
        raise _fail(exc.detail) from exc


def _bootstrap(rt: Runtime) -> None:
    """On first start, create the default tenant and print its API key (shown only once)."""
    if rt.catalog.list_tenants():
        return
    name = rt.settings.default_tenant
    rt.catalog.create_tenant(name)
    key, _ = rt.catalog.create_api_key(name, "bootstrap")
    console.print(
        f"\n[bold green]Created tenant {name!r}.[/bold green] Its API key (shown only once):\n\n"
        f"    [bold]{key}[/bold]\n\n"
        f"    export GEDRAG_CLIENT__API_KEY={key}\n",
        soft_wrap=True,
    )


def _server_runtime(settings: Settings) -> Runtime:
    """The runtime of a long-running process (API, worker), with logging configured and the
    local Qdrant folder claimed at once: a second process on it is refused at start, with the
    reason, rather than at its first search or indexing."""
    configure_logging(settings.observability)
    rt = _runtime()
    if not settings.qdrant.url:
        try:
            rt.vectors  # noqa: B018 - opening is the point
        except GedragError as exc:
            raise _fail(exc.detail) from exc
    return rt


def _serve(settings: Settings, *, embedded_worker: bool) -> None:
    rt = _server_runtime(settings)
    _bootstrap(rt)
    console.print(
        f"gedrag API on http://{settings.api.host}:{settings.api.port} "
        f"(docs: /docs; data: {settings.data_dir.resolve()}; "
        f"worker: {'embedded' if embedded_worker else 'separate'})"
    )
    uvicorn.run(
        create_app(settings, runtime=rt, embedded_worker=embedded_worker),
        host=settings.api.host,
        port=settings.api.port,
        # gedrag's own access log (with request id and tenant) replaces uvicorn's.
        log_config=None,
        access_log=False,
    )


@app.command()
def up() -> None:
    """Start the API with an embedded worker (embedded defaults: no Redis, no servers)."""
    settings = get_settings()
    _serve(settings, embedded_worker=settings.embedded_broker)


@app.command()
def api() -> None:
    """Start the API only (production: workers run as `gedrag worker` over Redis)."""
    settings = get_settings()
    if settings.embedded_broker:
        err.print("[yellow]warning:[/yellow] in-process broker: jobs run only under `gedrag up`")
    _serve(settings, embedded_worker=False)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Parallel tasks in this worker.")] = 1,
) -> None:
    """Start a Celery worker consuming the broker named by GEDRAG_BROKER__URL."""
    settings = get_settings()
    if settings.embedded_broker:
        raise _fail(
            "the in-process broker (memory://) only serves `gedrag up`; "
            "set GEDRAG_BROKER__URL=redis://... for separate workers"
        )
    rt = _server_runtime(settings)
    port = settings.observability.worker_metrics_port
    if port:
        try:
            start_http_server(port)
            console.print(f"worker metrics on http://0.0.0.0:{port}/metrics")
        except OSError as exc:  # another worker on this host has it: work on, say so
            err.print(
                f"[yellow]warning:[/yellow] worker metrics off, port {port}: {exc.strerror}; "
                "give each worker its own GEDRAG_OBSERVABILITY__WORKER_METRICS_PORT"
            )
    celery = GedragCelery(settings, rt)
    # Threads, not processes: one embedding model in memory per worker and one set of
    # metrics (torch and the parsers release the GIL while they work).
    celery.Worker(
        concurrency=concurrency,
        pool="threads" if concurrency > 1 else "solo",
        loglevel=settings.observability.log_level,
    ).start()


# -- tenants and keys ---------------------------------------------------------------------


@tenants.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant and print its first API key (shown only once)."""
    rt = _runtime()
    try:
        rt.catalog.create_tenant(name)
        key, _ = rt.catalog.create_api_key(name, "initial")
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"tenant {name!r} created; API key (shown only once): [bold]{key}[/bold]")


@tenants.command("list")
def tenants_list() -> None:
    table = Table("name", "id", "created")
    for t in _runtime().catalog.list_tenants():
        table.add_row(t.name, t.id, t.created_at.isoformat(timespec="seconds"))
    console.print(table)


@keys.command("create")
def keys_create(
    tenant: str, name: Annotated[str, typer.Option(help="A label for the key.")] = "cli"
) -> None:
    """Create an API key for a tenant (shown only once)."""
    try:
        key, info = _runtime().catalog.create_api_key(tenant, name)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"key {info.id} for {tenant!r} (shown only once): [bold]{key}[/bold]")


@keys.command("list")
def keys_list(tenant: str) -> None:
    try:
        infos = _runtime().catalog.list_api_keys(tenant)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    table = Table("id", "name", "prefix", "created", "revoked")
    for k in infos:
        revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else ""
        table.add_row(
            k.id, k.name, k.prefix + "…", k.created_at.isoformat(timespec="seconds"), revoked
        )
    console.print(table)


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    try:
        _runtime().catalog.revoke_api_key(key_id)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"key {key_id} revoked")


# -- client commands (through the HTTP API) -----------------------------------------------


def _client() -> httpx.Client:
    settings = get_settings()
    if settings.client.api_key is None:
        raise _fail("set GEDRAG_CLIENT__API_KEY to an API key (printed by `gedrag up`)")
    return httpx.Client(
        base_url=settings.client.url,
        headers={"Authorization": f"Bearer {settings.client.api_key.get_secret_value()}"},
        timeout=httpx.Timeout(60.0, connect=5.0),
    )


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            message = f"{resp.status_code} {body.get('error')}: {body.get('detail')}"
        except ValueError:
            message = f"{resp.status_code} {resp.text[:200]}"
        raise GedragError(message)
    return resp.json()


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            )
        elif p.is_file():
            files.append(p)
        else:
            raise _fail(f"{p} does not exist")
    return files


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    collection: Annotated[str, typer.Option("--collection", "-c")] = "default",
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Repeatable.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until every document is indexed.")] = True,
) -> None:
    """Upload files to a running gedrag and follow their ingestion."""
    files = _expand(paths)
    if not files:
        raise _fail("no files found")
    jobs: dict[str, str] = {}
    failures = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with _client() as client, Progress(*columns, console=console) as progress:
        up_task = progress.add_task("uploading", total=len(files))
        for f in files:
            try:
                with f.open("rb") as fh:
                    body = _check(
                        client.post(
                            "/v1/documents",
                            files={"file": (f.name, fh)},
                            data={"collection": collection, "tags": ",".join(tag or [])},
                        )
                    )
                if body["job_id"]:
                    jobs[body["job_id"]] = f.name
            except (GedragError, httpx.HTTPError) as exc:
                failures += 1
                progress.console.print(f"[red]✗[/red] {f}: {exc}")
            progress.advance(up_task)
        if wait and jobs:
            failures += _follow(client, progress, jobs)
    console.print(f"{len(files) - failures} of {len(files)} file(s) ingested into {collection!r}")
    if failures:
        raise typer.Exit(1)


def _follow(client: httpx.Client, progress: Progress, jobs: dict[str, str]) -> int:
    task = progress.add_task("indexing", total=len(jobs))
    pending, failures = dict(jobs), 0
    while pending:
        for job_id, name in list(pending.items()):
            job = _check(client.get(f"/v1/jobs/{job_id}"))
            if job["state"] in ("succeeded", "failed"):
                del pending[job_id]
                progress.advance(task)
                if job["state"] == "failed":
                    failures += 1
                    progress.console.print(f"[red]✗[/red] {name}: {job['error']}")
        if pending:
            time.sleep(0.5)
    return failures


@app.command()
def ask(
    question: str,
    collection: Annotated[list[str] | None, typer.Option("--collection", "-c")] = None,
    top_k: Annotated[int | None, typer.Option(help="Passages to retrieve.")] = None,
) -> None:
    """Ask a question of your documents; prints the answer and its sources."""
    body: dict[str, Any] = {"question": question}
    if collection:
        body["collections"] = collection
    if top_k:
        body["top_k"] = top_k
    with _client() as client:
        try:
            reply = _check(client.post("/v1/ask", json=body))
        except (GedragError, httpx.HTTPError) as exc:
            raise _fail(str(exc)) from exc
    console.print(reply["answer"], soft_wrap=True)
    if reply["citations"]:
        table = Table("n", "document", "page", "quote", title="Sources")
        for c in reply["citations"]:
            page = "" if c["page"] is None else str(c["page"])
            table.add_row(str(c["n"]), f"{c['title']} (v{c['version']})", page, c["quote"])
        console.print(table)


@docs.command("list")
def docs_list(
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t")] = None,
    limit: int = 50,
) -> None:
    """List documents, newest first."""
    params = {k: v for k, v in {"collection": collection, "tag": tag, "limit": limit}.items() if v}
    with _client() as client:
        try:
            page = _check(client.get("/v1/documents", params=params))
        except (GedragError, httpx.HTTPError) as exc:
            raise _fail(str(exc)) from exc
    table = Table("title", "collection", "status", "version", "tags")
    table.add_column("id", no_wrap=True, min_width=36)
    for d in page["items"]:
        table.add_row(
            d["title"],
            d["collection"],
            d["status"],
            str(d["current_version"]),
            ",".join(d["tags"]),
            d["id"],
        )
    console.print(table)
