"""Progress output and a quiet start: the running mean of the epoch's loss, named units, lines in a file."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.common import progress, quiet

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.slow
def test_mode_follows_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress.mode() == "terminal" and not progress.bar(range(3), desc="d", unit="measure").disable
    assert progress.bar(range(3), desc="d", unit="measure", enabled=False).disable
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress.mode() == "log" and progress.bar(range(3), desc="d", unit="measure").disable
    progress.line("one line")
    progress.line("not this one", enabled=False)
    assert sys.stderr.getvalue() == "one line\n"


def test_running_mean_is_the_mean_of_every_step_so_far(monkeypatch):
    import tensorflow as tf

    from harness.pipeline.train import RunningMean

    values = np.random.default_rng(0).uniform(0, 3, 17).astype(np.float32)
    losses, mean = [], RunningMean()
    for i, value in enumerate(values):
        losses.append(tf.constant(value))
        if i % 5 == 0:
            np.testing.assert_allclose(mean.update(losses), values[: i + 1].astype(np.float64).mean(), rtol=1e-6)
    np.testing.assert_allclose(mean.update(losses), values.astype(np.float64).mean(), rtol=1e-6)
    assert mean.count == 17


class Recorder:
    """Stands in for the epoch bar: iterates, and records each postfix."""

    disable = False

    def __init__(self, iterable, **options):
        self.iterable, self.options, self.postfixes = iterable, options, []
        Recorder.last = self

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, refresh=True, **values):
        self.postfixes.append(values)


def test_the_epoch_bar_shows_the_running_mean_not_one_batch(monkeypatch):
    import keras

    from harness.pipeline import train
    from tests.helpers import CE_LOGITS, random_data, tiny_dense_model

    model = tiny_dense_model()
    x, y = random_data(model, n=40)
    trainer = train.Trainer(model, CE_LOGITS, keras.optimizers.SGD(0.5), [], [], batch_size=4, seed=0)
    monkeypatch.setattr(train.progress_output, "bar", Recorder)
    monkeypatch.setattr(train.progress_output, "REFRESH_SECONDS", 0.0)
    mean = trainer.train_epoch(x, y, epoch=1)
    shown = [float(p["loss"]) for p in Recorder.last.postfixes]
    assert len(shown) == 10 and Recorder.last.options["unit"] == "batch"
    assert shown[-1] == pytest.approx(mean, abs=1e-4)  # the last refresh: every step of the epoch
    assert len(set(shown)) > 1  # not one sampled batch


def test_noise_filter_keeps_real_errors(capfd):
    with quiet.filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1.2 3 port.cc:153] oneDNN custom operations are on. You may see ...\n"
                    b"E0000 00:00:1.2 3 cuda_platform.cc:52] failed call to cuInit: INTERNAL: (303)\n"
                    b"E0000 something real went wrong\n")
    assert capfd.readouterr().err == "E0000 something real went wrong\n"


@pytest.mark.slow
def test_a_run_writes_only_its_own_lines_to_stderr(tmp_path):
    """``python -m harness`` on digits, stderr to a file: one line per epoch, nothing from TensorFlow or absl."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "harness", "--task", "digits", "--epochs", "2", "--measures", "magnitude", "random",
            "--aggregations", "weight", "--thresholds", "0", "0.5", "1", "--output", str(tmp_path / "r.csv")]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_id = re.match(r"run (\w{12}):", done.stdout).group(1)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    for epoch, line in enumerate(lines, 1):
        assert re.fullmatch(rf"run {run_id}: epoch {epoch}/2 in [\d.]+ s; training loss [\d.]+ \(epoch mean\), "
                            r"validation loss [\d.]+, accuracy [\d.]+", line), line
    assert "device: CPU" in done.stdout or "device: GPU" in done.stdout
