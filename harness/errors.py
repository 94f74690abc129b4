"""The project's own error types: what the CLI turns into one line (anything else keeps its traceback)."""

from __future__ import annotations


class HarnessError(Exception):
    """An operational error the user can act on; its message is one line that says what was wrong."""
