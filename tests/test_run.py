"""End to end: the CLI trains, sweeps after every epoch and writes the CSV and metadata."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from tasks import get_task
from tests.helpers import shared_mnist_dir

# magnitude and random read no sample: asking for more than the 1,437 training images costs nothing
SMALL = dict(epochs=2, thresholds=[0.0, 0.25, 0.5, 0.75, 1.0], importance_samples=5000, progress=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results.csv"
    experiment = Experiment(RunConfig(output=str(out), measures=["magnitude", "random"], **SMALL))
    experiment.run()
    return experiment, out


def test_a_row_for_every_epoch_measure_aggregation_threshold(digits_run):
    experiment, out = digits_run
    frame = pd.read_csv(out)
    assert list(frame.columns) == results.COLUMNS
    keys = ["epoch", "measure", "aggregation", "threshold"]
    assert len(frame) == 2 * 2 * 2 * 5  # 'filter' is skipped: the digits MLP has no conv layer
    assert not frame.duplicated(keys).any()
    assert set(frame["aggregation"]) == {"weight", "unit"}
    assert set(frame.loc[frame.aggregation == "weight", "pooling"]) == {"none"}
    assert np.isfinite(frame[["val_loss", "val_accuracy", "sparsity", "measure_seconds"]].to_numpy()).all()


def test_val_loss_at_zero_is_the_models_validation_loss(digits_run):
    experiment, out = digits_run
    frame = pd.read_csv(out)
    at_zero = frame[(frame.epoch == 2) & (frame.threshold == 0.0)]
    model = experiment.bench.model
    model.compile(loss=experiment.bench.loss, metrics=["accuracy"])
    loss, accuracy = model.evaluate(experiment.bench.data.x_val, experiment.bench.data.y_val, verbose=0)
    np.testing.assert_allclose(at_zero["val_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(at_zero["val_accuracy"], accuracy, atol=1e-6)
    assert (at_zero["sparsity"] == 0).all()


def test_sparsity_reaches_one_and_chance_loss_with_zeroed_kernels(digits_run):
    _, out = digits_run
    frame = pd.read_csv(out)
    full = frame[frame.threshold == 1.0]
    assert (full["sparsity"] == 1.0).all()
    # every kernel zeroed: the logits are the last bias alone, identical for all examples
    assert full["val_loss"].nunique() <= 2


def test_metadata_beside_the_csv(digits_run):
    experiment, out = digits_run
    meta = json.loads(results.sidecar(out, experiment.run_id, ".json").read_text())
    assert meta["run_id"] == experiment.run_id
    assert meta["config"]["measures"] == ["magnitude", "random"]
    assert meta["versions"]["tensorflow"] and meta["versions"]["keras"].startswith("3")
    assert meta["num_classes"] == 10 and meta["data"]["n_train"] > 0
    assert {c["aggregation"] for c in meta["conditions"]} == {"unit", "weight"}
    assert any("'filter' is skipped" in note for note in meta["notes"])
    assert meta["importance_samples_drawn"] == meta["data"]["n_train"] == 1437
    assert "importance_samples=5000 exceeds the 1437 training examples of digits; all 1437 are used" in meta["notes"][1]
    assert meta["complete"]["rows"] == {"results": 40}
    assert [e["epoch"] for e in meta["epochs"]] == [0, 1, 2]


def _files(folder) -> dict:
    """Every file's bytes; a run's metadata without ``request`` (the key a CLI rerun records, harness/cli/instant.py)."""
    found = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return {name: {k: v for k, v in json.loads(data).items() if k != "request"} if name.endswith(".json") else data
            for name, data in found.items()}


def test_a_finished_run_run_again_is_complete_and_recomputes_nothing(digits_run, capsys, monkeypatch):
    _, out = digits_run
    before = _files(out.parent)

    def no_data(self, data_dir=None):
        raise AssertionError("a complete run loaded its data")

    monkeypatch.setattr(type(get_task("digits")), "load", no_data)
    argv = ["--measures", "magnitude", "random", "--epochs", "2", "--thresholds", "0", "0.25", "0.5", "0.75", "1",
            "--importance-samples", "5000", "--no-progress", "--output", str(out)]
    assert main(argv) == 0
    assert main([*argv, "--resume"]) == 0
    assert f"is already complete in {out}" in capsys.readouterr().out
    assert _files(out.parent) == before


def test_end_of_run_summary(digits_run):
    experiment, out = digits_run
    text = experiment.summary()
    assert f"{experiment.rows_written} rows written" in text and experiment.rows_written == 40
    assert str(out) in text and str(experiment.store.log_path) in text and "epoch-2" in text
    assert text.endswith(f"next: python analysis.py {out}")
    epochs = [line.split() for line in text.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [float(e[2]) for e in epochs] == [round(h["val_loss"], 4) for h in experiment.history[1:]]


@pytest.mark.slow
@pytest.mark.skipif(shared_mnist_dir() is None, reason="real MNIST test split not found: put t10k-images-idx3-ubyte.gz and "
                    "t10k-labels-idx1-ubyte.gz (MNIST's official test files) in ../shared/data/mnist beside the clone")
def test_mnist_mlp_from_the_cli_on_the_shared_split(tmp_path):
    out = tmp_path / "mnist.csv"
    argv = ["--task", "mnist", "--model", "mlp", "--data-dir", str(shared_mnist_dir()), "--epochs", "1",
            "--measures", "magnitude", "--aggregations", "unit", "--thresholds", "0", "0.5", "1",
            "--importance-samples", "100", "--output", str(out), "--no-progress"]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 3 and (frame.task == "mnist").all()
    assert frame.loc[0, "val_accuracy"] > 0.8  # one epoch on 8,000 real images
    meta = json.loads(next(tmp_path.glob("mnist.*.json")).read_text())
    assert "t10k" in meta["data"]["split"]


@pytest.mark.slow
def test_layer_and_global_scopes_and_both_replacements(tmp_path):
    out = tmp_path / "r.csv"
    config = RunConfig(output=str(out), measures=["magnitude"], aggregations=["unit"], scopes=["layer", "global"],
                       normalizations=["none", "max"], replacements=["zero", "random"], poolings=["mean", "l2"],
                       epochs=1, thresholds=[0.0, 0.5], importance_samples=8, progress=False)
    Experiment(config).run()
    frame = pd.read_csv(out)
    combos = frame.groupby(["pooling", "scope", "normalization", "replacement"]).size()
    # layer scope has normalization "none" only: 2 poolings x (1 + 2) scope/normalization x 2 replacements
    assert len(combos) == 12 and (combos == 2).all()
    keras.backend.clear_session()


@pytest.mark.slow
def test_both_removal_orders_are_rows_of_one_sweep_grid(tmp_path):
    out = tmp_path / "o.csv"
    config = RunConfig(output=str(out), measures=["magnitude"], aggregations=["weight"], orders=["least", "most"],
                       epochs=1, thresholds=[0.0, 0.5, 1.0], importance_samples=8, progress=False)
    experiment = Experiment(config)
    experiment.run()
    frame = pd.read_csv(out).set_index(["order", "threshold"])
    assert sorted(frame.index.get_level_values("order").unique()) == ["least", "most"]
    for t in (0.0, 1.0):  # nothing or everything replaced: the order cannot matter
        assert frame.loc[("least", t), "val_loss"] == pytest.approx(frame.loc[("most", t), "val_loss"], rel=1e-6)
    # removing the half with the largest magnitudes hurts more than removing the smallest half
    assert frame.loc[("most", 0.5), "val_loss"] > frame.loc[("least", 0.5), "val_loss"]
    assert frame.loc[("most", 0.5), "sparsity"] == frame.loc[("least", 0.5), "sparsity"]
    keras.backend.clear_session()
