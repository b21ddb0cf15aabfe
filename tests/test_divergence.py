"""Training stops at a non-finite or exploding loss, with one line naming the epoch and the loss, and writes no rows."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli.main import main
from harness.pipeline import results
from harness.pipeline.experiment import TrainingDiverged, check_divergence
from tasks import TASKS, get_task, register_task

ARGV = ["--measures", "magnitude", "--aggregations", "unit", "--thresholds", "0", "1", "--importance-samples", "8",
        "--no-progress"]


@pytest.mark.parametrize("val_loss,initial,factor,diverged", [
    (2.0, 2.3, 10.0, False),
    (23.0, 2.3, 10.0, False),  # exactly the limit
    (23.1, 2.3, 10.0, True),
    (9.1e5, 2.3, 10.0, True),
    (9.1e5, 2.3, math.inf, False),  # the ratio rule switched off
    (math.nan, 2.3, math.inf, True),  # a non-finite loss always stops
    (math.inf, 2.3, 10.0, True),
])
def test_the_divergence_rule(val_loss, initial, factor, diverged):
    if diverged:
        with pytest.raises(TrainingDiverged, match="validation loss"):
            check_divergence(val_loss, initial, factor)
    else:
        check_divergence(val_loss, initial, factor)


@pytest.fixture
def nan_digits():
    digits = type(get_task("digits"))

    class NanDigits(digits):
        def load(self, data_dir=None):
            data = super().load(data_dir)
            data.x_train[100, 3] = np.nan
            return data

    register_task("nan_digits")(NanDigits)
    yield
    TASKS.unregister("nan_digits")


def stopped_in_epoch_1(tmp_path: Path, err: str) -> str:
    """The one-line error, after checking that nothing was written for the epoch."""
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: run ") and "training diverged in epoch 1: " in line
    assert "no checkpoint or rows were written for epoch 1" in line
    assert not (tmp_path / "r.csv").exists()  # no rows
    run_id = next(tmp_path.glob("r.*.json")).name.split(".")[1]
    assert not list(results.sidecar(tmp_path / "r.csv", run_id, ".ckpt").glob("epoch-*"))  # no checkpoint
    assert "training diverged in epoch 1" in results.sidecar(tmp_path / "r.csv", run_id, ".log").read_text()
    return line


@pytest.mark.slow
def test_a_nan_training_loss_stops_the_run_naming_epoch_and_loss(tmp_path, capsys):
    assert main(["--epochs", "2", "--learning-rate", "1e30", *ARGV, "--output", str(tmp_path / "r.csv")]) == 4
    assert re.search(r"training loss nan at step \d+ of 45;", stopped_in_epoch_1(tmp_path, capsys.readouterr().err))


def test_nan_in_the_training_data_stops_the_run(tmp_path, capsys, nan_digits):
    assert main(["--task", "nan_digits", "--epochs", "2", *ARGV, "--output", str(tmp_path / "r.csv")]) == 4
    line = stopped_in_epoch_1(tmp_path, capsys.readouterr().err)
    # TensorFlow's fused matmul+relu can turn a NaN input into a finite loss while the gradient is NaN
    assert "training loss nan at step" in line or "parameter fc1/kernel holds non-finite values" in line


@pytest.mark.slow
def test_an_exploding_but_finite_loss_stops_the_run(tmp_path, capsys):
    assert main(["--epochs", "2", "--learning-rate", "1e6", *ARGV, "--output", str(tmp_path / "r.csv")]) == 4
    line = stopped_in_epoch_1(tmp_path, capsys.readouterr().err)
    assert re.search(r"validation loss \d+ exceeds 10 times its value before training \(2\.3", line)
