"""The hyperparameter SDK: declared once, validated, hashed into model_version, misspellings found."""

from __future__ import annotations

import pytest

from harness.hyperparameters import Hyperparameter, HyperparameterError, HyperparameterSet

SCHEMA = HyperparameterSet("HARNESS_TOY_", "toy-1", (
    Hyperparameter("HARNESS_TOY_RADIUS", "radius", "1.5", float, "a number", "Cluster radius."),
    Hyperparameter("HARNESS_TOY_WINDOW", "window", "10", int, "an integer", "Smoothing window."),
))


def test_defaults_keep_the_base_version_and_a_change_is_hashed_in() -> None:
    assert SCHEMA.load({}) == {"radius": 1.5, "window": 10}
    assert SCHEMA.model_version(SCHEMA.load({})) == "toy-1"
    changed = SCHEMA.model_version(SCHEMA.load({"HARNESS_TOY_RADIUS": "2"}))
    assert changed.startswith("toy-1+") and changed != SCHEMA.model_version(SCHEMA.load({"HARNESS_TOY_WINDOW": "3"}))


def test_a_bad_value_names_the_variable_and_the_rule() -> None:
    with pytest.raises(HyperparameterError, match="HARNESS_TOY_WINDOW must be an integer, got 'ten'"):
        SCHEMA.load({"HARNESS_TOY_WINDOW": "ten"})


def test_a_misspelt_variable_is_found_with_the_closest_name() -> None:
    assert SCHEMA.unknown({"HARNESS_TOY_RADIU": "2", "HARNESS_TOY_RADIUS": "1", "PATH": "/bin"}) == [
        "HARNESS_TOY_RADIU (did you mean HARNESS_TOY_RADIUS?)"]
    assert "HARNESS_TOY_RADIUS (default 1.5; a number): Cluster radius." in SCHEMA.describe()


def test_the_worker_lists_the_hyperparameters_its_algorithm_declares() -> None:
    from click.testing import CliRunner

    from harness.cli.main import cli

    listed = CliRunner().invoke(cli, ["worker", "candidate", "--hyperparameters"])
    assert listed.exit_code == 0 and "HARNESS_CANDIDATE_FEATURES (default deviation;" in listed.output
    assert "declares no hyperparameters" in CliRunner().invoke(cli, ["worker", "legacy", "--hyperparameters"]).output
