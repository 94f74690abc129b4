"""Gate policies: a TOML file of rules, validated into frozen dataclasses (docs/gate.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.tomlfile import read_toml

NonCritical = Literal["fail", "warn"]
ParamValue = float | int | str | None

DEFAULT_CONFIDENCE = 0.95  # one-sided confidence of the statistical rules (alpha = 0.05)
DEFAULT_MIN_PAIRS = 1_000  # matched pairs below which the gate is inconclusive
METRICS = ("ari", "nmi", "matched_accuracy")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


def _unit(value: Any) -> float:
    number = _number(value, "a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ValueError("a number in [0, 1]")
    return number


def _positive(value: Any) -> float:
    number = _number(value, "a number > 0")
    if not number > 0:
        raise ValueError("a number > 0")
    return number


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("an integer >= 0")
    return value


def _metric(value: Any) -> str:
    if value not in METRICS:
        raise ValueError(f"one of {', '.join(METRICS)}")
    return str(value)


def _number(value: Any, expected: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(expected)
    return float(value)


@dataclass(frozen=True)
class Param:
    default: ParamValue  # None: unset unless the policy sets it
    parse: Callable[[Any], ParamValue]
    meaning: str


def _agreement(default: float, scope: str, relative: bool = True) -> dict[str, Param]:
    params = {"min": Param(default, _unit, f"lowest accepted value {scope}")}
    if relative:
        params["noise_margin"] = Param(None, _unit, "with a noise floor in the report: min = noise_floor - margin")
    return params


# Every rule the gate knows, in the order it is reported, with its parameters and their defaults.
RULES: dict[str, dict[str, Param]] = {
    "ari": _agreement(0.98, "over the whole run"),
    "nmi": _agreement(0.97, "over the whole run"),
    "matched_accuracy": _agreement(0.97, "over the whole run"),
    "window_ari": _agreement(0.95, "over the recent window"),
    "window_nmi": _agreement(0.95, "over the recent window"),
    "window_matched_accuracy": _agreement(0.95, "over the recent window"),
    "anomalies_ari": _agreement(0.95, "without the pairs both sides called default", relative=False),
    "anomalies_nmi": _agreement(0.95, "without the pairs both sides called default", relative=False),
    "anomalies_matched_accuracy": _agreement(0.95, "without the pairs both sides called default", relative=False),
    "per_device": {
        "metric": Param("ari", _metric, "agreement metric judged per device"),
        "min": Param(0.98, _unit, "lowest accepted value on any judged device"),
        "min_pairs": Param(50, _count, "devices with fewer pairs are not judged"),
    },
    "missing_legacy": {"max_rate": Param(0.01, _unit, "highest accepted share of signals legacy never answered")},
    "missing_candidate": {"max_rate": Param(0.01, _unit, "highest share the candidate never answered")},
    "candidate_error_rate": {"max_rate": Param(0.01, _unit, "highest accepted share of candidate errors")},
    "error_increase": {"max_increase": Param(0.0, _unit, "tolerated increase of the error rate over legacy")},
    "unclustered_increase": {"max_increase": Param(0.0, _unit, "tolerated increase of the unclustered rate")},
    "p99_ratio": {"max": Param(1.5, _positive, "highest accepted candidate p99 / legacy p99 (end to end)")},
    "latency_mann_whitney": {
        "max_effect": Param(0.2, _unit, "tolerated Cliff's delta (candidate slower) when significant"),
        "min_samples": Param(20, _count, "fewer latency samples on a side fail the rule"),
    },
}
COMMON_KEYS = ("critical", "muted")


@dataclass(frozen=True)
class Rule:
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


@dataclass(frozen=True)
class ThresholdSettings:
    cases: Path  # resolved against the policy file's directory
    worker: str = "candidate"  # "candidate": the candidate under test (the backtest's, when there is one)
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    critical: bool = True
    muted: bool = False


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    confidence: float = DEFAULT_CONFIDENCE
    min_pairs: int = DEFAULT_MIN_PAIRS
    max_age_s: float | None = None
    non_critical: NonCritical = "fail"  # "warn": only critical rules can fail the gate
    threshold: ThresholdSettings | None = None
    source: str = "<policy>"

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    data = read_toml(path, "policy", PolicyError)
    return parse_policy(data, base_dir=path.parent, source=str(path))


def parse_policy(data: Mapping[str, Any], base_dir: Path = Path("."), source: str = "<policy>") -> Policy:
    def fail(where: str, expected: str, value: Any) -> PolicyError:
        return PolicyError(f"policy {source}: {where} must be {expected}, got {value!r}")

    _no_unknown(data, ("gate", "rules", "threshold"), "the top level", source)
    gate = _table(data, "gate", source)
    _no_unknown(gate, ("confidence", "min_pairs", "max_age_s", "non_critical"), "[gate]", source)
    confidence = gate.get("confidence", DEFAULT_CONFIDENCE)
    if not isinstance(confidence, float | int) or isinstance(confidence, bool) or not 0.5 <= confidence < 1:
        raise fail("gate.confidence", "a number in [0.5, 1)", confidence)
    min_pairs = gate.get("min_pairs", DEFAULT_MIN_PAIRS)
    try:
        _count(min_pairs)
    except ValueError as exc:
        raise fail("gate.min_pairs", str(exc), min_pairs) from None
    max_age_s = gate.get("max_age_s")
    if max_age_s is not None:
        try:
            max_age_s = _positive(max_age_s)
        except ValueError as exc:
            raise fail("gate.max_age_s", str(exc), max_age_s) from None
    non_critical = gate.get("non_critical", "fail")
    if non_critical not in ("fail", "warn"):
        raise fail("gate.non_critical", "'fail' or 'warn'", non_critical)

    tables = _table(data, "rules", source)
    _no_unknown(tables, tuple(RULES), "[rules]", source)
    rules = tuple(_rule(name, _table(tables, name, source, f"rules.{name}"), source)
                  for name in RULES if name in tables)
    threshold = _threshold(data["threshold"], base_dir, source) if "threshold" in data else None
    return Policy(rules=rules, confidence=float(confidence), min_pairs=min_pairs, max_age_s=max_age_s,
                  non_critical=non_critical, threshold=threshold, source=source)


def _rule(name: str, table: Mapping[str, Any], source: str) -> Rule:
    known = RULES[name]
    _no_unknown(table, (*known, *COMMON_KEYS), f"[rules.{name}]", source)
    params: dict[str, ParamValue] = {}
    for key, param in known.items():
        if key not in table:
            params[key] = param.default
            continue
        try:
            params[key] = param.parse(table[key])
        except ValueError as exc:
            raise PolicyError(f"policy {source}: rules.{name}.{key} must be {exc}, got {table[key]!r}") from None
    return Rule(name, params, _flag(table, "critical", False, f"rules.{name}", source),
                _flag(table, "muted", False, f"rules.{name}", source))


def _threshold(raw: Any, base_dir: Path, source: str) -> ThresholdSettings:
    if not isinstance(raw, dict):
        raise PolicyError(f"policy {source}: [threshold] must be a table")
    _no_unknown(raw, ("cases", "worker", "env", *COMMON_KEYS), "[threshold]", source)
    cases, worker, env = raw.get("cases"), raw.get("worker", "candidate"), raw.get("env", {})
    if not isinstance(cases, str) or not cases:
        raise PolicyError(f"policy {source}: threshold.cases must be the path of a cases file")
    path = base_dir / cases
    if not path.is_file():
        raise PolicyError(f"policy {source}: threshold cases file {path} does not exist")
    if not isinstance(worker, str) or not worker:
        raise PolicyError(f"policy {source}: threshold.worker must be legacy, candidate or MODULE:FACTORY")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise PolicyError(f"policy {source}: threshold.env must be a table of strings")
    return ThresholdSettings(path, worker, dict(env), _flag(raw, "critical", True, "threshold", source),
                             _flag(raw, "muted", False, "threshold", source))


def _table(parent: Mapping[str, Any], key: str, source: str, where: str | None = None) -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(f"policy {source}: [{where or key}] must be a table, got {value!r}")
    return value


def _flag(table: Mapping[str, Any], key: str, default: bool, where: str, source: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"policy {source}: {where}.{key} must be true or false, got {value!r}")
    return value


def _no_unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str, source: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise PolicyError(f"policy {source}: unknown key {unknown[0]!r} in {where} (known: {', '.join(known)})")
