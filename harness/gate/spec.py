"""What every gate rule is made of: parameters and their parsers, the rule types, reading the report."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.gate.verdict import Outcome, RuleResult

ParamValue = float | int | str | None


# --- parameters: each parser returns the value or raises ValueError("<what it must be>") -----------


def parse_unit(value: Any) -> float:
    number = finite(value, "a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ValueError("a number in [0, 1]")
    return number


def parse_positive(value: Any) -> float:
    number = finite(value, "a number > 0")
    if not number > 0:
        raise ValueError("a number > 0")
    return number


def parse_count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("an integer >= 0")
    return value


def finite(value: Any, expected: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(expected)
    return float(value)


@dataclass(frozen=True)
class Param:
    default: ParamValue  # None: unset unless the policy sets it
    parse: Callable[[Any], ParamValue]
    meaning: str


@dataclass(frozen=True)
class Rule:
    """A rule as a policy configures it: its registry name and its parameters, defaults filled in."""

    name: str
    params: Mapping[str, ParamValue] = field(hash=False)
    critical: bool = False
    muted: bool = False  # reported, never judged

    def number(self, key: str) -> float:
        value = self.params[key]
        if not isinstance(value, int | float):
            raise TypeError(f"{self.name}.{key} is not a number")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self.params.get(key) is None else self.number(key)

    def text(self, key: str) -> str:
        return str(self.params[key])


Judge = Callable[[Rule, Mapping[str, Any], float], RuleResult]  # (rule, report, confidence) -> result


@dataclass(frozen=True)
class RuleSpec:
    """One entry of the registry; docs/gate.md has a row for each (a test checks)."""

    name: str
    measures: str  # the report field judged and the condition, in a sentence
    params: Mapping[str, Param] = field(hash=False)
    judge: Judge = field(hash=False)


def result(rule: Rule, ok: bool | None, measured: float | None, condition: str, text: str) -> RuleResult:
    """ok None means not applicable (SKIP)."""
    outcome = Outcome.SKIP if ok is None else Outcome.PASS if ok else Outcome.FAIL
    return RuleResult(rule.name, outcome, measured, condition, f"{rule.name} {text}")


def missing_value(rule: Rule, condition: str, what: str) -> RuleResult:
    """Fail closed: a value the report does not have is never a pass."""
    return result(rule, False, None, condition, f"n/a ({what}); needs {condition}")


# --- reading the report defensively ----------------------------------------------------------------


def get(report: Mapping[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def number(value: Any) -> float | None:
    """A finite number, or None: NaN, infinities and non-numbers are data the gate cannot judge."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def samples(value: Any) -> list[float] | None:
    if not isinstance(value, list):
        return None
    numbers = [number(item) for item in value]
    return None if any(number is None for number in numbers) else [float(n) for n in numbers if n is not None]


def digits(value: float, bound: float) -> tuple[str, str]:
    """Both numbers with enough decimals that a failing value never prints equal to its bound."""
    for places in range(3, 8):
        shown_value, shown_bound = f"{value:.{places}f}", f"{bound:.{places}f}"
        if (shown_value == shown_bound) == (value == bound):
            break
    return shown_value, shown_bound


def p_text(p_value: float) -> str:
    return "p < 0.0001" if p_value < 1e-4 else f"p {p_value:.4f}"
