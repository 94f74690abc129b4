"""The README stays true: every variable documented, the CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.env_reference import hyperparameters_table, option_rows
from workers.candidate.config import HYPERPARAMETERS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_environment_variable_of_every_command() -> None:
    missing = [envvar for envvar, *_ in option_rows() if f"`{envvar}`" not in README]
    assert not missing, f"run `python scripts/env_reference.py --write README.md`; missing: {missing}"


def test_readme_documents_every_candidate_hyperparameter() -> None:
    assert all(f"`{parameter.env}`" in README for parameter in HYPERPARAMETERS)
    assert hyperparameters_table() in README


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]*)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci_lines[-1] == test_command
