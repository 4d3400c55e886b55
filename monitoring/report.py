"""A drift report as one self-contained HTML page (inline SVG, no script), drawn from the
report's JSON (``DriftReport.to_dict``): what is stored is what is shown."""

from __future__ import annotations

import html
from typing import Any

from evaluation.report import PALETTE, bars_svg

SIDES = {"reference": "reference window", "suite": "production suite"}


def scatter2_svg(reference: list[list[float]], current: list[list[float]], base: str) -> str:
    """Both windows' questions on the first two principal axes of their embeddings."""
    size, pad = 300, 20
    inner = size - 2 * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 20}" '
        'role="img" aria-label="questions on two principal axes">',
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
    ]
    for colour, points, label in ((PALETTE[0], reference, base), (PALETTE[1], current, "last")):
        for x, y in points:
            parts.append(
                f'<circle cx="{pad + inner * x:.1f}" cy="{pad + inner * (1 - y):.1f}" r="3" '
                f'fill="{colour}" fill-opacity="0.55"><title>{html.escape(label)}</title></circle>'
            )
    parts.append(
        f'<rect x="{pad}" y="{size + 4}" width="10" height="10" fill="{PALETTE[0]}"/>'
        f'<text x="{pad + 14}" y="{size + 13}" font-size="11">{html.escape(base)}</text>'
        f'<rect x="{pad + 170}" y="{size + 4}" width="10" height="10" fill="{PALETTE[1]}"/>'
        f'<text x="{pad + 184}" y="{size + 13}" font-size="11">last window</text></svg>'
    )
    return "".join(parts)


def _plot(check: dict[str, Any]) -> str:
    plot = check.get("plot") or {}
    base = SIDES[check["against"]]
    if "points" in plot:
        return scatter2_svg(plot["points"]["reference"], plot["points"]["current"], base)
    if check["name"] == "latency_p95" or not plot:
        return ""
    keys = list(dict.fromkeys([*plot["reference"], *plot["current"]]))[:12]
    return bars_svg([(base, plot["reference"]), ("last window", plot["current"])], keys)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def to_html(data: dict[str, Any]) -> str:
    e = html.escape
    checks = data["checks"]
    rows = "".join(
        f'<tr class="{"crossed" if c["crossed"] else ""}"><td>{e(c["name"])}</td>'
        f"<td>{e(SIDES[c['against']])}</td><td>{e(c['statistic'])}</td>"
        f"<td>{_fmt(c['value'])}</td><td>{_fmt(c['p_value'])}</td>"
        f"<td>{_fmt(c['threshold'])}</td><td>{'yes' if c['crossed'] else 'no'}</td>"
        f"<td>{c['sizes'][0]} / {c['sizes'][1]}</td><td>{e(c['detail'])}</td></tr>"
        for c in checks
    )
    figures = "".join(
        f"<figure><figcaption>{e(c['name'])} — {e(SIDES[c['against']])}: {e(c['detail'])}"
        f"</figcaption>{svg}</figure>"
        for c in checks
        if (svg := _plot(c))
    )
    alerts = data.get("alerts") or []
    alert_html = (
        "<p class='alert'>Alerts: " + e(", ".join(alerts)) + "</p>"
        if alerts
        else "<p>No threshold crossed.</p>"
    )
    suite = data.get("suite")
    suite_html = (
        f"<p>Suite <b>{e(suite['name'])}</b> (<code>{e(suite['suite_id'])}</code>, "
        f"{suite['questions']} questions) of the production release "
        f"<code>{e(suite['release_id'])}</code>.</p>"
        if suite
        else ""
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in data.get("notes", []))
    w, r = data["window"], data["reference"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gedrag drift report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto}}
td,th{{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}}
tr.crossed td{{background:#fde2e1}}.alert{{color:#b00020;font-weight:bold}}
svg{{max-width:100%;height:auto}}figure{{display:inline-block;margin:0 1em 1em 0}}
figcaption{{font-size:12px;color:#555;max-width:420px}}</style></head><body>
<h1>Drift report</h1>
<p>Last window {e(w["since"])} – {e(w["until"])}; reference window {e(r["since"])} –
{e(r["until"])}; made {e(data["created_at"])}.</p>
{suite_html}{alert_html}
<table><tr><th>check</th><th>against</th><th>statistic</th><th>value</th><th>p-value</th>
<th>threshold</th><th>crossed</th><th>n (base / last)</th><th>detail</th></tr>{rows}</table>
<h2>Plots</h2>{figures or "<p>Nothing to plot yet.</p>"}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
