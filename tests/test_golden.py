"""Golden CSV: a fixed small run whose rows (less the timing columns) must stay identical, bit for bit.

The rows under ``tests/golden/`` were written before ``direction`` and
``structured_bn`` existed: they prove that runs which set neither keep their
run id and every value (``in`` units and filters, weights, controls, the
shrunk sweep, BatchNorm parameters under ``structured_bn = "keep"``).

Regenerate (only when a change of results is intended and explained):
``python -m tests.test_golden``.
"""

from pathlib import Path

import keras
import pandas as pd
import pytest

from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from tasks import TASKS, register_task
from tasks.digits import Digits

GOLDEN = Path(__file__).parent / "golden"
TIMING = ["measure_seconds", "sweep_seconds"]
BASE = dict(measures=["magnitude", "fisher", "random"], epochs=2, thresholds=[0.0, 0.2, 0.5, 0.8, 1.0],
            importance_samples=64, seed=3, deterministic=True, progress=False, controls=["random_matched"])
CASES = {
    "digits_mlp": dict(task="digits", aggregations=["weight", "unit"], scopes=["layer", "global"]),
    "digits_conv_bn": dict(task="golden_digits_conv", aggregations=["weight", "unit", "filter"], prunable="all"),
}


def digits_conv(input_shape, num_classes):
    """Input(64) -> Reshape(8, 8, 1) -> Conv(4, 3x3, relu) -> BatchNorm -> Conv(3, 3x3, relu) -> Flatten -> Dense."""
    inputs = keras.Input(input_shape)
    h = keras.layers.Reshape((8, 8, 1))(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(3, 3, activation="relu", name="c2")(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(keras.layers.Flatten()(h)))


def register():
    """Register the toy conv task on the digits (once)."""
    if "golden_digits_conv" not in TASKS.names():
        register_task("golden_digits_conv")(type("GoldenDigitsConv", (Digits,), {
            "models": {"cnn": digits_conv}, "default_model": "cnn", "epochs": 2}))


def rows(case: str, folder: Path, **extra) -> pd.DataFrame:
    """The CSV rows of one case, less the timing columns."""
    register()
    out = folder / f"{case}.csv"
    Experiment(RunConfig(output=str(out), **BASE, **CASES[case], **extra)).run()
    return pd.read_csv(out, dtype=str, keep_default_na=False).drop(columns=TIMING)


@pytest.fixture
def toy_task():
    """The toy conv task, registered for one test only (other tests list the registered tasks)."""
    yield register()
    TASKS.unregister("golden_digits_conv")


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_rows_are_unchanged(case, tmp_path, toy_task):
    extra = {"structured_bn": "keep"} if case == "digits_conv_bn" else {}
    got = rows(case, tmp_path, **extra)
    expected = pd.read_csv(GOLDEN / f"{case}.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(got, expected)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            rows(name, Path(folder)).to_csv(GOLDEN / f"{name}.csv", index=False, lineterminator="\n")
