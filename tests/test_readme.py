"""The README opens with the two commands, and CI runs the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands():
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```bash\n")[1:3]
    return [block.split("\n```")[0].strip() for block in blocks]


def test_readme_opens_with_run_and_test_commands():
    run, test = commands()
    assert "-m harness" in run and "analysis.py" in run
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    assert commands()[1] in (ROOT / ".ci" / "run").read_text()
