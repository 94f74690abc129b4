"""Gate policies: TOML to frozen dataclasses, documented defaults, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigurationError
from harness.gate import RULES, PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = ROOT / "policies" / "default.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    """The error loading `path` raises, checked to be one line."""
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_default_policy_judges_every_rule_but_the_truth_ones_and_the_threshold_cases() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert [rule.name for rule in policy.rules] == [name for name in RULES if not name.startswith("truth_")]
    assert policy.confidence == 0.95 and policy.min_pairs == 1_000 and policy.max_age_s == 3_600
    assert policy.threshold is not None and policy.threshold.cases.is_file()
    assert policy.threshold.critical


def test_a_rule_table_without_keys_takes_the_documented_defaults() -> None:
    policy = parse_policy({"rules": {"ari": {}, "per_device": {}, "latency_mann_whitney": {"muted": True}}})
    ari, per_device, latency = policy.rules
    assert ari.number("min") == 0.98 and ari.optional_number("noise_margin") is None
    assert (per_device.text("metric"), per_device.number("min"), per_device.number("min_pairs")) == ("ari", 0.98, 50)
    assert latency.muted and not latency.critical and latency.number("max_effect") == 0.2


def test_a_policy_of_one_rule_takes_the_default_gate_settings() -> None:
    policy = parse_policy({"rules": {"ari": {}}})
    assert policy.min_pairs == 1_000 and policy.confidence == 0.95 and policy.non_critical == "fail"


@pytest.mark.parametrize(("text", "why"), [
    ("", "it has no [rules.NAME] table and no [threshold]"),
    ("[gate]\nmin_pairs = 500\n", "it has no [rules.NAME] table and no [threshold]"),
    ("[rules]\n", "it has no [rules.NAME] table and no [threshold]"),
    ("[rules.ari]\nmuted = true\n[rules.p99_ratio]\nmuted = true\n", "every rule is muted"),
])  # fmt: skip
def test_a_policy_with_no_rule_to_judge_fails_to_load(tmp_path: Path, text: str, why: str) -> None:
    path = write(tmp_path, text)
    assert refusal(path) == f"policy {path}: no rule to judge ({why}); add one, e.g. [rules.ari] (docs/gate.md)"


@pytest.mark.parametrize(("text", "message"), [
    ("[rules.arii]\n", "unknown key 'arii' in [rules]; did you mean 'ari'?"),
    ("[rules.window-ari]\n", "unknown key 'window-ari' in [rules]; did you mean 'window_ari'?"),
    ("[rules.error_increse]\n", "unknown key 'error_increse' in [rules]; did you mean 'error_increase'?"),
    ("[rules.p99_ratio]\nmaxx = 2.0\n", "unknown key 'maxx' in [rules.p99_ratio]; did you mean 'max'?"),
    ("[rule.ari]\n", "unknown key 'rule' in the top level; did you mean 'rules'?"),
    ("[gate]\nmin_pair = 10\n[rules.ari]\n", "unknown key 'min_pair' in [gate]; did you mean 'min_pairs'?"),
])  # fmt: skip
def test_a_misspelt_name_is_refused_with_the_closest_valid_one(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    assert refusal(path) == f"policy {path}: {message}"


def test_an_unknown_key_with_no_close_match_lists_the_valid_ones() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy({"rules": {"ari": {"zzz": 1}}})
    assert str(caught.value) == ("policy <policy>: unknown key 'zzz' in [rules.ari]; "
                                 "known: min, noise_margin, critical, muted")


def test_a_policy_error_is_a_configuration_error_the_cli_prints_in_one_line_with_exit_1() -> None:
    assert issubclass(PolicyError, ConfigurationError) and issubclass(PolicyError, ValueError)
    assert PolicyError("x").exit_code == 1  # never 2: that is the gate's "inconclusive"


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
    assert message in refusal(write(tmp_path, text))


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.toml")


def test_threshold_cases_resolve_against_the_policy_directory(tmp_path: Path) -> None:
    (tmp_path / "cases.toml").write_text("")
    policy = load_policy(write(tmp_path, "[threshold]\ncases = 'cases.toml'\nenv = { A = '1' }\n"))
    assert policy.threshold is not None
    assert policy.threshold.cases == tmp_path / "cases.toml"
    assert policy.threshold.worker == "candidate" and dict(policy.threshold.env) == {"A": "1"}


def test_policy_parsing_accepts_exactly_the_registrys_rules_and_parameters() -> None:
    every = parse_policy({"rules": {name: {} for name in RULES}})
    assert [rule.name for rule in every.rules] == list(RULES)
    for rule in every.rules:
        assert dict(rule.params) == {key: param.default for key, param in RULES[rule.name].params.items()}
    for name, spec in RULES.items():
        with pytest.raises(PolicyError, match=rf"unknown key 'extra' in \[rules\.{name}\]"):
            parse_policy({"rules": {name: {"extra": 1}}})
        for key, param in spec.params.items():
            if param.default is not None:
                assert parse_policy({"rules": {name: {key: param.default}}}).rules[0].params[key] == param.default


def test_every_registered_rule_says_what_it_measures_and_what_its_parameters_mean() -> None:
    for name, spec in RULES.items():
        assert spec.name == name and spec.measures and callable(spec.judge)
        assert spec.params, f"{name} has no parameter"
        assert all(param.meaning for param in spec.params.values()), name


def test_docs_describe_exactly_the_registered_rules_with_their_defaults() -> None:
    text = (ROOT / "docs" / "gate.md").read_text()
    section = text[text.index("### Rules"):text.index("###", text.index("### Rules") + 1)]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) - {"matched_pairs", "threshold:<case>"} == set(RULES)
    for name, spec in RULES.items():
        for key, param in spec.params.items():
            default = "unset" if param.default is None else str(param.default)
            assert f"`{key}` = {default}" in rows[name], f"{name}.{key}: default {default} not documented"
