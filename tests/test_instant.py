"""Instant commands: --help, --list and a finished run, study or localisation answer without TensorFlow or Ray."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import instant
from harness.pipeline import results

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = """
import json, runpy, sys
module, out = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
code = 0
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code or 0
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "ray"})
open(out, "w").write(json.dumps(heavy))
sys.exit(code)
"""


def entry(module: str, args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, list[str], float]:
    """Run ``python -m module args`` in a fresh interpreter; return it, the heavy packages it imported, and seconds."""
    out = cwd / "imported.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, module, str(out), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, json.loads(out.read_text()), time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("module,flag", [("harness", "--help"), ("harness", "--list"), ("harness.study", "--help"),
                                         ("harness.study", "--list"), ("harness.experiments.localize", "--help")])
def test_help_and_list_import_no_tensorflow_or_ray(tmp_path, module, flag):
    done, heavy, _ = entry(module, [flag], tmp_path)
    assert done.returncode == 0, done.stderr
    assert heavy == [] and done.stderr == ""
    assert ("usage: python -m " + module) in done.stdout or "measures (--measures" in done.stdout


RUN = ["--task", "digits", "--epochs", "1", "--measures", "magnitude", "--thresholds", "0", "1"]


def finished_run(folder: Path, args: list[str], rows: int = 2, run_id: str = "0123456789ab") -> Path:
    """The files a finished run leaves (CSV rows, metadata marked complete), with the key of ``args`` recorded."""
    from harness.cli.main import given_options, parser

    csv = folder / "r.csv"
    row = dict.fromkeys(results.COLUMNS, "0") | dict(run_id=run_id, measure="magnitude")
    results.append_rows(csv, [row | dict(threshold=str(t)) for t in range(rows)])
    key = instant.request_key("run", given_options(parser().parse_args([*args, "--output", str(csv)])))
    results.write_metadata(results.sidecar(csv, run_id, ".json"),
                           dict(run_id=run_id, request=key, complete=dict(rows=dict(results=rows))))
    return csv


@pytest.mark.slow
def test_a_finished_run_is_reported_without_tensorflow(tmp_path):
    csv = finished_run(tmp_path, RUN)
    done, heavy, seconds = entry("harness", [*RUN, "--output", str(csv)], tmp_path)
    assert done.returncode == 0 and heavy == [], done.stderr
    assert done.stdout == (f"run 0123456789ab is already complete in {csv}; nothing was recomputed.\n"
                           f"next: python analysis.py {csv}\n")
    assert seconds < 10  # the 2 s target is timed by benchmarks/startup.py; a loaded CI machine is slower


@pytest.mark.slow
@pytest.mark.parametrize("change", [["--seed", "1"], ["--epochs", "2"], ["--measures", "random"]])
def test_another_request_or_missing_rows_are_not_taken_for_it(tmp_path, change):
    from harness.cli.main import given_options, parser

    csv = finished_run(tmp_path, RUN)
    args = parser().parse_args([*RUN, *change, "--output", str(csv)])
    assert instant.complete_run(given_options(args), None, "data/results.csv") is None
    same = given_options(parser().parse_args([*RUN, "--no-progress", "--output", str(csv)]))
    assert instant.complete_run(same, None, "data/results.csv") is not None  # progress bars change no result
    csv.write_text(csv.read_text().splitlines(keepends=True)[0])  # the rows are gone: not complete any more
    assert instant.complete_run(same, None, "data/results.csv") is None


def test_the_key_covers_the_code(tmp_path, monkeypatch):
    key = instant.request_key("run", {"epochs": 1})
    monkeypatch.setattr(instant, "_fingerprint", "other code")
    assert instant.request_key("run", {"epochs": 1}) != key


@pytest.mark.slow
def test_a_finished_study_is_reported_without_tensorflow_or_ray(tmp_path):
    args = ["--task", "digits", "--epochs", "1", "--seeds", "0-1", "--storage", str(tmp_path / "s")]
    given = {k: v for k, v in vars(_parse(args)).items() if v is not None and k not in ("config", "list")}
    folder = tmp_path / "s" / "digits-mlp-seeds0-1-abcdef"
    (folder / "trials").mkdir(parents=True)
    trials = [dict(run_id=r, csv=f"trials/{r}.csv", status="complete", params=dict(seed=i)) for i, r in enumerate("ab")]
    for trial in trials:
        (folder / trial["csv"]).write_text("run_id\n")
    record = dict(study_id="abcdef123456", trials=trials, request=instant.request_key("study", given))
    (folder / "study.json").write_text(json.dumps(record))
    done, heavy, _ = entry("harness.study", [*args, "--workers", "1"], tmp_path)  # workers change no result
    assert done.returncode == 0 and heavy == [], done.stderr
    assert done.stdout == (f"study {folder.name}: 2 of 2 trials complete in s/{folder.name} (already complete; "
                           f"nothing was recomputed)\nrank them: python analysis.py s/{folder.name}\n")
    (folder / "trials" / "b.csv").unlink()  # a trial's CSV lost: not complete
    assert instant.complete_study(given, None, "data/studies") is None


def _parse(args):
    from harness.cli.main import parser

    return parser().parse_args(args)


@pytest.mark.slow
def test_a_finished_localisation_is_reported_without_tensorflow(tmp_path):
    out = tmp_path / "loc"
    out.mkdir()
    args = ["--task", "digits", "--seeds", "0", "--output", str(out)]
    given = {"task": "digits", "seeds": [0], "output": str(out)}
    stats = dict(mean=0.25, ci95=[0.2, 0.3], n_seeds=1)
    summary = {group: dict(r2=stats, pearson_r=stats) for group in ("weights", "biases")}
    (out / "result.json").write_text(json.dumps(dict(run_id="feedbeef0000", summary=summary,
                                                     request=instant.request_key("localize", given))))
    done, heavy, _ = entry("harness.experiments.localize", args, tmp_path)
    assert done.returncode == 0 and heavy == [], done.stderr
    assert done.stdout.startswith(f"localize feedbeef0000 is already complete in {out}; nothing was recomputed.\n"
                                  "weights: R² mean 0.2500")


def test_remembering_is_best_effort(tmp_path, monkeypatch):
    record = tmp_path / "r.abc.json"
    record.write_text(json.dumps({"run_id": "abc"}))
    instant.remember(record, "k1")
    assert json.loads(record.read_text()) == {"run_id": "abc", "request": "k1"}

    def read_only(path, content):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(results, "write_metadata", read_only)
    instant.remember(record, "k2")  # a read-only folder: the next command takes the ordinary path
    assert json.loads(record.read_text())["request"] == "k1"
