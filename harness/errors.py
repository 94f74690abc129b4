"""The harness's own error types: what the CLI prints as one line instead of a traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """An expected failure the user can act on: one line on stderr, exit code 1."""

    exit_code = 1


class ConfigurationError(HarnessError):
    """A setting (option, environment variable, worker spec) that cannot work: exit code 2, like a usage error."""

    exit_code = 2
