"""Metrics, planned families and effect sizes of the analysis, against hand computation and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import analysis
from reports import pairs as pair_stats
from reports.metrics import parse_metric, value_at

S = np.round(np.linspace(0.0, 1.0, 11), 10)


def _run(treatment, seed, loss, accuracy, model="mlp", measure=None):
    """One run's sweep: ``loss`` and ``accuracy`` are arrays over the sparsities ``S``."""
    return pd.DataFrame({
        "run_id": f"{model}{seed}", "task": "digits", "model": model, "seed": seed, "epoch": 1,
        "measure": measure or treatment, "aggregation": "weight", "pooling": "none", "scope": "layer",
        "normalization": "none", "replacement": "zero", "threshold": S, "sparsity": S, "n_replaced": 0,
        "val_loss": loss, "val_accuracy": accuracy, "measure_seconds": 0.1, "sweep_seconds": 0.1,
        "num_classes": 10.0,
    })  # fmt: skip


def _disagreeing_study(n_seeds=8):
    """A keeps the loss lower over the curve (loss AUC: A first) but collapses at 90% (accuracy at 0.9: B first)."""
    parts = []
    for seed in range(n_seeds):
        jitter = 0.001 * seed
        a_acc = np.where(S < 0.85, 0.95 - 0.1 * S, 0.3) + jitter
        b_acc = np.where(S < 0.85, 0.95 - 0.2 * S, 0.7) - jitter
        parts += [_run("A", seed, 0.3 + 0.2 * S + jitter, a_acc), _run("B", seed, 0.3 + 0.4 * S - jitter, b_acc)]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.slow
def test_loss_auc_and_accuracy_at_disagree_and_the_report_says_so():
    result = analysis.analyze(_disagreeing_study(), metric=["loss_auc", "accuracy_at:0.9"])
    loss, accuracy = result["metrics"]["loss_auc"]["tests"].iloc[0], result["metrics"]["accuracy_at:0.9"]["tests"].iloc[0]
    assert (loss["best"], loss["second"], accuracy["best"], accuracy["second"]) == ("A", "B", "B", "A")
    assert accuracy["best_mean"] == pytest.approx(0.7 - 0.001 * 3.5) and accuracy["second_mean"] == pytest.approx(0.3035)
    (line,) = result["disagreements"]["line"]
    assert line.startswith("loss AUC ranks A first; accuracy at 0.9 ranks B first, 8 of 8 seeds")
    assert "The choice of metric decides" in analysis.format_report(result) and line in analysis.format_report(result)
    one = analysis.analyze(_disagreeing_study(), metric=["loss_auc", "loss_at:0.5"])
    assert one["disagreements"].empty  # both prefer A: no line


def test_metric_values_against_hand_computation():
    run = _run("A", 0, 0.3 + 0.2 * S, 0.95 - 0.5 * S**2)
    scores = analysis.run_scores(run, metrics=["accuracy_auc", "accuracy_at:0.45", "loss_at:0.45"]).iloc[0]
    assert scores["accuracy_auc"] == pytest.approx(integrate.trapezoid(0.95 - 0.5 * S**2, S), abs=1e-12)
    assert scores["loss_at:0.45"] == pytest.approx(0.3 + 0.2 * 0.45, abs=1e-12)  # linear: exact
    between = (0.95 - 0.5 * 0.4**2 + 0.95 - 0.5 * 0.5**2) / 2  # halfway between the points at 0.4 and 0.5
    assert scores["accuracy_at:0.45"] == pytest.approx(between, abs=1e-12)
    assert value_at([1.0, 0.0, 0.5], [5.0, 1.0, 3.0], 0.75) == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"sparsity 0.95 lies outside the measured sparsities \[0.1, 0.9\]"):
        value_at([0.1, 0.9], [1.0, 2.0], 0.95)
    assert parse_metric("accuracy_at:0.90").name == "accuracy_at:0.9" and not parse_metric("accuracy_auc").lower_is_better


def test_accuracy_at_outside_a_runs_curve_is_refused_naming_the_run():
    df = _disagreeing_study(2)
    message = r"accuracy_at:0.9: sparsity 0.9 lies outside .* \[0, 0.8\] of run \(measure=A, epoch=1, run_id=mlp0\)"
    with pytest.raises(ValueError, match=message):
        analysis.analyze(df[df.sparsity <= 0.8], metric="accuracy_at:0.9")


def _random_study(n_seeds=7, treatments=("c", "t1", "t2", "t3")):
    rng = np.random.default_rng(3)
    parts = []
    for seed in range(n_seeds):
        for k, name in enumerate(treatments):
            slope = 0.2 + 0.03 * k + rng.normal(0, 0.02)
            parts.append(_run(name, seed, 0.3 + slope * S, 0.9 - slope * S))
    return pd.concat(parts, ignore_index=True)


def _auc(df, name):
    part = df[df.measure == name].sort_values(["seed", "sparsity"])
    return part.groupby("seed").apply(lambda g: integrate.trapezoid(g.val_loss, g.sparsity), include_groups=False)


def test_control_family_holm_over_k_minus_1_tests_against_scipy():
    df = _random_study()
    result = analysis.analyze(df, control="c")
    pairs = result["pairs"]
    assert list(zip(pairs.a, pairs.b, strict=True)) == [("c", "t1"), ("c", "t2"), ("c", "t3")]
    raw = np.array([stats.wilcoxon(_auc(df, "c"), _auc(df, t)).pvalue for t in ("t1", "t2", "t3")])
    np.testing.assert_allclose(pairs["p_raw"], raw, rtol=1e-12)
    order = np.argsort(raw)
    expected = np.minimum(np.maximum.accumulate(raw[order] * np.array([3, 2, 1])), 1)  # Holm factor k - 1 = 3
    np.testing.assert_allclose(pairs["p_adjusted"].to_numpy()[order], expected, rtol=1e-12)
    assert (pairs["family"] == "3 tests against the control c").all()
    assert "3 tests against the control c" in result["tests"]["family"].iloc[0]


@pytest.mark.slow
def test_pairs_family_holm_over_the_listed_pairs_and_power_note_names_it():
    df = _random_study(n_seeds=5)
    result = analysis.analyze(df, pairs=["t1:t3", "c:t2"])
    pairs = result["pairs"]
    raw = np.array([stats.wilcoxon(_auc(df, a), _auc(df, b)).pvalue for a, b in (("t1", "t3"), ("c", "t2"))])
    np.testing.assert_allclose(pairs["p_raw"], raw, rtol=1e-12)
    np.testing.assert_allclose(pairs["p_adjusted"], pair_stats.holm(raw), rtol=1e-12)
    assert pair_stats.holm(np.array([0.01, 0.04])) == pytest.approx([0.02, 0.04])  # factor = number of pairs, 2
    note = result["tests"]["note"].iloc[0]
    assert "under Holm over 2 listed pairs no pair can reach alpha 0.05; that needs >= 7 seeds" in note
    everything = analysis.analyze(df)
    assert len(everything["pairs"]) == 6 and (everything["pairs"]["family"] == "all 6 pairs").all()
    assert not analysis.analyze(df, pairs=["t1:t3"])["pvalues"][("digits", "mlp", 1, "weight", "none", "layer", "none",
                                                                 "zero")].isna().all().all()  # fmt: skip


def test_effect_sizes_against_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0.0, 0.0, 4.0, 1.0, 5.0])  # d = 1, 2, -1, 3, 0
    row = pair_stats._pair_row(a, b, "a", "b", parse_metric("loss_auc"))
    # |d| ranks over the non-zero d: 1 -> 1.5, 2 -> 3, 1 -> 1.5, 3 -> 4; R+ = 8.5, R- = 1.5; r = 7 / 10
    assert row["rank_biserial"] == pytest.approx(0.7)
    assert row["median_difference"] == 1.0 and row["direction"] == "b better"  # lower loss is better
    assert (row["wins"], row["ties"], row["losses"]) == (1, 1, 3)
    assert row["p_raw"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    direct = stats.bootstrap((a - b,), np.median, method="percentile", n_resamples=9999,
                             random_state=np.random.default_rng(0)).confidence_interval  # fmt: skip
    assert (row["median_lo"], row["median_hi"]) == pytest.approx((direct.low, direct.high))
    higher = pair_stats._pair_row(a, b, "a", "b", parse_metric("accuracy_auc"))
    assert (higher["wins"], higher["losses"], higher["direction"]) == (3, 1, "a better")
    assert pair_stats.rank_biserial(np.zeros(4)) == 0.0 and pair_stats.wilcoxon_p(np.zeros(4)) == 1.0


@pytest.mark.slow
def test_best_and_second_by_mean_rank_with_both_means():
    df = _random_study()
    tables = analysis.analyze(df, metric="accuracy_auc")
    test, ranking = tables["tests"].iloc[0], tables["ranking"].set_index("treatment")
    assert test["best"] == "c" and test["best_mean"] == pytest.approx(ranking.loc["c", "mean"])  # flattest: most accuracy
    assert test["second_mean"] == pytest.approx(ranking.loc[test["second"], "mean"])
    assert ranking.loc["c", "mean_rank"] == ranking["mean_rank"].min()
    assert "its mean" in analysis.format_report(tables)


def _two_models(n_seeds=6):
    parts = []
    for seed in range(n_seeds):
        for measure, slope in (("magnitude", 0.2), ("obd", 0.3)):
            parts.append(_run(measure, seed, 0.3 + slope * S + 0.001 * seed, 0.9 - slope * S, "mlp"))
            parts.append(_run(measure, seed, 0.3 + (slope + 0.1) * S, 0.9 - slope * S, "cnn"))
    return pd.concat(parts, ignore_index=True)


def test_compare_model_on_a_study_of_two_models():
    result = analysis.analyze(_two_models(), compare="model")
    assert sorted(result["tests"]["measure"]) == ["magnitude", "obd"] and (result["tests"]["best"] == "mlp").all()
    assert set(result["pairs"]["a"]) | set(result["pairs"]["b"]) == {"cnn", "mlp"}
    assert (result["pairs"]["wins"] + result["pairs"]["losses"] == 6).all()


@pytest.mark.slow
def test_mean_rank_over_conditions_is_given_per_model_never_pooled():
    matrix = analysis.analyze(_two_models())["mean_ranks"]
    assert [c for c in matrix.columns if c.startswith("mean")] == ["mean model=cnn", "mean model=mlp"]


def test_where_keeps_only_the_named_treatments():
    result = analysis.analyze(_random_study(), where=["measure=c,t2"])
    assert sorted(result["ranking"]["treatment"]) == ["c", "t2"]


@pytest.mark.slow
def test_at_table_means_over_seeds_with_intervals():
    table = analysis.analyze(_disagreeing_study(), at=[0.5, 0.9])["at"].set_index(["treatment", "sparsity"])
    jitter = 0.001 * np.arange(8)
    assert table.loc[("A", 0.9), "accuracy"] == pytest.approx(np.mean(0.3 + jitter))
    assert table.loc[("B", 0.5), "loss"] == pytest.approx(np.mean(0.3 + 0.4 * 0.5 - jitter))
    assert (table["accuracy_lo"] <= table["accuracy"]).all() and (table["n_seeds"] == 8).all()
