"""Seed 002's open settings (output layer and loss, fork passes) and the input-statistics baseline."""

import json

import numpy as np
import pytest
from scipy import stats

from harness.experiments.localize import LocalizeConfig
from harness.experiments.localize.__main__ import main
from harness.experiments.localize.experiment import OneHotSquaredError, build_model, input_baseline, load_data, run_seed
from harness.experiments.localize.stats import partial

TINY = dict(task="digits", hidden=4, phase1_examples=16, fork_examples=8, progress=False)


def test_partial_correlation_is_the_correlation_of_residuals():
    rng = np.random.default_rng(0)
    q = rng.normal(size=500)
    r = q + rng.normal(size=500)
    s = 2 * q + 0.3 * r + rng.normal(size=500)
    got = partial(r, s, q)
    residual = [v - np.polyval(np.polyfit(q, v, 1), q) for v in (s, r)]
    want = stats.pearsonr(*residual).statistic
    assert got["partial_r"] == pytest.approx(want, rel=1e-9)
    assert got["baseline_r2"] == pytest.approx(stats.pearsonr(s, q).statistic ** 2, rel=1e-9)
    t = want * np.sqrt(497 / (1 - want**2))
    assert got["partial_p"] == pytest.approx(2 * stats.t.sf(abs(t), 497), rel=1e-6)
    s[0] = np.nan
    assert partial(r, s, q)["n"] == 499 and np.isnan(partial(r[:3], s[:3], q[:3])["partial_r"])


def test_one_hot_squared_error_by_hand():
    y, f = np.array([0, 1]), np.array([[0.8, 0.1], [0.3, 0.5]], np.float32)
    want = np.mean([((1 - 0.8) ** 2 + 0.1**2) / 2, (0.3**2 + (1 - 0.5) ** 2) / 2])
    assert float(OneHotSquaredError()(y, f)) == pytest.approx(want, rel=1e-6)


def test_input_baseline_by_hand():
    model = build_model(3, 2, "softplus", seed=0, output_layer="sigmoid")
    assert model.get_layer("output").get_config()["activation"] == "sigmoid"
    x = np.array([[1, 0, 2], [3, 0, 2], [0, 0, 4], [9, 9, 9]], np.float32)
    y = np.array([1, 7, 6, 5])  # class 5 is in neither group: left out
    q = input_baseline(model, x, y, [[1, 7], [6, 8]])
    np.testing.assert_allclose(q[0][:, 0], [2 / (4 / 3), np.nan, 2 / (8 / 3)])
    h = np.asarray(model.get_layer("hidden")(x[:3]), np.float64)
    np.testing.assert_allclose(q[1], h[:2].mean(0) / h.mean(0), rtol=1e-6)
    np.testing.assert_allclose(q[2], np.repeat(q[1][:, None], 2, axis=1))
    np.testing.assert_array_equal(q[3], 1)
    assert [a.shape for a in q] == [tuple(v.shape) for v in model.trainable_variables]


@pytest.mark.slow
def test_fork_passes_train_each_fork_longer_from_the_same_phase_one():
    one, two = (LocalizeConfig(**TINY, fork_passes=k, output_layer="softplus") for k in (1, 2))
    data = load_data(one)
    runs = [run_seed(config, data, seed=0) for config in (one, two)]
    assert runs[0].facts["phase1_end_checksum"] == runs[1].facts["phase1_end_checksum"]
    assert {f["steps"] for f in runs[1].facts["forks"].values()} == {8}
    for name in runs[0].forks:
        assert not all(np.array_equal(a, b) for a, b in zip(runs[0].forks[name], runs[1].forks[name]))
    assert len(runs[1].baseline) == 4 and np.isfinite(runs[1].baseline[0]).any()


def test_defaults_keep_the_run_ids_of_committed_results():
    committed = json.loads(open("data/examples/localize/softplus/result.json").read())
    settings = {k: v for k, v in committed["settings"].items()}
    assert LocalizeConfig(**settings).run_id == committed["run_id"]
    assert LocalizeConfig(**settings, fork_passes=2).run_id != committed["run_id"]


@pytest.mark.parametrize("bad", [dict(output_layer="tanh"), dict(fork_passes=0), dict(fork_passes=1.5)])
def test_bad_new_settings_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="Received|Unknown"):
        LocalizeConfig(**bad)
    flag, value = next(iter(bad.items()))
    out = tmp_path / "out"
    if isinstance(value, str):
        assert main([f"--{flag.replace('_', '-')}", value, "--output", str(out), "--no-progress"]) == 2
        assert not out.exists()


@pytest.mark.slow
def test_end_to_end_records_the_baseline(tmp_path):
    out = tmp_path / "result"
    args = ["--task", "digits", "--hidden", "4", "--phase1-examples", "16", "--fork-examples", "8",
            "--output-layer", "sigmoid", "--output", str(out), "--no-progress"]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert set(result["seeds"][0]["stats"]["baseline"]["weights"]) >= {"baseline_r2", "partial_r", "partial_p"}
    assert result["summary"]["weights"]["partial_r"]["n_seeds"] == 1
    assert "sigmoid out, squared error" in result["model"]


