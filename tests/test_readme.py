"""The README opens with the two commands, and CI runs the README's test command."""

import dataclasses
import re
import shlex
from pathlib import Path

import tomllib

from harness.cli.main import given_options
from harness.cli.options import parser
from harness.pipeline.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SELECTING = {"-m", "-k", "--deselect", "--ignore", "--ignore-glob", "--lf", "--last-failed", "--ff", "-x", "--exitfirst",
             "--maxfail", "--sw", "--stepwise"}


def commands():
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```bash\n")[1:3]
    return [block.split("\n```")[0].strip() for block in blocks]


def segments(command: str) -> list[list[str]]:
    """The ``&&``-joined steps of a shell command, each split into words."""
    return [shlex.split(step) for step in command.split("&&")]


def test_readme_run_command_runs_the_default_experiment_and_analyses_its_csv():
    setup, install, harness, analysis = segments(commands()[0])
    assert setup == ["python3", "-m", "venv", ".venv"] and install[-2:] == ["-r", "requirements.txt"]
    assert harness[:3] == [".venv/bin/python", "-m", "harness"]
    assert given_options(parser().parse_args(harness[3:])) == {}  # the default experiment
    defaults = {f.name: f for f in dataclasses.fields(RunConfig)}
    described = re.search(r"Run the default experiment \((\w+), every measure and aggregation, (\d+) thresholds\)",
                          (ROOT / "README.md").read_text())
    assert described.group(1) == defaults["task"].default
    assert int(described.group(2)) == len(defaults["thresholds"].default_factory())
    assert defaults["measures"].default is None and defaults["aggregations"].default is None  # None: all registered
    assert analysis == [".venv/bin/python", "analysis.py", defaults["output"].default]  # the CSV the run wrote


def test_ci_runs_the_readme_test_command_which_selects_every_test():
    readme = segments(commands()[1])
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert steps[-2:] == ['cd "$(dirname "$0")/.."', commands()[1]]  # from the repository root, the same command
    assert readme[0] == ["python3", "-m", "venv", ".venv"] and readme[1][-2:] == ["-r", "requirements-dev.txt"]
    assert readme[-1][:3] == [".venv/bin/python", "-m", "pytest"]
    assert not SELECTING & {word.split("=")[0] for word in readme[-1][3:]}, readme[-1]
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert not SELECTING & {word.split("=")[0] for word in shlex.split(ini["addopts"])}
    assert ini["testpaths"] == ["tests"] and ini["markers"][0].startswith("slow: ")
