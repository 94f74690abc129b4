"""Human renderings of a `harness.report/1` dict: rich tables for a terminal, markdown for a CI comment.

Both lead with the headline, show times as UTC dates, and leave out the sections that do not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.report.headline import headline

MISSING = "—"  # shown where a metric is undefined (null in the report)
DEVICE_ROWS = 10  # devices shown; the report itself holds more
_AGREEMENT_HEADER = ["scope", "pairs", "ARI", "NMI", "matched accuracy"]
_SIDES = ("legacy", "candidate")
_LAG_KEYS = ("lag_entries", "lag_s", "stalled")  # only live reports carry them

Section = tuple[str, list[str], list[list[str]]]


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, Mapping):  # e.g. results per worker: "legacy 3,000, candidate 1,200"
        return ", ".join(f"{key} {fmt(item)}" for key, item in value.items()) or MISSING
    return str(value)


def fmt_time(ms: float | None, reference_ms: float | None = None) -> str:
    """A UTC date to the second, and how long before or after `reference_ms` (the report's time) it is."""
    if ms is None:
        return MISSING
    stamp = datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if reference_ms is None:
        return stamp
    delta_s = (ms - reference_ms) / 1000.0
    if abs(delta_s) < 1:
        return f"{stamp} (at the report's time)"
    return f"{stamp} ({_duration(abs(delta_s))} {'after' if delta_s > 0 else 'before'} the report)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} days"


def _iso_ms(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        return None


def _entry_ms(entry: str | None) -> float | None:
    """The time of a Redis stream entry id ('<ms>-<seq>')."""
    head = (entry or "").partition("-")[0]
    return float(head) if head.isdigit() else None


def _sections(report: Mapping[str, Any]) -> list[Section]:
    """Every table of the report as (title, header, rows): one source for both renderings."""
    counts, agreement = report["counts"], report["agreement"]
    report_ms = _iso_ms(report.get("generated_at"))
    sections: list[Section] = [
        ("Counts", ["count", "value"], [[key.replace("_", " "), fmt(value)] for key, value in counts.items()]),
        ("Agreement (legacy vs candidate)", _AGREEMENT_HEADER, _agreement_rows(agreement)),
    ]
    devices = _device_rows(agreement)
    if devices:
        title = f"Agreement per device (lowest ARI first; {len(devices)} of {agreement.get('devices', 0):,})"
        sections.append((title, ["device", *_AGREEMENT_HEADER[1:]], devices))
    sections += _cluster_map_section(agreement.get("cluster_map") or {})
    sections += _progress_section(report.get("progress"), report_ms)
    sections.append(_latency_section(report["latency_ms"]))
    sections += _error_sections(report["errors"])
    sections += _noise_floor_section(report.get("noise_floor"))
    sections += _production_section(report.get("cutover"), report_ms)
    return sections


def _cluster_map_section(cluster_map: Mapping[str, Any]) -> list[Section]:
    rows = [["split", fmt(item["legacy"]), fmt(item["pairs"]),
             ", ".join(f"{part['candidate']} ({part['pairs']:,})" for part in item["into"])]
            for item in cluster_map.get("splits", [])]
    rows += [["merge", fmt(item["candidate"]), fmt(item["pairs"]),
              ", ".join(f"{part['legacy']} ({part['pairs']:,})" for part in item["from"])]
             for item in cluster_map.get("merges", [])]
    if not rows:
        return []
    title = f"Cluster map: {cluster_map.get('splits_total', 0)} splits, {cluster_map.get('merges_total', 0)} merges"
    return [(title, ["kind", "cluster", "pairs", "parts"], rows)]


def _progress_section(progress: Mapping[str, Any] | None, report_ms: float | None) -> list[Section]:
    if not progress or not progress.get("sides"):
        return []
    sides = progress["sides"]
    live = any(key in figures for figures in sides.values() for key in _LAG_KEYS)
    header = ["side", "frontier (input time)", "awaiting"] + (["lag, entries", "lag", "stalled"] if live else [])
    rows = []
    for side, figures in sides.items():
        row = [side, fmt_time(_entry_ms(figures.get("frontier")), report_ms), fmt(figures.get("awaiting"))]
        if live:
            lag_s = figures.get("lag_s")
            stalled = (f"yes, for {_duration(figures.get('stalled_for_s') or 0.0)}" if figures.get("stalled")
                       else "no")
            row += [fmt(figures.get("lag_entries")), MISSING if lag_s is None else _duration(lag_s), stalled]
        rows.append(row)
    join = "by input order" if progress.get("join") == "progress" else "by time (tapped input)"
    return [(f"Progress through the input (missing decided {join})", header, rows)]


def _latency_section(latency: Mapping[str, Any]) -> Section:
    rows = []
    for side in _SIDES:
        data = latency[side]
        proc = data.get("processing") or {}
        rows.append([side, fmt(data["count"]), *(fmt(data[k], 2) for k in ("p50", "p95", "p99", "max")),
                     *(fmt(proc.get(k), 2) for k in ("p50", "p99"))])
    return (f"Latency, ms (candidate/legacy p99 ratio {fmt(latency['p99_ratio'], 3)})",
            ["side", "count", "e2e p50", "e2e p95", "e2e p99", "e2e max", "proc p50", "proc p99"], rows)


def _error_sections(errors: Mapping[str, Any]) -> list[Section]:
    outcome_rows = [[side, *(fmt(errors[side][k]) for k in ("clustered", "unclustered", "error"))]
                    for side in _SIDES]
    sections: list[Section] = [("Outcomes", ["side", "clustered", "unclustered", "error"], outcome_rows)]
    divergence = [["errors, only legacy", errors["only_legacy"]], ["errors, only candidate", errors["only_candidate"]],
                  ["errors, both", errors["both"]],
                  ["unclustered, only legacy", errors["unclustered_only_legacy"]],
                  ["unclustered, only candidate", errors["unclustered_only_candidate"]]]
    if not errors["by_type"] and not any(count for _, count in divergence):
        return sections  # both sides handled every matched signal alike: nothing diverges
    rows = [[name, fmt(count)] for name, count in divergence]
    rows += [[f"error type {name}", f"{fmt(c['only_legacy'])} / {fmt(c['only_candidate'])} / {fmt(c['both'])}"]
             for name, c in errors["by_type"].items()]
    sections.append(("Error divergence (matched signals; by type: only legacy / only candidate / both)",
                     ["divergence", "signals"], rows))
    return sections


def _noise_floor_section(noise: Mapping[str, Any] | None) -> list[Section]:
    if not noise:  # no replica: no A/A run to measure the noise floor
        return []
    noise_latency = noise.get("latency_ms") or {}
    return [("Noise floor (legacy vs replica, A/A)", ["metric", "value"], [
        ["matched", fmt(noise.get("matched"))], ["missing replica", fmt(noise.get("missing_replica"))],
        ["ARI", fmt(noise.get("ari"))], ["NMI", fmt(noise.get("nmi"))],
        ["matched accuracy", fmt(noise.get("matched_accuracy"))],
        ["p99 spread, ms", fmt(noise_latency.get("p99_spread"), 2)],
        ["p99 ratio replica/legacy", fmt(noise_latency.get("p99_ratio"), 3)],
    ])]


def _production_section(cutover: Mapping[str, Any] | None, report_ms: float | None) -> list[Section]:
    """Who serves production and what it received; the switch only when there was one."""
    if not cutover:
        return []
    rows: list[list[str]] = []
    switched = bool(cutover.get("previous")) or (cutover.get("epoch") or 0) > 1
    if switched:
        title = f"Cutover: {cutover.get('previous') or MISSING} → {cutover['primary']} (epoch {cutover['epoch']})"
        rows.append(["switched at", fmt_time(cutover.get("switched_at_ms"), report_ms)])
        until = cutover.get("rollback_until_ms")
        if until is not None:
            still_open = report_ms is None or until > report_ms
            rows.append(["rollback window", f"{'open until' if still_open else 'closed at'} "
                                            f"{fmt_time(until, report_ms)}"])
    else:
        title = f"Production: {cutover['primary']} (primary from the start, epoch {cutover['epoch']})"
    by_epoch = ", ".join(f"epoch {epoch}: {count:,}" for epoch, count in (cutover.get("by_epoch") or {}).items())
    rows += [["production results", fmt(cutover.get("production_results"))],
             ["served by", fmt(cutover.get("by_worker") or {})],
             ["per epoch", by_epoch or MISSING],
             ["duplicates (must be 0)", fmt(cutover.get("production_duplicates"))],
             ["missing (must be 0)", fmt(cutover.get("production_missing"))],
             ["in flight", fmt(cutover.get("in_flight"))]]
    return [(title, ["field", "value"], rows)]


def _agreement_rows(agreement: Mapping[str, Any]) -> list[list[str]]:
    def row(scope: str, data: Mapping[str, Any]) -> list[str]:
        return [scope, fmt(data.get("pairs")), fmt(data.get("ari")), fmt(data.get("nmi")),
                fmt(data.get("matched_accuracy"))]

    window = agreement["window"]
    rows = [row("all pairs", agreement), row(f"last {window['size']:,} pairs", window)]
    if agreement.get("anomalies"):
        rows.append(row("anomalies only", agreement["anomalies"]))
    truth = agreement.get("truth")
    if truth:
        rows.append(["truth vs legacy", fmt(truth["pairs"]), fmt(truth["legacy_ari"]), fmt(truth["legacy_nmi"]),
                     MISSING])
        rows.append(["truth vs candidate", fmt(truth["pairs"]), fmt(truth["candidate_ari"]),
                     fmt(truth["candidate_nmi"]), MISSING])
    return rows


def _device_rows(agreement: Mapping[str, Any]) -> list[list[str]]:
    # the devices where the two workers disagree most are the ones an operator wants to see
    worst_first = sorted(agreement["per_device"].items(),
                         key=lambda item: (item[1]["ari"] is None, item[1]["ari"] or 0.0, item[0]))
    return [[device, fmt(data["pairs"]), fmt(data["ari"]), fmt(data["nmi"]), fmt(data["matched_accuracy"])]
            for device, data in worst_first[:DEVICE_ROWS]]


def _generated(report: Mapping[str, Any]) -> str:
    stamp = _iso_ms(report.get("generated_at"))
    return fmt_time(stamp) if stamp is not None else str(report.get("generated_at"))


def render_terminal(report: Mapping[str, Any], console: Console) -> None:
    # Text, not markup: labels, devices and error types are data and may hold brackets.
    console.print(Text(headline(report), style="bold"))
    console.print(Text(f"Shadow comparison report ({report['schema']}, generated {_generated(report)})"))
    for title, header, rows in _sections(report):
        table = Table(title=Text(title), title_justify="left", header_style="bold")
        for position, name in enumerate(header):
            table.add_column(name, justify="left" if position == 0 else "right")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    lead = _cell(headline(report)).replace("*", "\\*")  # the headline is bold: a literal star must not end it
    lines = [f"**{lead}**", "", "## Shadow comparison report", "",
             f"`{report['schema']}` generated {_generated(report)}", ""]
    for title, header, rows in _sections(report):
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)
