"""Which epochs are swept, the sweep options' bad values, and the cost columns of a run."""

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import config_from_args, main, parser
from harness.pipeline.config import RunConfig, swept_epochs
from harness.pipeline.experiment import Experiment


@pytest.mark.parametrize("spec,expected", [("all", {1, 2, 3, 4, 5, 6}), ("every:2", {2, 4, 6}), ("every:5", {5}),
                                           ("every:7", set()), ([1, 6], {1, 6})])
def test_sweep_epochs_spellings(spec, expected):
    assert swept_epochs(spec, 6) == expected
    assert RunConfig(epochs=6, sweep_epochs=spec).sweeps_after(6) == (6 in expected)


@pytest.mark.parametrize("kwargs,message", [
    (dict(sweep_epochs="every:0"), r"sweep_epochs must be 'all', 'every:N' .*Received: sweep_epochs='every:0'"),
    (dict(sweep_epochs="each:2"), r"Received: sweep_epochs='each:2'"),
    (dict(sweep_epochs=[0, 1]), r"list of epochs in \[1, 5\]. Received: sweep_epochs=\[0, 1\]"),
    (dict(sweep_epochs=[4], epochs=3), r"in \[1, 3\]. Received: sweep_epochs=\[4\]"),
    (dict(sweep_epochs=[1, 1]), r"sweep_epochs has duplicates"),
    (dict(sweep_epochs=[]), r"sweep_epochs must be a non-empty list"),
    (dict(sweep_epochs=[True]), r"Received: sweep_epochs=\[True\]"),
    (dict(sweep_method="fast"), r"Unknown sweep method 'fast'; available: \['auto', 'masked', 'shrunk', 'batched'\]"),
    (dict(xla="yes"), r"xla must be true or false. Received: xla='yes'"),
])
def test_bad_sweep_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kwargs)


@pytest.mark.slow
def test_cli_sweep_options(capsys, tmp_path):
    args = parser().parse_args(["--epochs", "4", "--sweep-epochs", "2", "4", "--sweep-method", "masked"])
    config = config_from_args(args)
    assert config.sweep_epochs == [2, 4] and config.sweep_method == "masked"
    assert config_from_args(parser().parse_args(["--sweep-epochs", "every:3"])).sweep_epochs == "every:3"
    assert config.run_id == RunConfig(epochs=4, sweep_epochs=[4, 2]).run_id  # the method does not define results
    assert main(["--sweep-epochs", "2", "x", "--output", str(tmp_path / "r.csv")]) == 2
    assert "Received: sweep_epochs=['2', 'x']" in capsys.readouterr().err


@pytest.mark.slow
def test_only_the_chosen_epochs_are_swept_and_costs_are_recorded(tmp_path):
    out = tmp_path / "r.csv"
    config = RunConfig(output=str(out), measures=["magnitude"], aggregations=["unit", "weight"], epochs=2,
                       sweep_epochs=[2], thresholds=[0.0, 0.5, 1.0], importance_samples=32, progress=False)
    Experiment(config).run()
    frame = pd.read_csv(out)
    assert set(frame["epoch"]) == {2} and len(frame) == 2 * 3
    full = frame[frame.threshold == 0.0]
    assert (full["params_remaining"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10).all()
    assert (full["flops"] == 2 * (64 * 32 + 32 * 16 + 16 * 10)).all()
    assert (np.diff(frame.groupby("aggregation")["flops"].apply(list).loc["unit"]) < 0).all()
