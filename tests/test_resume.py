"""Interrupted runs: SIGKILL mid-epoch, truncated last line, changed parameters, a failing measure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from measures import MEASURES, Measure, register_measure

pytestmark = pytest.mark.slow  # every test here trains and resumes runs end to end

ROOT = Path(__file__).resolve().parents[1]
KEY = ["epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "threshold"]
ARGS = ["--epochs", "3", "--measures", "magnitude", "sigkill_once", "random", "--aggregations", "weight", "unit",
        "--thresholds", "0", "0.25", "0.5", "0.75", "1", "--importance-samples", "64", "--deterministic",
        "--no-progress"]

# A measure that SIGKILLs its own process the second time it scores (after epoch 2's
# checkpoint and the first measure's epoch-2 sweeps), unless the marker file exists.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from measures import Measure, register_measure
    from harness.cli.main import main

    @register_measure("sigkill_once")
    class SigkillOnce(Measure):
        calls = 0

        def score(self, ctx):
            SigkillOnce.calls += 1
            marker = os.environ["KILL_MARKER"]
            if SigkillOnce.calls == 2 and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return [np.abs(v.numpy()) for v in ctx.variables]

    sys.exit(main(sys.argv[1:]))
""")


def harness(out: Path, marker: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KILL_MARKER=str(marker), TF_CPP_MIN_LOG_LEVEL="3")
    script = SCRIPT.format(root=str(ROOT))
    return subprocess.run([sys.executable, "-c", script, *ARGS, "--output", str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    reference, killed = base / "reference" / "r.csv", base / "killed" / "r.csv"
    marker = base / "killed-once"
    done = base / "never"
    done.touch()
    assert harness(reference, done).returncode == 0
    crash = harness(killed, marker)
    assert crash.returncode == -9, crash.stderr
    truncated = base / "truncated" / "r.csv"
    shutil.copytree(killed.parent, truncated.parent)
    return reference, killed, truncated, marker


def keys(frame):
    return frame[KEY].apply(tuple, axis=1)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(runs):
    reference, killed, _, marker = runs
    partial = pd.read_csv(killed)
    assert 0 < len(partial) < len(pd.read_csv(reference))
    assert set(partial["epoch"]) == {1, 2}
    resumed = harness(killed, marker, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ref, got = pd.read_csv(reference), pd.read_csv(killed)
    assert not keys(got).duplicated().any()
    assert set(keys(got)) == set(keys(ref)) and len(got) == len(ref) == 3 * 3 * 2 * 5
    merged = ref.merge(got, on=KEY, suffixes=("_ref", "_got"))
    np.testing.assert_allclose(merged["val_loss_got"], merged["val_loss_ref"], rtol=1e-6)
    np.testing.assert_allclose(merged["val_accuracy_got"], merged["val_accuracy_ref"], atol=1e-9)
    ckpt = results.sidecar(killed, got["run_id"][0], ".ckpt")
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-3", "latest.json"]


def test_truncated_last_line_is_dropped_with_a_warning_and_its_sweep_redone(runs):
    reference, _, truncated, marker = runs
    data = truncated.read_bytes()
    truncated.write_bytes(data[:-25])  # a power cut in the middle of the last row
    resumed = harness(truncated, marker, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "truncated last line" in resumed.stderr
    ref, got = pd.read_csv(reference), pd.read_csv(truncated)
    assert not keys(got).duplicated().any() and set(keys(got)) == set(keys(ref))
    assert truncated.read_text().count("run_id") == 1


def test_resume_with_changed_parameters_is_refused(runs, capsys):
    reference, *_ = runs
    before = reference.read_bytes()
    argv = ["--measures", "magnitude", "random", "--aggregations", "weight", "unit", "--thresholds", "0", "1",
            "--seed", "7", "--epochs", "4", "--output", str(reference), "--resume", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Cannot resume" in err and "'seed': (0, 7)" in err and "'epochs': (3, 4)" in err
    assert reference.read_bytes() == before


@pytest.fixture
def failing_measure():
    @register_measure("always_fails")
    class AlwaysFails(Measure):
        def score(self, ctx):
            raise FloatingPointError("importance overflowed")

    yield
    MEASURES.unregister("always_fails")


def test_a_failing_measure_is_logged_and_the_others_complete(tmp_path, capsys, failing_measure):
    out = tmp_path / "r.csv"
    argv = ["--epochs", "2", "--measures", "magnitude", "always_fails", "random", "--aggregations", "unit",
            "--thresholds", "0", "0.5", "1", "--importance-samples", "16", "--no-progress", "--output", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "always_fails" in err and "importance overflowed" in err
    frame = pd.read_csv(out)
    assert set(frame["measure"]) == {"magnitude", "random"}
    assert frame.groupby(["epoch", "measure"]).size().tolist() == [3, 3, 3, 3]
    run_id = RunConfig(**{"epochs": 2, "measures": ["magnitude", "always_fails", "random"], "aggregations": ["unit"],
                          "thresholds": [0.0, 0.5, 1.0], "importance_samples": 16}).run_id
    log = results.sidecar(out, run_id, ".log").read_text()
    assert "Traceback" in log and "FloatingPointError: importance overflowed" in log
    assert json.loads(results.sidecar(out, run_id, ".json").read_text())["git_commit"]


def test_sigterm_or_ctrl_c_stops_between_writes_and_says_how_to_resume(tmp_path, capsys):
    @register_measure("interrupts")
    class Interrupts(Measure):
        def score(self, ctx):
            os.kill(os.getpid(), signal.SIGTERM)  # delivered as KeyboardInterrupt by the CLI's handler
            return [np.abs(v.numpy()) for v in ctx.variables]

    out = tmp_path / "r.csv"
    try:
        argv = ["--epochs", "1", "--measures", "magnitude", "interrupts", "--aggregations", "unit",
                "--thresholds", "0", "1", "--importance-samples", "8", "--no-progress", "--output", str(out)]
        assert main(argv) == 130
    finally:
        MEASURES.unregister("interrupts")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert "--resume" in capsys.readouterr().err
    frame = pd.read_csv(out)
    assert set(frame["measure"]) == {"magnitude"} and len(frame) == 2


def test_resume_reruns_from_the_start_when_earlier_sweeps_are_missing(tmp_path, capsys):
    calls = []

    @register_measure("fails_once")
    class FailsOnce(Measure):
        def score(self, ctx):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("transient failure")
            return [np.abs(v.numpy()) for v in ctx.variables]

    out = tmp_path / "r.csv"
    argv = ["--epochs", "2", "--measures", "magnitude", "fails_once", "--aggregations", "unit", "--thresholds", "0", "1",
            "--importance-samples", "8", "--no-progress", "--output", str(out)]
    try:
        assert main(argv) == 1  # epoch 1 of fails_once failed; everything else written
        before = pd.read_csv(out)
        assert main(argv) == 2  # part of the run is written: a plain re-run is refused
        assert main([*argv, "--resume"]) == 0  # only epoch 2's checkpoint is kept: epoch 1 is trained again
    finally:
        MEASURES.unregister("fails_once")
    err = capsys.readouterr().err
    assert "Continue it with --resume" in err
    assert "no intact checkpoint at or before epoch 1" in err and "skipping the 3 sweeps already in" in err
    frame = pd.read_csv(out)
    assert not frame.duplicated(["epoch", "measure", "threshold"]).any() and len(frame) == 8
    assert len(calls) == 3  # epochs 1 and 2, then epoch 1 once more; nothing else was scored again
    kept = frame.merge(before, on=list(frame.columns))  # the rows written first are kept as they were
    assert len(kept) == len(before) == 6
