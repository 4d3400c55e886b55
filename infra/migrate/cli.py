"""`gedrag migrate ...`: the operator's commands; each run is logged in the catalog."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import ConfigurationError, GedragError, InvalidInput
from core.settings import get_settings

# Arguments are parsed before the stores load: `gedrag migrate --help` imports none of them,
# and each command imports what it uses.
if TYPE_CHECKING:
    from infra.migrate import verify
    from ingestion.indexing import Indexer
    from runtime import Runtime

M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    help="Migrate between stores with no downtime: dual-write graph migration, re-embedding "
    "behind a Qdrant alias, embedded → production copy, verification and repair.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")]
BatchSize = Annotated[int | None, typer.Option(help="Documents per batch (one checkpoint each).")]
Restart = Annotated[bool, typer.Option(help="Ignore the checkpoint and start from the beginning.")]
Model = Annotated[str | None, typer.Option(help="Embedding model of the new collection.")]
K1 = Annotated[float | None, typer.Option("--sparse-k1", help="BM25 k1 of the new collection.")]
B = Annotated[float | None, typer.Option("--sparse-b", help="BM25 b of the new collection.")]
AvgLen = Annotated[
    float | None, typer.Option("--sparse-avg-doc-length", help="BM25 mean chunk length.")
]
MaxTokens = Annotated[
    int | None,
    typer.Option("--chunk-max-tokens", help="Largest chunk (model tokens): re-chunks everything."),
]
Overlap = Annotated[
    int | None, typer.Option("--chunk-overlap", help="Overlap of split sections (tokens).")
]
MinSection = Annotated[
    int | None,
    typer.Option("--chunk-min-section", help="Smaller sections merge with the next (tokens)."),
]

# Rates measured on the reference machine (2 cores, README): they scale the estimates of `plan`.
EMBED_CHUNKS_PER_S = 13.0
GRAPH_CHUNKS_PER_S = 400.0
COPY_POINTS_PER_S = 1000.0


class Store(StrEnum):
    graph = "graph"
    vectors = "vectors"


def _runtime() -> Runtime:
    from runtime import Runtime

    try:
        return Runtime.build(get_settings())
    except GedragError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


@contextmanager
def _logged(
    rt: Runtime, command: str, args: dict[str, Any], dry_run: bool
) -> Iterator[dict[str, Any]]:
    """Log the run in the catalog; print GedragErrors as one line and exit 1; close the stores
    (a local Qdrant folder admits one client)."""
    try:
        with _logging(rt, command, args, dry_run) as summary:
            yield summary
    finally:
        rt.close()


@contextmanager
def _logging(
    rt: Runtime, command: str, args: dict[str, Any], dry_run: bool
) -> Iterator[dict[str, Any]]:
    from stores.catalog import migration_state

    summary: dict[str, Any] = {}
    run_id = migration_state.start_run(rt.catalog, command, args, dry_run=dry_run)
    try:
        yield summary
    except GedragError as exc:
        migration_state.finish_run(
            rt.catalog, run_id, state="failed", summary=summary, error=exc.detail
        )
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    except typer.Exit as exc:
        state = "succeeded" if exc.exit_code == 0 else "failed"
        migration_state.finish_run(rt.catalog, run_id, state=state, summary=summary)
        raise
    except BaseException as exc:
        migration_state.finish_run(
            rt.catalog,
            run_id,
            state="failed",
            summary=summary,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    migration_state.finish_run(rt.catalog, run_id, state="succeeded", summary=summary)
    if dry_run:
        console.print("[yellow]dry run: nothing was changed[/yellow]")


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report


def _show(summary: dict[str, Any]) -> None:
    console.print_json(json.dumps(summary, default=str))


def _indexer(
    rt: Runtime,
    model: str | None,
    sparse_args: tuple[float | None, float | None, float | None],
    chunk_args: tuple[int | None, int | None, int | None],
) -> Indexer:
    from infra.migrate import vectors

    k1, b, avg = sparse_args
    max_tokens, overlap, min_section = chunk_args
    try:
        sparse = _override(rt.settings.sparse, k1=k1, b=b, avg_doc_length=avg)
        chunking = _override(
            rt.settings.chunking,
            max_tokens=max_tokens,
            overlap_tokens=overlap,
            min_section_tokens=min_section,
        )
        return vectors.target_indexer(rt, model=model, sparse=sparse, chunking=chunking)
    except ValidationError as exc:
        problems = [": ".join([*map(str, e["loc"]), e["msg"]]) for e in exc.errors()]
        raise InvalidInput("invalid parameters: " + "; ".join(problems)) from exc


def _override(current: M, **given: object) -> M | None:
    """``current`` with the given values (``None``: unchanged), validated; ``None`` when no
    value is given."""
    changes = {k: v for k, v in given.items() if v is not None}
    return type(current).model_validate(current.model_dump() | changes) if changes else None


@app.command()
def plan() -> None:
    """What a migration would move, how much, and how long it would take here."""
    rt = _runtime()
    with _logged(rt, "plan", {}, False) as out:
        table = _plan(rt, out)
    console.print(table)


def _plan(rt: Runtime, out: dict[str, Any]) -> Table:
    from infra.migrate import graph
    from stores.catalog import migration_state, staging
    from stores.graph.dual import DualGraphStore

    docs = rt.catalog.documents.all_live()
    chunks = rt.catalog.chunks.count()
    out.update(documents=len(docs), chunks=chunks)
    g = rt.graph
    table = Table("what", "value")
    table.add_row("documents (catalog)", str(len(docs)))
    table.add_row("chunk records (catalog)", str(chunks))
    try:
        target = rt.vectors.alias_target() or "(plain collection)"
        table.add_row("vector collection", f"{rt.vectors.collection} → {target}")
    except ConfigurationError as exc:  # a running `gedrag up` holds the local Qdrant folder
        table.add_row("vector collection", exc.detail)
    if isinstance(g, DualGraphStore):
        key = graph.checkpoint_key(rt.settings)
        state = migration_state.get_state(rt.catalog, key) or {}
        src = graph.count_documents(g.primary)
        table.add_row(
            "graph dual write",
            graph.describe(rt.settings, "primary")
            + " → "
            + graph.describe(rt.settings, "secondary"),
        )
        table.add_row(
            "graph documents (primary / secondary)", f"{src} / {graph.count_documents(g.secondary)}"
        )
        table.add_row("graph reads from", graph.role(rt))
        table.add_row("graph backfill checkpoint", json.dumps(state) if state else "(not started)")
        table.add_row("graph backfill estimate", f"~{chunks / GRAPH_CHUNKS_PER_S:.0f} s")
    else:
        table.add_row("graph store", graph.describe(rt.settings, "primary") + " (no dual write)")
    table.add_row(
        "re-embedding estimate",
        f"~{chunks / EMBED_CHUNKS_PER_S:.0f} s ({EMBED_CHUNKS_PER_S:.0f} chunks/s)",
    )
    table.add_row(
        "re-chunking estimate",
        f"~{chunks / EMBED_CHUNKS_PER_S:.0f} s × current / new --chunk-max-tokens, "
        "plus parsing every original again",
    )
    staged = staging.counts(rt.catalog)
    out["staged_chunks"] = staged
    table.add_row(
        "staged chunk records (re-chunking)",
        ", ".join(f"{name}: {n}" for name, n in sorted(staged.items())) or "(none)",
    )
    table.add_row(
        "copy to production estimate",
        f"~{chunks / COPY_POINTS_PER_S + chunks / GRAPH_CHUNKS_PER_S:.0f} s",
    )
    return table


@app.command()
def backfill(
    store: Annotated[Store, typer.Argument(help="graph (re-embedding is `reembed`)")],
    batch_size: BatchSize = None,
    restart: Restart = False,
    dry_run: DryRun = False,
) -> None:
    """Copy what the primary graph store holds into the secondary, resumably."""
    from infra.migrate import graph

    if store is not Store.graph:
        err.print("[red]error:[/red] vectors are rebuilt with `gedrag migrate reembed`")
        raise typer.Exit(2)
    rt = _runtime()
    with _logged(
        rt, "backfill graph", {"batch_size": batch_size, "restart": restart}, dry_run
    ) as out:
        with _bar("backfill graph") as report:
            result = graph.backfill(
                rt, batch_size=batch_size, restart=restart, dry_run=dry_run, progress=report
            )
        out.update(result.to_dict())
        _show(out)


@app.command()
def cutover(
    store: Annotated[Store, typer.Argument(help="graph (vectors switch with `reembed --switch`)")],
    force: Annotated[
        bool, typer.Option(help="Cut over despite drift or an unfinished backfill.")
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Make the secondary graph store serve reads (dual write continues)."""
    from infra.migrate import graph

    if store is not Store.graph:
        err.print("[red]error:[/red] vectors switch with `gedrag migrate reembed --switch`")
        raise typer.Exit(2)
    rt = _runtime()
    with _logged(rt, "cutover graph", {"force": force}, dry_run) as out:
        out.update(graph.cutover(rt, force=force, dry_run=dry_run))
        _show(out)


@app.command()
def rollback(store: Store, dry_run: DryRun = False) -> None:
    """Serve reads from the previous store again: the primary graph store, or the collection
    the vector alias pointed to before the last switch."""
    from infra.migrate import graph, vectors

    rt = _runtime()
    with _logged(rt, f"rollback {store}", {}, dry_run) as out:
        out.update(
            graph.rollback(rt, dry_run=dry_run)
            if store is Store.graph
            else vectors.rollback(rt, dry_run=dry_run)
        )
        _show(out)


@app.command()
def finalize(store: Store, dry_run: DryRun = False) -> None:
    """End a migration: graph: keep the store serving reads (prints the settings to deploy);
    vectors: drop the collection the alias left."""
    from infra.migrate import graph, vectors

    rt = _runtime()
    with _logged(rt, f"finalize {store}", {}, dry_run) as out:
        out.update(
            graph.finalize(rt, dry_run=dry_run)
            if store is Store.graph
            else vectors.finalize(rt, dry_run=dry_run)
        )
        _show(out)


@app.command()
def reembed(
    model: Model = None,
    sparse_k1: K1 = None,
    sparse_b: B = None,
    sparse_avg_doc_length: AvgLen = None,
    chunk_max_tokens: MaxTokens = None,
    chunk_overlap: Overlap = None,
    chunk_min_section: MinSection = None,
    switch: Annotated[bool, typer.Option("--switch", help="Then point the alias at it.")] = False,
    batch_size: BatchSize = None,
    restart: Restart = False,
    dry_run: DryRun = False,
) -> None:
    """Build a new Qdrant collection (another model, sparse weights or chunk parameters) while
    the old one serves; with --switch, move the alias to it in one step (new chunk parameters:
    and the catalog's chunk records and the graph's chunks). Local Qdrant: only the process
    that holds the folder can do this (stop `gedrag up`, or use a Qdrant server)."""
    from infra.migrate import vectors
    from stores.catalog import migration_state

    rt = _runtime()
    args = {
        "model": model,
        "k1": sparse_k1,
        "b": sparse_b,
        "avg": sparse_avg_doc_length,
        "chunk_max_tokens": chunk_max_tokens,
        "chunk_overlap": chunk_overlap,
        "chunk_min_section": chunk_min_section,
        "switch": switch,
    }
    with _logged(rt, "reembed", args, dry_run) as out:
        indexer = _indexer(
            rt,
            model,
            (sparse_k1, sparse_b, sparse_avg_doc_length),
            (chunk_max_tokens, chunk_overlap, chunk_min_section),
        )
        t = vectors.target(rt, indexer)
        state = migration_state.get_state(rt.catalog, f"vectors.reembed:{t.new.collection}")
        if restart or not (state and state.get("complete")):
            with _bar("re-embed") as report:
                out.update(
                    vectors.build(
                        rt,
                        indexer,
                        batch_size=batch_size,
                        restart=restart,
                        dry_run=dry_run,
                        progress=report,
                    )
                )
        else:
            out["built"] = f"{t.new.collection} already built (--restart rebuilds it)"
        if switch:
            out["switch"] = vectors.switch(rt, indexer, dry_run=dry_run)
            deploy: list[str] = []
            if (sparse_k1, sparse_b, sparse_avg_doc_length) != (None, None, None):
                sp = indexer.settings.sparse
                deploy.append(
                    f"GEDRAG_SPARSE__K1={sp.k1} GEDRAG_SPARSE__B={sp.b} "
                    f"GEDRAG_SPARSE__AVG_DOC_LENGTH={sp.avg_doc_length} (new documents)"
                )
            if t.rechunk:
                ch = indexer.settings.chunking
                deploy.append(
                    f"GEDRAG_CHUNKING__MAX_TOKENS={ch.max_tokens} "
                    f"GEDRAG_CHUNKING__OVERLAP_TOKENS={ch.overlap_tokens} "
                    f"GEDRAG_CHUNKING__MIN_SECTION_TOKENS={ch.min_section_tokens} (new documents)"
                )
            if not t.serving:
                deploy.append(
                    f"GEDRAG_EMBEDDING__MODEL={indexer.models.embedder.model_id} "
                    "(queries must use the new model)"
                )
            if deploy:
                out["next"] = "deploy " + "; ".join(deploy) + ", with a rolling restart"
        _show(out)


@app.command("verify")
def verify_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Per document, counts and checksums of chunks, vectors and mentions in every store;
    exits 1 when anything drifted."""
    from infra.migrate import verify

    rt = _runtime()
    with _logged(rt, "verify", {}, False) as out:
        with _bar("verify") as report:
            result = verify.verify(rt, progress=report)
        out.update(result.to_dict())
        _print_report(result, as_json)
        if not result.ok:
            raise typer.Exit(1)


def _print_report(result: verify.VerifyReport, as_json: bool) -> None:
    if as_json:
        _show(result.to_dict())
        return
    if result.ok:
        console.print(
            f"[green]no drift[/green] in {result.documents} documents"
            + (
                f" ({len(result.skipped_busy)} skipped: jobs running)"
                if result.skipped_busy
                else ""
            )
        )
        return
    table = Table(
        "document",
        "tenant",
        "stores",
        "problems",
        title=f"drift in {len(result.drift)} of {result.documents} documents",
    )
    for d in result.drift:
        table.add_row(
            d.document_id, d.tenant_id, ", ".join(sorted(d.stores)), "\n".join(d.problems)
        )
    console.print(table)


@app.command()
def repair(dry_run: DryRun = False) -> None:
    """Re-index exactly the documents `verify` finds drifted, in the stores that drifted."""
    from infra.migrate import verify

    rt = _runtime()
    with _logged(rt, "repair", {}, dry_run) as out:
        with _bar("verify") as report:
            found = verify.verify(rt, progress=report)
        with _bar("repair") as report:
            result = verify.repair(rt, found, dry_run=dry_run, progress=report)
        out.update(result.to_dict())
        _show(out)


@app.command("to-production")
def to_production(
    catalog_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL of the new catalog.")
    ] = None,
    qdrant_url: Annotated[str | None, typer.Option(help="URL of the Qdrant server.")] = None,
    qdrant_api_key: Annotated[str | None, typer.Option(help="Qdrant server API key.")] = None,
    qdrant_path: Annotated[str | None, typer.Option(help="Or another local Qdrant folder.")] = None,
    graph_backend: Annotated[
        str | None, typer.Option("--graph", help="relational or neo4j (GEDRAG_NEO4J__*).")
    ] = None,
    graph_url: Annotated[
        str | None, typer.Option(help="Relational graph: its database (default: the new catalog).")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Copy the embedded stores (local Qdrant, SQLite catalog, graph) to production servers.
    Idempotent: rerun it until it reports nothing new, then switch the settings."""
    from infra.migrate import production

    rt = _runtime()
    args = {
        "catalog_url": catalog_url and production.mask(catalog_url),
        "qdrant_url": qdrant_url,
        "qdrant_path": qdrant_path,
        "graph": graph_backend,
    }
    with _logged(rt, "to-production", args, dry_run) as out:
        target = production.Target(
            catalog_url=catalog_url,
            qdrant_url=qdrant_url,
            qdrant_api_key=qdrant_api_key,
            qdrant_path=qdrant_path,
            graph_backend=graph_backend,
            graph_url=graph_url,
        )
        with _bar("copy") as report:
            out.update(production.copy_all(rt, target, dry_run=dry_run, progress=report))
        _show(out)


@app.command()
def runs(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """The log of migration runs."""
    from stores.catalog import migration_state

    rt = _runtime()
    table = Table("started", "command", "state", "dry run", "summary / error")
    for r in migration_state.list_runs(rt.catalog, limit):
        detail = r["error"] or json.dumps(r["summary"], default=str)
        table.add_row(
            r["started_at"].isoformat(timespec="seconds"),
            r["command"],
            r["state"],
            "yes" if r["dry_run"] else "",
            detail[:120],
        )
    rt.close()
    console.print(table)


# -- Upgrade of the embedded vector folder: qdrant-client local mode → Qdrant Edge -------------
# (infra/migrate/to_edge.py; `gedrag up` runs the same conversion at start.)


@app.command("vectors-to-edge")
def vectors_to_edge(
    finalize: Annotated[
        bool,
        typer.Option(
            "--finalize", help="Delete the previous release's folder kept aside (after a check)."
        ),
    ] = False,
    restart: Restart = False,
    dry_run: DryRun = False,
) -> None:
    """Convert the local Qdrant folder of an earlier gedrag (qdrant-client local mode) to Qdrant
    Edge: the old folder is renamed aside and kept, every collection copied with checkpoints
    (rerun to resume), point counts compared, aliases copied. `gedrag up` does it at start."""
    from infra.migrate import to_edge

    rt = _runtime()
    args = {"finalize": finalize, "restart": restart}
    with _logged(rt, "vectors-to-edge", args, dry_run) as out:
        if finalize:
            out.update(to_edge.finalize(rt, dry_run=dry_run))
        else:
            with _bar("convert") as report:
                out.update(to_edge.convert(rt, restart=restart, dry_run=dry_run, progress=report))
        _show(out)
