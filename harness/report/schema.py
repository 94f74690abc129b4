"""The `harness.report/1` document: assembling it, and validating one read back (docs/report-schema.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from harness.errors import HarnessError
from harness.report.headline import headline as worst_finding_first

SCHEMA = "harness.report/1"

SECTIONS = ("counts", "agreement", "latency_ms", "errors", "noise_floor", "cutover")
COUNT_KEYS = (
    "legacy_outputs", "candidate_outputs", "matched", "missing_legacy", "missing_candidate",
    "duplicates", "evicted", "pending", "late", "rejected",
)
AGREEMENT_KEYS = (
    "ari", "nmi", "matched_accuracy", "pairs", "legacy_clusters", "candidate_clusters",
    "window", "truth", "per_device", "devices", "cluster_map",
)
LATENCY_SIDE_KEYS = ("p50", "p95", "p99", "max", "count", "processing")
ERROR_KEYS = (
    "legacy", "candidate", "only_legacy", "only_candidate", "both", "by_type",
    "unclustered_only_legacy", "unclustered_only_candidate",
)
OUTCOME_KEYS = ("clustered", "unclustered", "error")


class ReportError(ValueError, HarnessError):
    """A report that cannot be trusted: not JSON, another schema, or a section missing or malformed."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_report(
    *,
    counts: Mapping[str, Any],
    agreement: Mapping[str, Any],
    latency_ms: Mapping[str, Any],
    errors: Mapping[str, Any],
    noise_floor: Mapping[str, Any] | None,
    cutover: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
    generated_at: str | None = None,
    headline: str | None = None,
) -> dict[str, Any]:
    """The report, validated; its headline is derived from it unless given."""
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "headline": headline or "",
        "generated_at": generated_at or utc_now(),
        "counts": dict(counts),
        "agreement": dict(agreement),
        "latency_ms": dict(latency_ms),
        "errors": dict(errors),
        "noise_floor": dict(noise_floor) if noise_floor is not None else None,
        "cutover": dict(cutover) if cutover is not None else None,
    }
    if progress is not None:
        report["progress"] = dict(progress)
    validate_report(report)
    if headline is None:
        report["headline"] = worst_finding_first(report)
    return report


def report_from_json(text: str | bytes) -> dict[str, Any]:
    """Parse and validate a report; raises ReportError saying what is wrong."""
    try:
        report = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"the report is not valid JSON: {exc}") from None
    return validate_report(report)


def validate_report(report: Any) -> dict[str, Any]:
    if not isinstance(report, dict):
        raise ReportError(f"a report must be a JSON object, got {type(report).__name__}")
    if report.get("schema") != SCHEMA:
        raise ReportError(f"unsupported report schema {report.get('schema')!r}, expected {SCHEMA!r}")
    if not isinstance(report.get("generated_at"), str):
        raise ReportError("the report has no generated_at timestamp")
    if not isinstance(report.get("headline", ""), str):  # optional: reports written before it have none
        raise ReportError(f"headline must be a string, got {report['headline']!r}")
    for section in SECTIONS:
        if section not in report:
            raise ReportError(f"the report has no {section!r} section")
    counts = _section(report, "counts", COUNT_KEYS)
    for key in COUNT_KEYS:
        _require_count(counts[key], f"counts.{key}")
    if counts.get("produced") is not None:
        _require_count(counts["produced"], "counts.produced")
    agreement = _section(report, "agreement", AGREEMENT_KEYS)
    for key in ("ari", "nmi", "matched_accuracy"):
        _require_score(agreement[key], f"agreement.{key}")
    _require_count(agreement["pairs"], "agreement.pairs")
    latency = _section(report, "latency_ms", ("legacy", "candidate", "p99_ratio", "samples"))
    for side in ("legacy", "candidate"):
        side_latency = _section(latency, side, LATENCY_SIDE_KEYS, prefix="latency_ms.")
        for key in ("p50", "p95", "p99", "max"):
            _require_score(side_latency[key], f"latency_ms.{side}.{key}")
    _require_score(latency["p99_ratio"], "latency_ms.p99_ratio")
    errors = _section(report, "errors", ERROR_KEYS)
    for side in ("legacy", "candidate"):
        _section(errors, side, OUTCOME_KEYS, prefix="errors.")
    if report["noise_floor"] is not None and not isinstance(report["noise_floor"], dict):
        raise ReportError("noise_floor must be an object or null")
    if report["cutover"] is not None and not isinstance(report["cutover"], dict):
        raise ReportError("cutover must be an object or null")
    if "progress" in report:  # optional: reports written before the progress join have none
        _validate_progress(report["progress"])
    return report


def _validate_progress(progress: Any) -> None:
    if not isinstance(progress, dict) or progress.get("join") not in ("progress", "time"):
        raise ReportError("progress.join must be 'progress' or 'time'")
    sides = progress.get("sides")
    if not isinstance(sides, dict):
        raise ReportError("progress.sides must be an object")
    for side, figures in sides.items():
        if not isinstance(figures, dict):
            raise ReportError(f"progress.sides.{side} must be an object")
        _require_count(figures.get("awaiting"), f"progress.sides.{side}.awaiting")


def _section(parent: Mapping[str, Any], name: str, keys: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    section = parent.get(name)
    if not isinstance(section, dict):
        raise ReportError(f"{prefix}{name} must be an object, got {type(section).__name__}")
    missing = [key for key in keys if key not in section]
    if missing:
        raise ReportError(f"{prefix}{name} lacks {', '.join(missing)}")
    return section


def _require_count(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReportError(f"{where} must be a non-negative integer, got {value!r}")


def _require_score(value: Any, where: str) -> None:
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise ReportError(f"{where} must be a number or null, got {value!r}")
