"""Candidate hyperparameters: defaults, validation that names the variable, and the model version."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from harness.clustering import WorkerContext
from workers.candidate import create
from workers.candidate.config import HYPERPARAMETERS, ConfigError, load_settings, model_version
from workers.candidate.domain.settings import Centroid, ClusterScope, Features, NegativeVoltage, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "algorithm.md"


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    assert load_settings({}) == Settings()
    assert Settings() == Settings(10, 1.5, 0.5, NegativeVoltage.KEEP, 1, Centroid.FIRST, Features.DEVIATION,
                                  32, 1.0, 20.0, ClusterScope.DEVICE)


def test_every_variable_is_read() -> None:
    env = {
        "HARNESS_CANDIDATE_WINDOW_SIZE": "20",
        "HARNESS_CANDIDATE_NOISE_THRESHOLD": "2.5",
        "HARNESS_CANDIDATE_SIMILARITY_THRESHOLD": "1",
        "HARNESS_CANDIDATE_NEGATIVE_VOLTAGE": "Reject",
        "HARNESS_CANDIDATE_DOWNSAMPLE": "4",
        "HARNESS_CANDIDATE_CENTROID": " mean ",
        "HARNESS_CANDIDATE_FEATURES": "Shape",
        "HARNESS_CANDIDATE_SHAPE_LENGTH": "16",
        "HARNESS_CANDIDATE_AMPLITUDE_WEIGHT": "0",
        "HARNESS_CANDIDATE_SIMILARITY_SCALE": "0.25",
        "HARNESS_CANDIDATE_CLUSTER_SCOPE": "shared",
    }
    assert load_settings(env) == Settings(20, 2.5, 1.0, NegativeVoltage.REJECT, 4, Centroid.MEAN, Features.SHAPE,
                                          16, 0.0, 0.25, ClusterScope.SHARED)


def test_a_blank_variable_takes_its_default() -> None:
    assert load_settings({"HARNESS_CANDIDATE_WINDOW_SIZE": "  "}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("HARNESS_CANDIDATE_WINDOW_SIZE", "abc", "an integer >= 1"),
        ("HARNESS_CANDIDATE_WINDOW_SIZE", "0", "an integer >= 1"),
        ("HARNESS_CANDIDATE_WINDOW_SIZE", "2.5", "an integer >= 1"),
        ("HARNESS_CANDIDATE_NOISE_THRESHOLD", "-1", "a number > 0"),
        ("HARNESS_CANDIDATE_NOISE_THRESHOLD", "nan", "a number > 0"),
        ("HARNESS_CANDIDATE_SIMILARITY_THRESHOLD", "0", "a number in (0, 1]"),
        ("HARNESS_CANDIDATE_SIMILARITY_THRESHOLD", "1.5", "a number in (0, 1]"),
        ("HARNESS_CANDIDATE_NEGATIVE_VOLTAGE", "drop", "one of keep, clip, reject"),
        ("HARNESS_CANDIDATE_DOWNSAMPLE", "-3", "an integer >= 1"),
        ("HARNESS_CANDIDATE_CENTROID", "median", "one of first, mean"),
        ("HARNESS_CANDIDATE_FEATURES", "fft", "one of deviation, shape"),
        ("HARNESS_CANDIDATE_SHAPE_LENGTH", "1", "an integer >= 2"),
        ("HARNESS_CANDIDATE_AMPLITUDE_WEIGHT", "-0.5", "a number >= 0"),
        ("HARNESS_CANDIDATE_AMPLITUDE_WEIGHT", "inf", "a number >= 0"),
        ("HARNESS_CANDIDATE_SIMILARITY_SCALE", "0", "a number > 0"),
        ("HARNESS_CANDIDATE_CLUSTER_SCOPE", "site", "one of device, shared"),
    ],
)
def test_a_bad_value_is_refused_with_an_error_naming_its_variable(variable: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value})
    assert str(raised.value) == f"{variable} must be {rule}, got {value!r}"


def test_the_factory_refuses_a_bad_environment_at_start() -> None:
    with pytest.raises(ConfigError, match="HARNESS_CANDIDATE_WINDOW_SIZE"):
        create(WorkerContext("candidate", None, {"HARNESS_CANDIDATE_WINDOW_SIZE": "abc"}))


def test_the_model_version_is_plain_with_defaults_and_hashed_otherwise() -> None:
    assert model_version(Settings()) == "candidate-1.0"
    assert create(WorkerContext("candidate", None, {})).model_version == "candidate-1.0"
    changed = model_version(load_settings({"HARNESS_CANDIDATE_CENTROID": "mean"}))
    assert changed.startswith("candidate-1.0+") and len(changed) == len("candidate-1.0+") + 8
    assert changed != model_version(load_settings({"HARNESS_CANDIDATE_DOWNSAMPLE": "2"}))


def test_the_model_version_depends_on_values_not_on_how_they_are_written() -> None:
    one = model_version(load_settings({"HARNESS_CANDIDATE_NOISE_THRESHOLD": "2"}))
    other = model_version(load_settings({"HARNESS_CANDIDATE_NOISE_THRESHOLD": "2.000"}))
    assert one == other
    assert model_version(load_settings({"HARNESS_CANDIDATE_NOISE_THRESHOLD": "1.50"})) == "candidate-1.0"


def test_every_setting_has_one_variable_with_a_valid_default_and_a_description() -> None:
    assert sorted(p.name for p in HYPERPARAMETERS) == sorted(f.name for f in fields(Settings))
    for parameter in HYPERPARAMETERS:
        assert parameter.env.startswith("HARNESS_CANDIDATE_") and parameter.description
        assert getattr(load_settings({parameter.env: parameter.default}), parameter.name) == getattr(
            Settings(), parameter.name
        )


def test_every_variable_is_documented_with_its_default() -> None:
    text = DOCS.read_text()
    for parameter in HYPERPARAMETERS:
        assert parameter.env in text and f"`{parameter.default}`" in text, parameter.env


def test_every_new_setting_changes_the_model_version() -> None:
    versions = {model_version(load_settings({variable: value})) for variable, value in (
        ("HARNESS_CANDIDATE_FEATURES", "shape"), ("HARNESS_CANDIDATE_SHAPE_LENGTH", "16"),
        ("HARNESS_CANDIDATE_AMPLITUDE_WEIGHT", "0.5"), ("HARNESS_CANDIDATE_SIMILARITY_SCALE", "1"),
        ("HARNESS_CANDIDATE_CLUSTER_SCOPE", "shared"))}
    assert len(versions) == 5 and "candidate-1.0" not in versions
    assert model_version(load_settings({"HARNESS_CANDIDATE_SIMILARITY_SCALE": "20"})) == "candidate-1.0"
