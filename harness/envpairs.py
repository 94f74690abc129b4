"""KEY=VALUE settings from the command line (e.g. --candidate-env)."""

from __future__ import annotations

from collections.abc import Iterable


def parse_env_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """KEY=VALUE strings to a dict; a malformed one raises ValueError naming it."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"environment setting {pair!r} is not KEY=VALUE")
        env[key.strip()] = value
    return env
