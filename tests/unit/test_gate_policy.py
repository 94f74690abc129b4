"""Gate policies: TOML to frozen dataclasses, documented defaults, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.gate import RULES, PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = ROOT / "policies" / "default.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_default_policy_judges_every_rule_and_the_threshold_cases() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert [rule.name for rule in policy.rules] == list(RULES)
    assert policy.confidence == 0.95 and policy.min_pairs == 1_000 and policy.max_age_s == 3_600
    assert policy.threshold is not None and policy.threshold.cases.is_file()
    assert policy.threshold.critical


def test_a_rule_table_without_keys_takes_the_documented_defaults() -> None:
    policy = parse_policy({"rules": {"ari": {}, "per_device": {}, "latency_mann_whitney": {"muted": True}}})
    ari, per_device, latency = policy.rules
    assert ari.number("min") == 0.98 and ari.optional_number("noise_margin") is None
    assert (per_device.text("metric"), per_device.number("min"), per_device.number("min_pairs")) == ("ari", 0.98, 50)
    assert latency.muted and not latency.critical and latency.number("max_effect") == 0.2


def test_an_empty_policy_still_requires_the_default_number_of_pairs() -> None:
    policy = parse_policy({})
    assert policy.rules == () and policy.min_pairs == 1_000 and policy.non_critical == "fail"


def test_rules_are_reported_in_canonical_order_whatever_the_file_order() -> None:
    policy = parse_policy({"rules": {"p99_ratio": {}, "ari": {}, "error_increase": {}}})
    assert [rule.name for rule in policy.rules] == ["ari", "error_increase", "p99_ratio"]


@pytest.mark.parametrize(("text", "message"), [
    ("[rules.ari]\nmn = 0.9\n", "unknown key 'mn' in [rules.ari]"),
    ("[rules.arii]\n", "unknown key 'arii' in [rules]"),
    ("[rules.ari]\nmin = 1.5\n", "rules.ari.min must be a number in [0, 1], got 1.5"),
    ("[rules.per_device]\nmetric = 'f1'\n", "rules.per_device.metric must be one of ari, nmi, matched_accuracy"),
    ("[rules.p99_ratio]\nmax = 0\n", "rules.p99_ratio.max must be a number > 0"),
    ("[rules.ari]\ncritical = 'yes'\n", "rules.ari.critical must be true or false"),
    ("[gate]\nconfidence = 95\n", "gate.confidence must be a number in [0.5, 1)"),
    ("[gate]\nmin_pairs = -1\n", "gate.min_pairs must be an integer >= 0"),
    ("[gate]\nnon_critical = 'ignore'\n", "gate.non_critical must be 'fail' or 'warn'"),
    ("[threshold]\ncases = 'nowhere.toml'\n", "threshold cases file"),
    ("[rules\n", "is not readable TOML"),
])  # fmt: skip
def test_a_bad_policy_is_refused_in_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.toml")


def test_threshold_cases_resolve_against_the_policy_directory(tmp_path: Path) -> None:
    (tmp_path / "cases.toml").write_text("")
    policy = load_policy(write(tmp_path, "[threshold]\ncases = 'cases.toml'\nenv = { A = '1' }\n"))
    assert policy.threshold is not None
    assert policy.threshold.cases == tmp_path / "cases.toml"
    assert policy.threshold.worker == "candidate" and dict(policy.threshold.env) == {"A": "1"}


def test_docs_describe_every_rule_with_its_default() -> None:
    rows = {line.split("|")[1].strip(): line for line in (ROOT / "docs" / "gate.md").read_text().splitlines()
            if line.startswith("| `")}
    for name, params in RULES.items():
        assert f"`{name}`" in rows, f"docs/gate.md has no row for {name}"
        for key, param in params.items():
            default = "unset" if param.default is None else str(param.default)
            assert f"`{key}` = {default}" in rows[f"`{name}`"], f"{name}.{key}: default {default} not documented"
