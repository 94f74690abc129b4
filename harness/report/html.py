"""A `harness.report/1` dict as one self-contained HTML page with plotly charts (its JS inlined: opens offline)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from harness.report.headline import headline
from harness.report.render import _generated, _sections

SIDE_COLOURS = {"legacy": "#1f77b4", "candidate": "#d62728", "signal": "#444444"}
NO_SAMPLES = "samples not available"
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.2em .6em}
td:not(:first-child){text-align:right}.headline{font-weight:bold;font-size:1.1em}.note{color:#666}
details{margin:.5em 0}"""


@dataclass(frozen=True)
class Curve:
    signal_id: str
    values: Sequence[float] | None  # None: the input no longer holds the signal and no recording has it


@dataclass(frozen=True)
class CurvePanel:
    """One disagreeing signal beside the representative (a member signal) of each side's cluster."""

    signal: Curve
    device: str | None
    legacy_label: str
    candidate_label: str
    mapped_label: str | None
    legacy_representative: Curve | None
    candidate_representative: Curve | None


def render_html(report: Mapping[str, Any], panels: Sequence[CurvePanel] | None = None) -> str:
    """The page: headline, every plot, then the report's tables; `panels` None: samples not available."""
    agreement = report["agreement"]
    figures = [
        ("Agreement over time (recent-pairs window)", _series_figure(agreement.get("series") or [])),
        ("Latency CDF (end to end, sampled)", _latency_figure(report["latency_ms"])),
        ("Contingency of the largest clusters (optimal mapping on the diagonal)",
         _contingency_figure(agreement.get("contingency") or {})),
        ("Split/merge map (legacy → candidate)", _cluster_map_figure(agreement.get("cluster_map") or {})),
        ("Error divergence (matched signals)", _errors_figure(report["errors"])),
    ]
    generated = f"Shadow comparison report ({report['schema']}, generated {_generated(report)})"
    body = [f"<p class='headline'>{_e(headline(report))}</p>", f"<p class='note'>{_e(generated)}</p>"]
    for index, (title, figure) in enumerate(figures):
        body.append(f"<h2>{_e(title)}</h2>")
        if title.startswith("Contingency"):
            body.append(_mapping_table(agreement.get("contingency") or {}))
        body.append(_plot(figure, f"plot-{index}"))
    body.append("<h2>Disagreeing signals beside each side's cluster</h2>")
    if panels is not None and not panels:
        body.append("<p class='note'>no disagreeing signal: every pair agrees under the label mapping</p>")
    elif panels:
        body.append("<p class='note'>Each row: the signal, a member of legacy's cluster, a member of the "
                    "candidate's cluster.</p>")
        body.append(_plot(_panels_figure(panels), "plot-samples"))
    else:
        body.append(f"<p class='note'>{NO_SAMPLES}</p>")
    body.append("<h2>Tables</h2>")
    body += [_table(title, header, rows) for title, header, rows in _sections(report)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>harness report</title>"
            f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head>"
            f"<body><h1>Shadow comparison: legacy vs candidate</h1>{''.join(body)}</body></html>")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _plot(figure: go.Figure, div_id: str) -> str:
    return str(figure.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                              config={"displaylogo": False, "responsive": True}))


def _layout(figure: go.Figure, **extra: Any) -> go.Figure:
    figure.update_layout(template="plotly_white", height=extra.pop("height", 380),
                         margin={"l": 60, "r": 20, "t": 30, "b": 50}, **extra)
    return figure


def _empty(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _layout(figure, height=160)


def _series_figure(series: Sequence[Mapping[str, Any]]) -> go.Figure:
    if not series:
        return _empty("no agreement series yet (it starts once a quarter window of pairs is compared)")
    dated = all(point.get("at_ms") is not None for point in series)
    x = ([datetime.fromtimestamp(float(point["at_ms"]) / 1000.0, UTC) for point in series] if dated
         else [point["pairs"] for point in series])
    pairs = [f"{point['pairs']:,} pairs compared" for point in series]
    figure = go.Figure()
    for key, name in (("ari", "ARI"), ("nmi", "NMI"), ("matched_accuracy", "matched accuracy")):
        figure.add_trace(go.Scatter(x=x, y=[point.get(key) for point in series], name=name, mode="lines+markers",
                                    text=pairs, hovertemplate="%{y:.4f}<br>%{text}<extra>" + name + "</extra>"))
    return _layout(figure, yaxis={"title": "score", "range": [-0.05, 1.05]},
                   xaxis={"title": "time (UTC)" if dated else "pairs compared"})


def _latency_figure(latency: Mapping[str, Any]) -> go.Figure:
    samples = latency.get("samples") or {}
    figure = go.Figure()
    for side in ("legacy", "candidate"):
        values = sorted(float(value) for value in samples.get(side) or [])
        if not values:
            continue
        share = [(rank + 1) / len(values) for rank in range(len(values))]
        figure.add_trace(go.Scatter(x=values, y=share, name=side, mode="lines", line={"color": SIDE_COLOURS[side]},
                                    hovertemplate="%{x:.3f} ms: %{y:.1%}<extra>" + side + "</extra>"))
    if not figure.data:
        return _empty("no latency measured yet")
    return _layout(figure, xaxis={"title": "end-to-end latency, ms (log)", "type": "log"},
                   yaxis={"title": "share of results", "tickformat": ".0%"})


def _contingency_figure(contingency: Mapping[str, Any]) -> go.Figure:
    counts = contingency.get("counts") or []
    if not counts:
        return _empty("no pairs both sides clustered yet")
    # categories named with a side prefix, so a label both sides use ("normal") stays two categories
    rows = [f"L {name}" for name in contingency["legacy"]]
    cols = [f"C {name}" for name in contingency["candidate"]]
    # colour on a log scale, so the default cluster's large cell does not wash out every other one
    shade = [[math.log10(count) + 1 if count else 0.0 for count in row] for row in counts]
    text = [[f"{count:,}" if count else "" for count in row] for row in counts]
    figure = go.Figure(go.Heatmap(z=shade, x=cols, y=rows, text=text, colorscale="Blues", showscale=False,
                                  texttemplate="%{text}",
                                  hovertemplate="legacy %{y}<br>candidate %{x}<br>%{text} pairs<extra></extra>"))
    shown, total = contingency.get("pairs_shown", 0), contingency.get("pairs", 0)
    return _layout(figure, height=max(360, 28 * len(rows) + 140),
                   title={"text": f"{shown:,} of {total:,} pairs shown", "font": {"size": 12}},
                   yaxis={"autorange": "reversed", "title": "legacy cluster", "type": "category"},
                   xaxis={"title": "candidate cluster", "type": "category"})


def _mapping_table(contingency: Mapping[str, Any]) -> str:
    mapping = contingency.get("mapping") or []
    if not mapping:
        return ""
    rows = [[item["legacy"], item["candidate"], f"{item['pairs']:,}"] for item in mapping]
    title = f"Label mapping legacy → candidate ({len(mapping)} of {contingency.get('mapping_total', 0):,})"
    return f"<details><summary>{_e(title)}</summary>{_table('', ['legacy', 'candidate', 'pairs'], rows)}</details>"


def _cluster_map_figure(cluster_map: Mapping[str, Any]) -> go.Figure:
    links: dict[tuple[str, str], int] = {}
    for item in cluster_map.get("splits", []):
        for part in item["into"]:
            links[(item["legacy"], part["candidate"])] = int(part["pairs"])
    for item in cluster_map.get("merges", []):
        for part in item["from"]:
            links[(part["legacy"], item["candidate"])] = int(part["pairs"])
    if not links:
        return _empty("no split or merge: each legacy cluster maps onto one candidate cluster")
    nodes = sorted({f"L {legacy}" for legacy, _ in links}) + sorted({f"C {candidate}" for _, candidate in links})
    at = {name: index for index, name in enumerate(nodes)}
    colours = [SIDE_COLOURS["legacy"] if name.startswith("L ") else SIDE_COLOURS["candidate"] for name in nodes]
    figure = go.Figure(go.Sankey(
        node={"label": nodes, "color": colours, "pad": 12},
        link={"source": [at[f"L {legacy}"] for legacy, _ in links],
              "target": [at[f"C {candidate}"] for _, candidate in links], "value": list(links.values())}))
    title = (f"{cluster_map.get('splits_total', 0)} splits, {cluster_map.get('merges_total', 0)} merges "
             f"(parts of at least {cluster_map.get('min_share', 0.1):.0%})")
    return _layout(figure, height=max(360, 22 * len(nodes)), title={"text": title, "font": {"size": 12}})


def _errors_figure(errors: Mapping[str, Any]) -> go.Figure:
    groups = ["errors", "unclustered"] + [f"type {name}" for name in errors.get("by_type", {})]
    by_type = list(errors.get("by_type", {}).values())
    figure = go.Figure()
    for key, name in (("only_legacy", "only legacy"), ("only_candidate", "only candidate"), ("both", "both")):
        unclustered = errors.get(f"unclustered_{key}" if key != "both" else "both_unclustered", 0)
        values = [errors.get(key, 0), unclustered, *(counts.get(key, 0) for counts in by_type)]
        figure.add_trace(go.Bar(x=groups, y=values, name=name))
    if not any(value for trace in figure.data for value in trace.y):
        return _empty("no error divergence: both sides handled every matched signal alike")
    return _layout(figure, barmode="group", yaxis={"title": "matched signals"})


def _panels_figure(panels: Sequence[CurvePanel]) -> go.Figure:
    titles = []
    for panel in panels:
        mapped = panel.mapped_label if panel.mapped_label is not None else "no legacy cluster"
        titles += [f"{panel.signal.signal_id} ({panel.device or 'no device'}): L {panel.legacy_label}, "
                   f"C {panel.candidate_label} → {mapped}",
                   _rep_title("legacy", panel.legacy_label, panel.legacy_representative),
                   _rep_title("candidate", panel.candidate_label, panel.candidate_representative)]
    figure = make_subplots(rows=len(panels), cols=3, subplot_titles=[_short(t) for t in titles],
                           horizontal_spacing=0.05, vertical_spacing=min(0.08, 0.5 / len(panels)))
    for row, panel in enumerate(panels, start=1):
        curves = [(panel.signal, "signal"), (panel.legacy_representative, "legacy"),
                  (panel.candidate_representative, "candidate")]
        for col, (curve, role) in enumerate(curves, start=1):
            values = None if curve is None else curve.values
            if values is None:
                figure.add_annotation(text=NO_SAMPLES, showarrow=False, row=row, col=col, x=0.5, y=0.5,
                                      xref="x domain", yref="y domain")
                continue
            figure.add_trace(go.Scatter(y=list(values), mode="lines", showlegend=False,
                                        line={"color": SIDE_COLOURS[role], "width": 1},
                                        name=f"{role} {curve.signal_id if curve else ''}"), row=row, col=col)
    for annotation in figure.layout.annotations:
        annotation.font = {"size": 10}
    return _layout(figure, height=190 * len(panels) + 60)


def _rep_title(side: str, label: str, curve: Curve | None) -> str:
    return f"{side} cluster {label}: " + (curve.signal_id if curve is not None else "no member found")


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    caption = f"<h3>{_e(title)}</h3>" if title else ""
    return f"{caption}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
