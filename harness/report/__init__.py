"""The comparison report: the `harness.report/1` document and its terminal and markdown renderings."""

from harness.report.render import render_markdown, render_terminal
from harness.report.schema import SCHEMA, ReportError, build_report, report_from_json, validate_report

__all__ = [
    "SCHEMA",
    "ReportError",
    "build_report",
    "render_markdown",
    "render_terminal",
    "report_from_json",
    "validate_report",
]
