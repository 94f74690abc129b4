"""Hyperparameters declared once: read from the environment, validated, listed, hashed into model_version.

An algorithm declares a `HyperparameterSet`; `load(env)` returns the typed values (a ConfigurationError
names a bad variable), `model_version(values)` is the base version while every value is its default
and gains a short hash of what changed otherwise (so stored state is never mixed across settings),
`describe()` lists them for `--help`, and `unknown(env)` finds misspelt variables under the prefix.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigurationError


class HyperparameterError(ValueError, ConfigurationError):
    """A hyperparameter variable with a value the algorithm cannot run with; the message names it."""


@dataclass(frozen=True)
class Hyperparameter:
    env: str  # the environment variable, e.g. HARNESS_CANDIDATE_WINDOW_SIZE
    name: str  # the field it fills
    default: str  # as text, parsed like any value
    parse: Callable[[str], Any]  # raises ValueError on a bad value
    rule: str  # what a valid value is, as error messages say it
    description: str


@dataclass(frozen=True)
class HyperparameterSet:
    prefix: str  # every variable starts with it, e.g. HARNESS_CANDIDATE_
    base_version: str  # model_version with every default, e.g. candidate-1.0
    parameters: Sequence[Hyperparameter]

    def load(self, env: Mapping[str, str]) -> dict[str, Any]:
        """The typed values; an unset or blank variable takes its default."""
        values: dict[str, Any] = {}
        for parameter in self.parameters:
            raw = env.get(parameter.env, "").strip() or parameter.default
            try:
                values[parameter.name] = parameter.parse(raw)
            except ValueError:
                raise HyperparameterError(f"{parameter.env} must be {parameter.rule}, got {raw!r}") from None
        return values

    def model_version(self, values: Mapping[str, Any]) -> str:
        defaults = self.load({})
        changed = sorted(f"{name}={value}" for name, value in values.items() if defaults.get(name) != value)
        if not changed:
            return self.base_version
        return f"{self.base_version}+{hashlib.sha256(chr(10).join(changed).encode()).hexdigest()[:8]}"

    def unknown(self, env: Mapping[str, str]) -> list[str]:
        """Variables under the prefix that no hyperparameter reads, each with the closest known name."""
        known = [parameter.env for parameter in self.parameters]
        found = []
        for variable in sorted(env):
            if variable.startswith(self.prefix) and variable not in known:
                close = difflib.get_close_matches(variable, known, n=1)
                found.append(f"{variable} (did you mean {close[0]}?)" if close else variable)
        return found

    def describe(self) -> str:
        return "\n".join(f"{p.env} (default {p.default}; {p.rule}): {p.description}" for p in self.parameters)
