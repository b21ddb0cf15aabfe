"""Seed 002's update-tally experiment: statistics on hand-made arrays, the plan, the tallies, forks, CLI."""

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from harness.experiments.localize import LocalizeConfig
from harness.experiments.localize.__main__ import main
from harness.experiments.localize.experiment import LOSS, binary, build_model, fork_names, load_data, plan, run_seed
from harness.experiments.localize.stats import correlate, fork_differences, pixel_map, relative, spread
from harness.pipeline.seed import derived_seed, seed_everything

TINY = dict(task="digits", hidden=4, phase1_examples=16, fork_examples=8, progress=False)


def test_relative_and_fork_differences_on_hand_made_arrays():
    np.testing.assert_allclose(relative([1.0, 0.0, 3.0, 0.0], [1.0, 0.0, 1.0, 2.0]), [0.5, np.nan, 0.75, 0.0])
    forks = [[np.array([1.0, 2.0])], [np.array([0.5, 2.0])], [np.array([0.0, 0.0])], [np.array([1.0, 0.0])]]
    (c,), (d,) = fork_differences(forks)
    np.testing.assert_allclose(c, [0.5, 0.0])
    np.testing.assert_allclose(d, [1.0, 0.0])
    np.testing.assert_allclose(relative(c, d), [1 / 3, np.nan])  # the second parameter agrees in all four forks: 0/0


def test_correlate_leaves_out_undefined_pairs():
    r = np.array([0.1, 0.2, 0.3, 0.4, np.nan, 0.5])
    s = np.array([0.3, 0.5, 0.7, 0.9, 0.2, np.nan])
    out = correlate(r, s)
    assert out["n"] == 4 and out["n_undefined"] == 2
    assert out["pearson_r"] == pytest.approx(1.0) and out["r2"] == pytest.approx(1.0)
    assert out["spearman_rho"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x, noise = rng.random(200), rng.standard_normal(200)
    y = x + noise
    expected = np.corrcoef(x, y)[0, 1]
    assert correlate(x, y)["r2"] == pytest.approx(expected**2, rel=1e-9)
    assert math.isnan(correlate([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])["r2"])  # constant r: no correlation defined
    assert math.isnan(correlate([0.1, 0.2], [0.1, 0.2])["r2"])  # fewer than 3 pairs


def test_pixel_map_and_spread():
    r = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    s = np.array([[0.2, 0.4, 0.6], [0.6, 0.4, 0.2], [0.1, 0.2, 0.3]])
    np.testing.assert_allclose(pixel_map(r, s), [1.0, -1.0, np.nan])
    out = spread([0.1, 0.2, 0.3])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert out["mean"] == pytest.approx(0.2) and out["std"] == pytest.approx(0.1)
    np.testing.assert_allclose(out["ci95"], [0.2 - half, 0.2 + half])


@pytest.mark.parametrize("groups", [[[1, 7], [7, 8]], [[1, 7], [6, 10]], [[], [6, 8]], [[1, 7]], [[1], [6, 8]],
                                    [[1, 7], [6, -1]], [[1, 1], [6, 8]], "17,68"])
def test_bad_groups_are_refused_before_any_data(groups, tmp_path):
    with pytest.raises(ValueError, match="Received: groups="):
        LocalizeConfig(groups=groups)
    out = tmp_path / "out"
    assert main(["--groups", json.dumps(groups), "--output", str(out), "--no-progress"]) == 2
    assert not out.exists()


@pytest.mark.parametrize("bad", [dict(activation="tanh"), dict(tally="last"), dict(hidden=0), dict(batch_size=1.5),
                                 dict(phase1_examples=10), dict(fork_examples=7), dict(learning_rate=0),
                                 dict(seeds=[]), dict(seeds=[1, 1]), dict(inputs="raw")])
def test_bad_settings(bad):
    with pytest.raises(ValueError, match="Received|Unknown"):
        LocalizeConfig(**bad)


def test_plan_balances_phase_one_and_pairs_the_forks():
    config = LocalizeConfig(**TINY)
    y = load_data(config).y
    index = plan(y, config, seed=3)
    for half in ("first", "second"):
        assert sorted(np.bincount(y[index[half]], minlength=10)[[1, 7, 6, 8]]) == [2, 2, 2, 2]
    names = fork_names(config.groups)
    assert names == ["1 vs 6+8", "7 vs 6+8", "1+7 vs 6", "1+7 vs 8"]
    for name in names:
        assert len(index[name]) == 8 and not set(index[name]) & (set(index["first"]) | set(index["second"]))
    assert np.array_equal(index[names[0]][4:], index[names[1]][4:])  # the shared side: same examples, same slots
    assert np.array_equal(index[names[2]][:4], index[names[3]][:4])
    assert set(y[index[names[0]][:4]]) == {1} and set(y[index[names[1]][:4]]) == {7}
    assert set(y[index[names[2]][4:]]) == {6} and set(y[index[names[3]][4:]]) == {8}
    with pytest.raises(ValueError, match="Too few examples"):
        plan(y, LocalizeConfig(**dict(TINY, phase1_examples=800)), seed=0)


@pytest.mark.slow
def test_tallies_match_a_per_example_loop_and_forks_start_from_the_same_weights():
    config = LocalizeConfig(**TINY)
    data = load_data(config)
    run = run_seed(config, data, seed=1)
    forks = run.facts["forks"]
    assert {f["start_checksum"] for f in forks.values()} == {run.facts["phase1_end_checksum"]}
    finals = [np.concatenate([w.ravel() for w in weights]) for weights in run.forks.values()]
    assert all(not np.array_equal(finals[0], other) for other in finals[1:])
    index = plan(data.y, config, seed=1)
    seed_everything(1)
    model = build_model(data.x.shape[1], config.hidden, config.activation, derived_seed(1, 1) % 2**30)
    optimizer = keras.optimizers.SGD(config.learning_rate)
    for epoch, half in enumerate(("first", "second"), start=1):
        rows = index[half][np.random.default_rng([1, epoch]).permutation(len(index[half]))]
        expected = [np.zeros((2, *w.shape)) for w in model.trainable_variables]
        for i in rows:
            label = binary(data.y[[i]], config.groups)
            with tf.GradientTape() as tape:
                loss = LOSS(label, model(data.x[[i]], training=True))
            old = [w.numpy().astype(np.float64) for w in model.trainable_variables]
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            for tally, w, before in zip(expected, model.trainable_variables, old):
                tally[label[0]] += np.abs(w.numpy() - before)
        for got, want in zip(run.tallies[half], expected):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-8)
    for got, first, second in zip(run.tallies["all"], run.tallies["first"], run.tallies["second"]):
        np.testing.assert_allclose(got, first + second)


@pytest.mark.slow
def test_end_to_end_writes_table_json_and_figures(tmp_path):
    toml = tmp_path / "localize.toml"
    toml.write_text('activation = "sigmoid"\nseeds = [0, 1]\n')
    out = tmp_path / "result"
    args = ["--config", str(toml), "--task", "digits", "--hidden", "4", "--phase1-examples", "16",
            "--fork-examples", "8", "--output", str(out), "--no-progress"]
    assert main(args) == 0
    frame = pd.read_csv(out / "parameters.csv")
    assert list(frame.columns) == ["seed", "parameter", "kind", "layer", "input", "unit", "a", "b", "r", "c", "d", "s", "q"]
    assert len(frame) == 2 * (64 * 4 + 4 + 4 * 2 + 2) and set(frame["kind"]) == {"weight", "bias"}
    assert frame.loc[frame["kind"] == "bias", "input"].isna().all()
    result = json.loads((out / "result.json").read_text())
    assert result["settings"]["activation"] == "sigmoid" and result["settings"]["seeds"] == [0, 1]
    assert result["summary"]["weights"]["r2"]["n_seeds"] == 2
    seed0 = result["seeds"][0]["stats"]["weights"]
    rows = frame[(frame["seed"] == 0) & (frame["kind"] == "weight")]
    assert seed0["n"] == rows[["r", "s"]].notna().all(axis=1).sum()
    assert seed0["r2"] == pytest.approx(correlate(rows["r"].to_numpy(), rows["s"].to_numpy())["r2"], rel=1e-4)
    for seed in (0, 1):
        assert (out / f"scatter_seed{seed}.png").stat().st_size > 0 and (out / f"pixel_map_seed{seed}.png").exists()
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(args) == 0  # the same run again: reported complete, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written
    assert main([*args, "--hidden", "5"]) == 2  # another run's result is never overwritten
