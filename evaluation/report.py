"""Reports of a run: JSON, Markdown, and one self-contained HTML page whose plots are inline
SVG (no script, no external file): metric bars per release, per-question scatter."""

from __future__ import annotations

import html
import json
from typing import Any

from stores.catalog.evaluation import StoredRun

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")
SCATTER_METRICS = ("ndcg@10", "semantic_similarity", "rouge_score", "recall@k")


def run_dict(run: StoredRun, *, results: bool = True) -> dict[str, Any]:
    """A run as JSON data: the JSON report's, and the API's (which adds the report's URL)."""
    out: dict[str, Any] = {
        "id": run.id,
        "release_id": run.release_id,
        "suite": run.suite,
        "suite_id": run.suite_id,
        "code_version": run.code_version,
        "state": run.state,
        "scores": run.scores,
        "info": run.info,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if results:
        out["results"] = run.results
    return out


def to_json(run: StoredRun, release_name: str) -> str:
    body = {**run_dict(run), "release_name": release_name}
    return json.dumps(body, ensure_ascii=False, indent=2)


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(run: StoredRun, release_name: str) -> str:
    lines = [
        f"# Evaluation run {run.id}",
        "",
        f"- release: **{release_name}** (`{run.release_id}`)",
        f"- suite: **{run.suite}** (`{run.suite_id}`), {run.info.get('questions', 0)} questions",
        f"- code version: `{run.code_version}`; finished {run.finished_at}",
        "",
        "| metric | score |",
        "| --- | --- |",
        *[f"| {k} | {v:.4f} |" for k, v in run.scores.items()],
        "",
        "| stage | p50 ms | p95 ms |",
        "| --- | --- | --- |",
        *[f"| {k} | {v['p50']} | {v['p95']} |" for k, v in run.info.get("latency_ms", {}).items()],
        "",
        "| question | grounded | " + " | ".join(SCATTER_METRICS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in SCATTER_METRICS) + " |",
    ]
    for r in run.results:
        q = r["question"].replace("|", "\\|")[:80]
        vals = " | ".join(_fmt(r["scores"].get(m)) for m in SCATTER_METRICS)
        lines.append(f"| {r['id']}: {q} | {r['grounded']} | {vals} |")
    return "\n".join(lines) + "\n"


def bars_svg(series: list[tuple[str, dict[str, float]]], metrics: list[str]) -> str:
    """Grouped bars: one group per metric, one bar per release (scores in 0..1)."""
    width, height, left, bottom = 60 + 90 * max(1, len(metrics)), 300, 40, 90
    plot_h = height - bottom - 20
    group = (width - left - 20) / max(1, len(metrics))
    bar = min(24.0, (group - 12) / max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="metric bars per release">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = 20 + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{tick}</text>'
        )
    for gi, metric in enumerate(metrics):
        x0 = left + gi * group + 6
        for si, (name, scores) in enumerate(series):
            v = max(0.0, min(1.0, float(scores.get(metric, 0.0))))
            h = plot_h * v
            x = x0 + si * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{20 + plot_h - h:.1f}" width="{bar - 2:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{html.escape(name)} {html.escape(metric)}: {v:.3f}</title></rect>"
            )
        cx = x0 + len(series) * bar / 2
        parts.append(
            f'<text transform="translate({cx:.1f},{height - bottom + 12}) rotate(35)" '
            f'font-size="10">{html.escape(metric)}</text>'
        )
    for si, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{left + si * 150}" y="{height - 14}" width="10" height="10" '
            f'fill="{PALETTE[si % len(PALETTE)]}"/><text x="{left + si * 150 + 14}" '
            f'y="{height - 5}" font-size="11">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(
    points: list[tuple[str, float, float]], x_label: str, y_label: str, *, diagonal: bool = True
) -> str:
    """One dot per question; the diagonal marks 'no change' when both axes are one metric."""
    size, pad = 260, 36
    inner = size - 2 * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" '
        f'aria-label="per-question scatter">',
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
        (
            f'<line x1="{pad}" y1="{pad + inner}" x2="{pad + inner}" y2="{pad}" stroke="#ccc" '
            f'stroke-dasharray="4"/>'
            if diagonal
            else ""
        ),
        f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text transform="translate(12,{size / 2}) rotate(-90)" font-size="11" '
        f'text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    for qid, x, y in points:
        cx = pad + inner * max(0.0, min(1.0, x))
        cy = pad + inner * (1 - max(0.0, min(1.0, y)))
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="#4c78a8" fill-opacity="0.6">'
            f"<title>{html.escape(qid)}: {x:.3f} → {y:.3f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(
    run: StoredRun,
    release_name: str,
    *,
    others: list[tuple[str, StoredRun]] = (),  # type: ignore[assignment]
    baseline: tuple[str, StoredRun] | None = None,
) -> str:
    """The run's page. ``others``: (release name, run) on the same suite, drawn as bars next to
    this one; ``baseline``: a run (production) whose per-question scores form the x axis."""
    series = [(release_name, run.scores), *[(n, r.scores) for n, r in others]]
    bounded = [m for m, v in run.scores.items() if 0.0 <= v <= 1.0]
    scatters = []
    if baseline is not None:
        base_name, base_run = baseline
        base = {r["id"]: r["scores"] for r in base_run.results}
        for m in SCATTER_METRICS:
            pts = [
                (r["id"], float(base[r["id"]][m]), float(r["scores"][m]))
                for r in run.results
                if r["id"] in base
                and r["scores"].get(m) is not None
                and base[r["id"]].get(m) is not None
            ]
            if pts:
                title = f"{m}: {base_name} (x) vs {release_name} (y)"
                scatters.append((title, scatter_svg(pts, base_name, release_name)))
    else:
        pairs = [("ndcg@10", "semantic_similarity"), ("recall@k", "rouge_score")]
        for mx, my in pairs:
            pts = [
                (r["id"], float(r["scores"][mx]), float(r["scores"][my]))
                for r in run.results
                if r["scores"].get(mx) is not None and r["scores"].get(my) is not None
            ]
            if pts:
                title = f"per question: {mx} (x) vs {my} (y)"
                scatters.append((title, scatter_svg(pts, mx, my, diagonal=False)))
    e = html.escape
    score_rows = "".join(
        f"<tr><td>{e(k)}</td>" + "".join(f"<td>{_fmt(s.get(k))}</td>" for _, s in series) + "</tr>"
        for k in run.scores
    )
    latency = "".join(
        f"<tr><td>{e(k)}</td><td>{v['p50']}</td><td>{v['p95']}</td></tr>"
        for k, v in run.info.get("latency_ms", {}).items()
    )
    questions = "".join(
        f"<tr><td>{e(r['id'])}</td><td>{e(r['question'])}</td><td>{e(r['answer'][:300])}</td>"
        f"<td>{'yes' if r['grounded'] else 'no'}</td>"
        + "".join(f"<td>{_fmt(r['scores'].get(m))}</td>" for m in SCATTER_METRICS)
        + "</tr>"
        for r in run.results
    )
    head_names = "".join(f"<th>{e(n)}</th>" for n, _ in series)
    scatter_html = "".join(
        f"<figure><figcaption>{e(t)}</figcaption>{s}</figure>" for t, s in scatters
    )
    finished = e(str(run.finished_at))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gedrag evaluation {e(run.id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto}}
svg{{max-width:100%;height:auto}}td,th{{border:1px solid #ddd;padding:3px 8px;
font-size:13px;text-align:left}}figure{{display:inline-block;margin:0 1em 1em 0}}
figcaption{{font-size:12px;color:#555}}</style></head><body>
<h1>Evaluation of release {e(release_name)}</h1>
<p>Release <code>{e(run.release_id)}</code> on suite <b>{e(run.suite)}</b>
(<code>{e(run.suite_id)}</code>), {run.info.get("questions", 0)} questions; code
<code>{e(run.code_version)}</code>; run <code>{e(run.id)}</code>, finished {finished}.</p>
<h2>Metrics per release</h2>
<figure>{bars_svg(series, bounded)}</figure>
<table><tr><th>metric</th>{head_names}</tr>{score_rows}</table>
<h2>Per question</h2>{scatter_html or "<p>No per-question scores to plot.</p>"}
<h2>Latency (ms)</h2><table><tr><th>stage</th><th>p50</th><th>p95</th></tr>{latency}</table>
<h2>Questions</h2><table><tr><th>id</th><th>question</th><th>answer</th><th>grounded</th>
{"".join(f"<th>{e(m)}</th>" for m in SCATTER_METRICS)}</tr>{questions}</table>
</body></html>
"""
