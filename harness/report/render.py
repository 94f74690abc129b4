"""Human renderings of a `harness.report/1` dict: rich tables for a terminal, markdown for a CI comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

MISSING = "—"  # shown where a metric is undefined (null in the report)
DEVICE_ROWS = 10  # devices shown; the report itself holds more
_AGREEMENT_HEADER = ["scope", "pairs", "ARI", "NMI", "matched accuracy"]
_SIDES = ("legacy", "candidate")


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _sections(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table of the report as (title, header, rows): one source for both renderings."""
    counts, agreement = report["counts"], report["agreement"]
    latency, errors = report["latency_ms"], report["errors"]
    sections = [
        ("Counts", ["count", "value"], [[key, fmt(value)] for key, value in counts.items()]),
        ("Agreement (legacy vs candidate)", _AGREEMENT_HEADER, _agreement_rows(agreement)),
    ]
    devices = _device_rows(agreement)
    if devices:
        title = f"Agreement per device (lowest ARI first; {len(devices)} of {agreement.get('devices', 0):,})"
        sections.append((title, ["device", *_AGREEMENT_HEADER[1:]], devices))
    cluster_map = agreement.get("cluster_map") or {}
    map_rows = [["split", fmt(item["legacy"]), fmt(item["pairs"]),
                 ", ".join(f"{part['candidate']} ({part['pairs']:,})" for part in item["into"])]
                for item in cluster_map.get("splits", [])]
    map_rows += [["merge", fmt(item["candidate"]), fmt(item["pairs"]),
                  ", ".join(f"{part['legacy']} ({part['pairs']:,})" for part in item["from"])]
                 for item in cluster_map.get("merges", [])]
    if map_rows:
        title = (f"Cluster map: {cluster_map.get('splits_total', 0)} splits, "
                 f"{cluster_map.get('merges_total', 0)} merges")
        sections.append((title, ["kind", "cluster", "pairs", "parts"], map_rows))
    latency_rows = []
    for side in _SIDES:
        data = latency[side]
        proc = data.get("processing") or {}
        latency_rows.append([side, fmt(data["count"]), *(fmt(data[k], 2) for k in ("p50", "p95", "p99", "max")),
                             *(fmt(proc.get(k), 2) for k in ("p50", "p99"))])
    sections.append((f"Latency, ms (candidate/legacy p99 ratio {fmt(latency['p99_ratio'], 3)})",
                     ["side", "count", "e2e p50", "e2e p95", "e2e p99", "e2e max", "proc p50", "proc p99"],
                     latency_rows))
    outcome_rows = [[side, *(fmt(errors[side][k]) for k in ("clustered", "unclustered", "error"))]
                    for side in _SIDES]
    sections.append(("Outcomes", ["side", "clustered", "unclustered", "error"], outcome_rows))
    divergence = [["errors, only legacy", fmt(errors["only_legacy"])],
                  ["errors, only candidate", fmt(errors["only_candidate"])],
                  ["errors, both", fmt(errors["both"])],
                  ["unclustered, only legacy", fmt(errors["unclustered_only_legacy"])],
                  ["unclustered, only candidate", fmt(errors["unclustered_only_candidate"])]]
    divergence += [[f"error type {name}", f"{fmt(c['only_legacy'])} / {fmt(c['only_candidate'])} / {fmt(c['both'])}"]
                   for name, c in errors["by_type"].items()]
    sections.append(("Error divergence (matched signals; by type: only legacy / only candidate / both)",
                     ["divergence", "signals"], divergence))
    noise = report.get("noise_floor")
    if noise:
        noise_latency = noise.get("latency_ms") or {}
        sections.append(("Noise floor (legacy vs replica, A/A)", ["metric", "value"], [
            ["matched", fmt(noise.get("matched"))], ["missing replica", fmt(noise.get("missing_replica"))],
            ["ARI", fmt(noise.get("ari"))], ["NMI", fmt(noise.get("nmi"))],
            ["matched accuracy", fmt(noise.get("matched_accuracy"))],
            ["p99 spread, ms", fmt(noise_latency.get("p99_spread"), 2)],
            ["p99 ratio replica/legacy", fmt(noise_latency.get("p99_ratio"), 3)],
        ]))
    cutover = report.get("cutover")
    if cutover:
        sections.append(("Cutover", ["field", "value"], [[key, fmt(value)] for key, value in cutover.items()]))
    return sections


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


def render_terminal(report: Mapping[str, Any], console: Console) -> None:
    console.print(f"[bold]Shadow comparison report[/bold] ({report['schema']}, {report['generated_at']})")
    for title, header, rows in _sections(report):
        table = Table(title=title, title_justify="left", header_style="bold")
        for position, name in enumerate(header):
            table.add_column(name, justify="left" if position == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = ["## Shadow comparison report", "", f"`{report['schema']}` generated {report['generated_at']}", ""]
    for title, header, rows in _sections(report):
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)
