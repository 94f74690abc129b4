"""Gate policies: a TOML file naming rules of the registry (gate/rules.py), validated into frozen dataclasses."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigurationError
from harness.gate.rules import RULES, ParamValue, Rule, parse_count, parse_positive
from harness.tomlfile import read_toml

NonCritical = Literal["fail", "warn"]

DEFAULT_CONFIDENCE = 0.95  # one-sided confidence of the statistical rules (alpha = 0.05)
DEFAULT_MIN_PAIRS = 1_000  # matched pairs below which the gate is inconclusive
COMMON_KEYS = ("critical", "muted")


class PolicyError(ValueError, ConfigurationError):
    """A policy file that cannot be used; the message is one line naming the file and the key."""

    # Not a configuration error's usual 2: the gate's exit 2 means "inconclusive, run longer", and a gate
    # that cannot run must never look like that (docs/gate.md, exit codes).
    exit_code = 1


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

    # [notify]: the webhook settings, read and checked by harness.notify (docs/operations.md)
    _no_unknown(data, ("gate", "rules", "threshold", "notify"), "the top level", source)
    gate = _table(data, "gate", source)
    _no_unknown(gate, ("confidence", "min_pairs", "max_age_s", "non_critical"), "[gate]", source)
    confidence = gate.get("confidence", DEFAULT_CONFIDENCE)
    if not isinstance(confidence, float | int) or isinstance(confidence, bool) or not 0.5 <= confidence < 1:
        raise fail("gate.confidence", "a number in [0.5, 1)", confidence)
    min_pairs = gate.get("min_pairs", DEFAULT_MIN_PAIRS)
    try:
        parse_count(min_pairs)
    except ValueError as exc:
        raise fail("gate.min_pairs", str(exc), min_pairs) from None
    max_age_s = gate.get("max_age_s")
    if max_age_s is not None:
        try:
            max_age_s = parse_positive(max_age_s)
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
    _something_to_judge(rules, threshold, source)
    return Policy(rules=rules, confidence=float(confidence), min_pairs=min_pairs, max_age_s=max_age_s,
                  non_critical=non_critical, threshold=threshold, source=source)


def _rule(name: str, table: Mapping[str, Any], source: str) -> Rule:
    known = RULES[name].params
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


def _something_to_judge(rules: tuple[Rule, ...], threshold: ThresholdSettings | None, source: str) -> None:
    """Fail closed: a policy that judges nothing would pass every candidate."""
    if any(not rule.muted for rule in rules) or (threshold is not None and not threshold.muted):
        return
    why = "every rule is muted" if rules or threshold else "it has no [rules.NAME] table and no [threshold]"
    raise PolicyError(f"policy {source}: no rule to judge ({why}); add one, e.g. [rules.ari] (docs/gate.md)")


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
    """Fail closed: a misspelt rule or key would otherwise silently judge less than the file says."""
    unknown = sorted(set(table) - set(known))
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    raise PolicyError(f"policy {source}: unknown key {unknown[0]!r} in {where}; {hint}")
