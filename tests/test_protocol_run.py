"""End to end: controls and recoveries as rows of one run, training untouched by them, options from the CLI and TOML."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from harness.cli.main import config_from_args, parser
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment

SMALL = dict(measures=["magnitude", "random"], aggregations=["unit"], epochs=2, thresholds=[0.0, 0.5, 1.0],
             importance_samples=8, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("protocol")
    plain = Experiment(RunConfig(output=str(folder / "plain.csv"), **SMALL))
    plain.run()
    full = Experiment(RunConfig(output=str(folder / "full.csv"), controls=["random_matched", "shuffled"],
                                recoveries=["none", "bn", "finetune:steps=3"], **SMALL))
    full.run()
    keras.backend.clear_session()
    return plain, full


@pytest.mark.slow
def test_every_measure_control_and_recovery_is_a_complete_sweep(runs):
    _, full = runs
    frame = pd.read_csv(full.path)
    assert list(frame.columns) == results.COLUMNS and results.COLUMNS.index("recovery") == results.COLUMNS.index("order") + 1
    measures = {f"{m}{c}" for m in ("magnitude", "random") for c in ("", "~random_matched", "~shuffled")}
    assert set(frame["measure"]) == measures
    assert set(frame["recovery"]) == {"none", "finetune:steps=3"}  # bn is skipped: the digits MLP has no BatchNorm
    assert frame.groupby(["epoch", "measure", "recovery"]).size().eq(3).all() and len(frame) == 2 * 6 * 2 * 3
    meta = json.loads(full.store.metadata_path.read_text())
    assert any("recovery 'bn' is skipped: model 'mlp' has no BatchNormalization layer" in n for n in meta["notes"])
    assert meta["complete"]["rows"] == {"results": 72}
    by_measure = frame[frame.recovery == "none"].set_index(["measure", "threshold"])["n_replaced"]
    for control in ("~random_matched", "~shuffled"):  # a Dense layer's units have one size: the same counts
        assert by_measure.loc[f"magnitude{control}"].equals(by_measure.loc["magnitude"])


@pytest.mark.slow
def test_finetune_recovers_and_leaves_training_and_the_plain_rows_unchanged(runs):
    plain, full = runs
    # epoch 2 trains from bit-identical weights and optimizer state after epoch 1's sweeps: the same losses
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in plain.history]
    ours = pd.read_csv(full.path).query("recovery == 'none' and measure in ['magnitude', 'random']")
    theirs = pd.read_csv(plain.path)
    np.testing.assert_array_equal(ours["val_loss"].to_numpy(), theirs["val_loss"].to_numpy())
    tuned = pd.read_csv(full.path).query("recovery == 'finetune:steps=3' and measure == 'magnitude'")
    half = theirs.query("measure == 'magnitude' and threshold == 0.5")["val_loss"].to_numpy()
    assert (tuned.query("threshold == 0.5")["val_loss"].to_numpy() < half).all()  # 3 steps recover a little


def test_options_from_the_cli_and_toml_are_the_same_run(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('controls = ["shuffled"]\nrecoveries = ["none", "finetune:steps=050"]\n')
    cli = config_from_args(parser().parse_args(["--controls", "shuffled", "--recoveries", "none", "finetune:steps=50"]))
    from_toml = config_from_args(parser().parse_args(["--config", str(toml)]))
    assert cli.run_id == from_toml.run_id and cli.recoveries == ["none", "finetune:steps=50"]
    assert config_from_args(parser().parse_args(["--controls"])).controls == []
    assert RunConfig().controls == [] and RunConfig().recoveries == ["none"]
