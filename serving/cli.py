"""The ``gedrag`` command: run the platform, administer tenants and keys, ingest files."""

from __future__ import annotations

import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.errors import GedragError
from core.settings import get_settings
from infra.migrate.cli import app as migrate_app
from serving.monitoring_cli import monitor as monitor_app
from serving.monitoring_cli import suite as suite_app
from serving.monitoring_cli import traces as trace_app
from serving.people_cli import access as access_app
from serving.people_cli import audit as audit_app
from serving.people_cli import groups as groups_app
from serving.people_cli import users as users_app
from serving.records_cli import app as records_app
from serving.sorting_cli import app as sort_app
from serving.sources_cli import app as sources_app

# Arguments are parsed before anything heavy loads (`gedrag --help` and the client commands
# never import the stores, the models or the web app): each command imports what it uses.
if TYPE_CHECKING:
    import httpx

    from core.settings import Settings
    from runtime import Runtime
    from stores.catalog.evaluation import EvalStore

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
app.add_typer(sort_app, name="sort")
app.add_typer(records_app, name="records")
app.add_typer(sources_app, name="sources")
app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")
app.add_typer(audit_app, name="audit")
app.add_typer(access_app, name="access")
evals = typer.Typer(help="Evaluate pipeline releases on suites.", no_args_is_help=True)
releases = typer.Typer(help="Pipeline releases and their promotion.", no_args_is_help=True)
app.add_typer(evals, name="eval")
app.add_typer(releases, name="release")
app.add_typer(trace_app, name="trace")
app.add_typer(monitor_app, name="monitor")
evals.add_typer(suite_app, name="suite")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def _runtime() -> Runtime:
    from runtime import Runtime

    try:
        return Runtime.build(get_settings())
    except GedragError as exc:
        raise _fail(exc.detail) from exc


def _bootstrap(rt: Runtime) -> None:
    """On first start, create the default tenant and print its API key (shown only once)."""
    if rt.catalog.tenants.all():
        return
    name = rt.settings.default_tenant
    rt.catalog.tenants.create(name)
    key, _ = rt.catalog.tenants.create_key(name, "bootstrap")
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
    from core.observability import configure_logging

    configure_logging(settings.observability)
    rt = _runtime()
    # The embedding model (~7 s alone, 30-45 s on a busy machine) loads while the stores open
    # and the server starts; the API's warm-up and the first job wait for this same load.
    threading.Thread(target=_load_models, args=(rt,), name="gedrag-models", daemon=True).start()
    if not settings.qdrant.url:
        from infra.migrate import to_edge

        try:
            # Converts a folder of the previous release, opens the store, indexes before serving.
            to_edge.prepare(rt)
        except GedragError as exc:
            raise _fail(exc.detail) from exc
    return rt


Host = Annotated[
    str | None,
    typer.Option(
        help="Address to listen on (default GEDRAG_API__HOST, 127.0.0.1).", show_default=False
    ),
]
Port = Annotated[
    int | None,
    typer.Option(help="Port to listen on (default GEDRAG_API__PORT, 8000).", show_default=False),
]


def _listening(settings: Settings, host: str | None, port: int | None) -> Settings:
    """The settings with the command line's address, which wins over the environment."""
    api_settings = settings.api.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    return settings.model_copy(update={"api": api_settings})


def _load_models(rt: Runtime) -> None:
    try:
        rt.models.load()
    except GedragError as exc:  # the API's /ready and the first job say it again, with the cause
        err.print(f"[yellow]warning:[/yellow] the embedding model did not load: {exc.detail}")


def _serve(settings: Settings, *, embedded_worker: bool) -> None:
    import uvicorn

    from serving.app import create_app

    rt = _server_runtime(settings)
    _bootstrap(rt)
    # 0.0.0.0 and :: listen everywhere; a browser on this machine reaches them on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.api.host, settings.api.host)  # noqa: S104
    base = f"http://{host}:{settings.api.port}"
    console.print(
        f"gedrag API on {base} (data: {settings.data_dir.resolve()}; "
        f"worker: {'embedded' if embedded_worker else 'separate'})\n"
        f"    web console: {base}/    API documentation: {base}/docs    MCP: {base}/mcp",
        soft_wrap=True,
    )
    uvicorn.run(
        create_app(settings, runtime=rt, embedded_worker=embedded_worker),
        host=settings.api.host,
        port=settings.api.port,
        # gedrag's own access log (with request id and tenant) replaces uvicorn's.
        log_config=None,
        access_log=False,
        # SIGTERM: requests still running after this are cut, then ingestion is interrupted
        # and its jobs requeued (the lifespan's end): the process exits within ~15 s.
        timeout_graceful_shutdown=settings.limits.shutdown_s,
    )


@app.command()
def up(host: Host = None, port: Port = None) -> None:
    """Start the API with an embedded worker (embedded defaults: no Redis, no servers)."""
    settings = _listening(get_settings(), host, port)
    _serve(settings, embedded_worker=settings.embedded_broker)


@app.command()
def api(host: Host = None, port: Port = None) -> None:
    """Start the API only (production: workers run as `gedrag worker` over Redis)."""
    settings = _listening(get_settings(), host, port)
    if settings.embedded_broker:
        err.print("[yellow]warning:[/yellow] in-process broker: jobs run only under `gedrag up`")
    _serve(settings, embedded_worker=False)


class WorkerStage(StrEnum):
    ALL = "all"
    INDEX = "index"
    EMBED = "embed"


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Parallel tasks in this worker.")] = 1,
    beat: Annotated[
        bool,
        typer.Option(
            help="Also run Celery beat: the records daily run and the sources' syncs (run it "
            "in one worker)."
        ),
    ] = False,
    stage: Annotated[
        WorkerStage,
        typer.Option(
            help="Which steps this worker takes: 'all'; 'index' (parse, terms, graph: what "
            "makes documents searchable); 'embed' (the embedding step alone: a GPU worker)."
        ),
    ] = WorkerStage.ALL,
) -> None:
    """Start a Celery worker consuming the broker named by GEDRAG_BROKER__URL."""
    settings = get_settings()
    if settings.embedded_broker:
        raise _fail(
            "the in-process broker (memory://) only serves `gedrag up`; "
            "set GEDRAG_BROKER__URL=redis://... for separate workers"
        )
    from prometheus_client import start_http_server

    from ingestion.celery_app import GedragCelery
    from serving import monitoring_api, sources_api

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
    sources_api.attach(celery, embedded=False)  # the sources' round task and beat entry
    monitoring_api.register_daily(celery)  # drift reports and trace purge, daily under beat
    # Threads, not processes: one embedding model in memory per worker and one set of
    # metrics (torch and the parsers release the GIL while they work).
    from ingestion.tasks import embedding_queue

    queues = {
        WorkerStage.ALL: [settings.broker.queue, embedding_queue(settings)],
        WorkerStage.INDEX: [settings.broker.queue],
        WorkerStage.EMBED: [embedding_queue(settings)],
    }[stage]
    celery.Worker(
        queues=queues,
        concurrency=concurrency,
        pool="threads" if concurrency > 1 else "solo",
        loglevel=settings.observability.log_level,
        beat=beat,
        schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    ).start()


# -- tenants and keys ---------------------------------------------------------------------


@tenants.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant and print its first API key (shown only once)."""
    rt = _runtime()
    try:
        rt.catalog.tenants.create(name)
        key, _ = rt.catalog.tenants.create_key(name, "initial")
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"tenant {name!r} created; API key (shown only once): [bold]{key}[/bold]")


@tenants.command("list")
def tenants_list() -> None:
    table = Table("name", "id", "created")
    for t in _runtime().catalog.tenants.all():
        table.add_row(t.name, t.id, t.created_at.isoformat(timespec="seconds"))
    console.print(table)


@keys.command("create")
def keys_create(
    tenant: str, name: Annotated[str, typer.Option(help="A label for the key.")] = "cli"
) -> None:
    """Create an API key for a tenant (shown only once)."""
    try:
        key, info = _runtime().catalog.tenants.create_key(tenant, name)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"key {info.id} for {tenant!r} (shown only once): [bold]{key}[/bold]")


@keys.command("list")
def keys_list(tenant: str) -> None:
    try:
        infos = _runtime().catalog.tenants.keys(tenant)
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
        _runtime().catalog.tenants.revoke_key(key_id)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"key {key_id} revoked")


# -- client commands (through the HTTP API) -----------------------------------------------


def _client() -> httpx.Client:
    import httpx

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
    import httpx

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
                progress.console.print(f"[red]✗[/red] {escape(f'{f}: {exc}')}")
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
                    cause = escape(f"{name}: {job['error']}")
                    progress.console.print(f"[red]✗[/red] {cause}")
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
    import httpx

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
    import httpx

    params = {k: v for k, v in {"collection": collection, "tag": tag, "limit": limit}.items() if v}
    with _client() as client:
        try:
            page = _check(client.get("/v1/documents", params=params))
        except (GedragError, httpx.HTTPError) as exc:
            raise _fail(str(exc)) from exc
    # Readable in an 80-column terminal: no vertical rules; under each title its id (36
    # characters, which the other commands take, whole on one line) and its tags.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, leading=1)
    table.add_column("document, id, tags", min_width=36, overflow="fold")
    table.add_column("collection", max_width=24, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("v", justify="right", no_wrap=True)
    for d in page["items"]:
        cell = Text(d["title"], style="bold")
        cell.append("\n" + d["id"], style="dim")
        if d["tags"]:
            cell.append("\n" + ", ".join(d["tags"]), style="cyan")
        table.add_row(cell, d["collection"], d["status"], str(d["current_version"]))
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more documents exist: raise --limit (now {limit})", style="dim")


# -- evaluation and releases --------------------------------------------------------------


def _eval_store() -> tuple[Settings, EvalStore]:
    from stores.catalog.evaluation import EvalStore

    rt = _runtime()
    return rt.settings, EvalStore(rt.catalog)


@evals.command("run")
def eval_run(
    release: Annotated[Path, typer.Option("--release", "-r", help="Release YAML file.")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite name.")],
    path: Annotated[
        Path | None, typer.Option(help="Folder of the suite's data (default: its descriptor's).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the reports (default <data dir>/reports/<run>).")
    ] = None,
) -> None:
    """Ingest the suite under the release's config, answer every question, score, store."""
    from evaluation import runner, suites
    from evaluation import service as ev
    from evaluation.release import load_release

    settings, store = _eval_store()
    try:
        rel = load_release(release)
        data = suites.load_suite(suite, path, limit=limit)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    console.print(
        f"release [bold]{rel.name}[/bold] ({rel.id}) on suite [bold]{data.name}[/bold] "
        f"({data.id}): {len(data.corpus)} documents, {len(data.questions)} questions"
    )
    columns = (
        TextColumn("{task.description:>15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks: dict[str, Any] = {}
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            result = runner.run(settings, rel, data, store, progress=report)
        except GedragError as exc:
            raise _fail(exc.detail) from exc
    elapsed = time.perf_counter() - started
    table = Table("metric", "score", title=f"run {result.id}")
    for k, v in result.scores.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    lat = result.info.get("latency_ms", {})
    if lat:
        console.print(
            "latency ms (p50/p95): "
            + ", ".join(f"{k} {v['p50']:.0f}/{v['p95']:.0f}" for k, v in lat.items())
        )
    folder = out or settings.data_dir / "reports" / result.id
    folder.mkdir(parents=True, exist_ok=True)
    for fmt, name in (("json", "report.json"), ("md", "report.md"), ("html", "report.html")):
        (folder / name).write_text(ev.report(store, result.id, fmt), encoding="utf-8")
    reused = "reused" if result.info.get("index_reused") else f"{result.info.get('ingest_s')} s"
    console.print(
        f"finished in {elapsed:.0f} s (ingestion {reused}, answers "
        f"{result.info.get('answer_s')} s); reports in {folder}/report.{{json,md,html}}"
    )


@evals.command("compare")
def eval_compare(
    a: Annotated[str, typer.Argument(help="Run id, or release (id, name or file).")],
    b: Annotated[str, typer.Argument(help="Run id, or release (id, name or file).")],
    suite: Annotated[str | None, typer.Option("--suite", "-s")] = None,
    metric: Annotated[str, typer.Option(help="Metric of the per-question table.")] = "ndcg@10",
    show: Annotated[int, typer.Option(help="Questions listed (largest changes first).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-question differences B - A, with paired bootstrap intervals per metric."""
    import json

    from evaluation import service as ev

    _, store = _eval_store()
    try:
        cmp = ev.compare(store, a, b, suite)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    if as_json:
        console.print_json(json.dumps(cmp, default=str))
        return
    console.print(
        f"A = run {cmp['a']['id']} (release {cmp['a']['release_id']}), "
        f"B = run {cmp['b']['id']} (release {cmp['b']['release_id']}), suite {cmp['a']['suite']}"
    )
    table = Table("metric", "A", "B", "B - A", "95% CI", "n")
    for m, d in cmp["metrics"].items():
        table.add_row(
            m,
            f"{d['a']:.4f}",
            f"{d['b']:.4f}",
            f"{d['mean']:+.4f}",
            f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]",
            str(d["n"]),
        )
    console.print(table)
    rows = [q for q in cmp["questions"] if metric in q["diff"]]
    rows.sort(key=lambda q: -abs(q["diff"][metric]))
    per_q = Table("question", f"A {metric}", f"B {metric}", "B - A", title="per question")
    for q in rows[:show]:
        per_q.add_row(
            f"{q['id']}: {q['question'][:60]}",
            f"{q['a'][metric]:.3f}",
            f"{q['b'][metric]:.3f}",
            f"{q['diff'][metric]:+.3f}",
        )
    console.print(per_q)
    changed = sum(1 for q in rows if q["diff"][metric] != 0)
    console.print(f"{changed} of {len(rows)} questions changed on {metric}")


@evals.command("report")
def eval_report(
    run_id: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html, md or json.")] = "html",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """A stored run's report."""
    from evaluation import service as ev

    _, store = _eval_store()
    try:
        text = ev.report(store, run_id, fmt)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


@releases.command("list")
def release_list() -> None:
    """Releases, the production one, and their newest score per suite."""
    from evaluation import service as ev

    _, store = _eval_store()
    data = ev.releases_public(store)
    table = Table("", "name", "id", "created", "latest runs (suite: nDCG@10, run id)")
    for r in data["releases"]:
        runs = "; ".join(
            f"{x['suite']}: {x['scores'].get('ndcg@10', float('nan')):.3f} ({x['id'][:8]})"
            for x in r["latest_runs"]
        )
        table.add_row(
            "★" if r["production"] else "", r["name"], r["id"], r["created_at"][:19], runs
        )
    console.print(table)
    console.print(f"production: {data['production'] or 'none (serving uses its settings)'}")


@releases.command("promote")
def release_promote(
    release: Annotated[str, typer.Argument(help="Release id, name or YAML file.")],
    suite: Annotated[str | None, typer.Option("--suite", "-s")] = None,
    policy: Annotated[Path | None, typer.Option(help="Gate policy YAML.")] = None,
) -> None:
    """Promote a release to production if the gate passes; the decision is recorded."""
    from evaluation import service as ev

    settings, store = _eval_store()
    try:
        decision = ev.promote(
            store, release, suite=suite, policy_path=policy or settings.evaluation.policy
        )
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    if decision.promoted:
        console.print(
            f"[green]promoted[/green] {decision.release_id} "
            f"(previous: {decision.previous_id or 'none'}; decision {decision.id})"
        )
        return
    console.print(f"[red]refused[/red] {decision.release_id} (decision {decision.id}):")
    for reason in decision.reasons:
        console.print(f"  - {reason}", soft_wrap=True)
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
