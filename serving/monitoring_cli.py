"""``gedrag trace ...``, ``gedrag monitor report`` and ``gedrag eval suite from-feedback``:
answer traces, drift reports and suites from feedback, through the running API
(``GEDRAG_CLIENT__URL``, ``GEDRAG_CLIENT__API_KEY``) like ``gedrag ingest``: they work beside a
running ``gedrag up``, whose local vector folder no second process may open."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from serving.sources_cli import _call as call
from serving.sources_cli import _client as client
from serving.sources_cli import _fail as fail

traces = typer.Typer(help="Answer traces: list, show, replay, export.", no_args_is_help=True)
monitor = typer.Typer(help="Drift reports of production.", no_args_is_help=True)
suite = typer.Typer(help="Evaluation suites made from production.", no_args_is_help=True)

console = Console()

Since = Annotated[str | None, typer.Option(help="ISO time: from then on.")]


@traces.command("list")
def list_traces(
    release: Annotated[str | None, typer.Option(help="Release id.")] = None,
    since: Since = None,
    refused: Annotated[bool | None, typer.Option(help="Refused answers only (or not).")] = None,
    feedback: Annotated[str | None, typer.Option(help="up, down, rated or unrated.")] = None,
    limit: int = 20,
) -> None:
    """The newest traces of your tenant."""
    params = {
        k: v
        for k, v in {
            "release": release,
            "since": since,
            "refused": refused,
            "feedback": feedback,
            "limit": limit,
        }.items()
        if v is not None
    }
    page = call("GET", "/v1/traces", params=params)
    table = Table("id", "when", "arm", "question", "refused", "ms", "rating")
    for t in page["items"]:
        table.add_row(
            t["id"],
            t["created_at"][:19],
            t["arm"],
            t["question"][:60],
            "yes" if t["refused"] else "",
            f"{t['latency_ms']:.0f}",
            t["rating"] or "",
        )
    console.print(table)


@traces.command("show")
def show_trace(trace_id: str) -> None:
    """A whole trace as JSON."""
    console.print_json(json.dumps(call("GET", f"/v1/traces/{trace_id}")))


@traces.command("replay")
def replay_trace(
    trace_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask a trace's question again under the same release and show what differs."""
    out = call("POST", f"/v1/traces/{trace_id}/replay")
    if as_json:
        console.print_json(json.dumps(out))
        return
    console.print(
        f"trace {out['trace_id']} (release {out['release_id'] or 'none: serving settings'}): "
        + (
            "[green]the same passages and answer[/green]"
            if out["same"]
            else "[yellow]differs[/yellow]"
        )
    )
    for change in out["inputs"]:
        console.print(f"  input {change['input']}: {change['then']} → {change['now']}")
    p = out["passages"]
    console.print(
        f"passages: {p['then']} then, {p['now']} now; {len(p['added'])} added, "
        f"{len(p['removed'])} removed, {len(p['moved'])} moved, {len(p['rescored'])} rescored"
    )
    answer = out.get("answer")
    if answer is not None and not answer["same"]:
        console.print("answer:")
        for line in answer["diff"]:
            console.print(f"  {line}", soft_wrap=True, markup=False)
    lat = out["latency_ms"]
    console.print(f"latency: {lat['then']:.0f} ms then, {lat['now']:.0f} ms now")


@traces.command("export")
def export_traces(
    out: Annotated[Path, typer.Option(help="The JSON-lines file to write.")],
    since: Since = None,
    feedback: Annotated[str | None, typer.Option(help="up, down, rated or unrated.")] = None,
) -> None:
    """Every trace (whole) as JSON lines."""
    n = _export(out, {"since": since, "feedback": feedback})
    console.print(f"{n} traces written to {out}")


def _export(out: Path, params: dict[str, Any]) -> int:
    import httpx

    n = 0
    query = {k: v for k, v in params.items() if v is not None}
    try:
        with (
            client() as c,
            c.stream("GET", "/v1/traces/export", params=query) as resp,
            out.open("w", encoding="utf-8") as fh,
        ):
            if resp.status_code >= 400:
                resp.read()
                raise fail(f"{resp.status_code}: {resp.text[:300]}")
            for line in resp.iter_lines():
                if line.strip():
                    fh.write(line + "\n")
                    n += 1
    except httpx.TransportError as exc:
        raise fail(f"the API does not answer: {exc}") from exc
    return n


@monitor.command("report")
def report(
    since: Annotated[str | None, typer.Option(help="Start of the last window (ISO).")] = None,
    reference_since: Annotated[
        str | None, typer.Option(help="Start of the reference window (ISO).")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the report's page here.")] = None,
) -> None:
    """A drift report now: the last window against the reference window and the production
    release's suite; crossed thresholds are alerts (exit 2 when any)."""
    body = {k: v for k, v in {"since": since, "reference_since": reference_since}.items() if v}
    data = call("POST", "/v1/monitoring/report", json=body)
    table = Table("check", "against", "value", "p", "threshold", "n", "", "detail")
    for c in data["checks"]:
        table.add_row(
            c["name"],
            c["against"],
            "—" if c["value"] is None else f"{c['value']:.4g}",
            "—" if c["p_value"] is None else f"{c['p_value']:.4f}",
            f"{c['threshold']:g}",
            f"{c['sizes'][0]}/{c['sizes'][1]}",
            "[red]✗[/red]" if c["crossed"] else "",
            c["detail"],
        )
    console.print(table)
    for note in data["notes"]:
        console.print(f"note: {note}", style="dim")
    if html is not None:
        with client() as c:
            page = c.get("/v1/monitoring/report.html")
        html.write_text(page.text, encoding="utf-8")
        console.print(f"wrote {html}")
    if data["alerts"]:
        console.print(f"[red]alerts:[/red] {', '.join(data['alerts'])}")
        raise typer.Exit(2)


@suite.command("from-feedback")
def from_feedback(
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of the suite (default <data dir>/suites/<name>-<time>)."),
    ] = None,
    name: Annotated[str, typer.Option(help="The suite's name.")] = "feedback",
    since: Since = None,
) -> None:
    """Turn rated answers into a versioned evaluation suite: questions, the accepted or
    corrected answers, the supporting passages as reference contexts."""
    from core.settings import get_settings
    from monitoring.feedback import suite_rows, write_suite

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = out or get_settings().data_dir / "suites" / f"{name}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    exported = folder / "traces.jsonl"
    _export(exported, {"since": since, "feedback": "rated"})
    with exported.open(encoding="utf-8") as fh:
        rows = suite_rows(json.loads(line) for line in fh if line.strip())
    exported.unlink()
    if not rows:
        raise fail("no answer is rated up or corrected yet: nothing to make a suite from")
    descriptor = write_suite(rows, folder, name)
    corrected = sum(r["corrected"] for r in rows)
    console.print(
        f"suite {name}: {len(rows)} questions ({corrected} corrected) in {folder}\n"
        f"  gedrag eval run --release default --suite {descriptor}",
        soft_wrap=True,
    )
