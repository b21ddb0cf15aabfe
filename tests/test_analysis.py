"""Known-answer tests for analysis.py: scores, intervals, tests with seeds as blocks, loading, figures, CLI."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from scipy import integrate, stats

import analysis

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = np.linspace(0.0, 1.0, 11)
CENTERS = {"good": 0.8, "mid": 0.6, "bad": 0.4}  # loss rises later for better measures, so AUC: good < mid < bad


def _rows(measure, aggregation, epoch, seed, center, run_id=None, scope="global", noise=0.01):
    rng = np.random.default_rng([seed, epoch, len(measure), int(center * 1000)])
    rise = 1.0 / (1.0 + np.exp(-(THRESHOLDS - center) / 0.05))
    sparsity = np.clip(THRESHOLDS + rng.normal(0, 0.002, THRESHOLDS.size) * (THRESHOLDS > 0), 0, 1)
    return pd.DataFrame({
        "run_id": run_id or f"r{seed}", "task": "digits", "model": "mlp", "seed": seed, "epoch": epoch,
        "measure": measure, "aggregation": aggregation, "pooling": "mean", "scope": scope, "normalization": "none",
        "replacement": "zero", "threshold": THRESHOLDS, "sparsity": sparsity,
        "n_replaced": (sparsity * 1000).astype(int),
        "val_loss": 0.3 + 2.0 * rise + rng.normal(0, noise, THRESHOLDS.size),
        "val_accuracy": 0.95 - 0.85 * rise, "measure_seconds": 0.5, "sweep_seconds": 2.0,
    })  # fmt: skip


SHIFT = {("weight", 1): 0.0, ("weight", 2): 0.01, ("unit", 1): -0.01, ("unit", 2): 0.02}


def _known_frame():
    parts = [
        _rows(m, a, e, s, c + SHIFT[a, e])
        for m, c in CENTERS.items()
        for a in ("weight", "unit")
        for e in (1, 2)
        for s in (0, 1)
    ]  # each condition's curves shifted a little, so no two conditions are the same block
    return pd.concat(parts, ignore_index=True)[analysis.COLUMNS]


def _write_study(folder: Path, centers: dict, seeds, epochs=(1, 2), jitter=0.02, settings=None) -> Path:
    """A study folder: trials/<run_id>.csv and trials/<run_id>.<run_id>.json, one trial per seed."""
    trials = folder / "trials"
    trials.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        run = f"t{seed:03d}{(settings or {}).get('learning_rate', '')}".replace(".", "")
        parts = [_rows(m, "weight", e, seed, c + rng.normal(0, jitter), run) for m, c in centers.items() for e in epochs]
        pd.concat(parts)[analysis.COLUMNS].to_csv(trials / f"{run}.csv", index=False)
        config = {"task": "digits", "seed": seed, "output": str(trials / f"{run}.csv"), **(settings or {})}
        (trials / f"{run}.{run}.json").write_text(json.dumps({"num_classes": 10, "config": config}))
    (folder / "study.json").write_text("{}")
    return folder


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "results.csv"
    _known_frame().to_csv(path, index=False)
    for run in ("r0", "r1"):
        (tmp_path / f"results.{run}.json").write_text(json.dumps({"num_classes": 10}))
    return path


def _run(**columns):
    n = len(columns["sparsity"])
    base = {"threshold": columns["sparsity"], "val_accuracy": [np.nan] * n}
    return pd.DataFrame(base | columns)


def _holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjustment, written out: p_(i) * (m - i), running maximum, capped at 1."""
    order = np.argsort(pvalues)
    adjusted = np.maximum.accumulate(pvalues[order] * (len(pvalues) - np.arange(len(pvalues))))
    out = np.empty_like(pvalues)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _auc_matrix(df: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """Seeds x measures of AUC at one epoch, computed directly with scipy's trapezoid."""
    part = df[(df.epoch == epoch) & (df.aggregation == "weight")]
    return (
        part.groupby(["seed", "measure"])
        .apply(
            lambda g: integrate.trapezoid(g.sort_values("sparsity").val_loss, g.sort_values("sparsity").sparsity),
            include_groups=False,
        )
        .unstack("measure")
    )


# Scores ---------------------------------------------------------------------------------------------------------


def test_auc_is_exact_trapezoid_and_sorts_points():
    # Points given out of order; area = 0.5 * 1 + 0.5 * (1 + 3) / 2 = 1.5.
    assert analysis.auc([1.0, 0.0, 0.5], [3.0, 1.0, 1.0]) == pytest.approx(1.5, abs=1e-12)


def test_rank_table_averages_auc_over_seeds():
    s = np.array([0.0, 0.5, 1.0])
    frames = [_known_frame().iloc[:0]]
    for seed, slope in ((0, 1.0), (1, 3.0)):  # AUCs 1.5 and 2.5 -> mean 2.0
        run = _rows("good", "weight", 1, seed, 0.5).iloc[:3]
        frames.append(run.assign(sparsity=s, threshold=s, val_loss=1 + slope * s))
    table = analysis.rank_table(pd.concat(frames), interval="t")
    assert table["auc"].item() == pytest.approx(2.0)
    assert table["n_seeds"].item() == 2
    half = stats.t.ppf(0.975, 1) * np.std([1.5, 2.5], ddof=1) / np.sqrt(2)  # 6.35: clipped below at 0
    assert table["auc_lo"].item() == 0.0 and table["auc_hi"].item() == pytest.approx(2.0 + half)


def test_tolerated_sparsity_uses_prefix_and_loss_limit():
    run = _run(sparsity=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], val_loss=[1.0, 1.02, 1.05, 1.2, 1.05, 1.5])
    assert analysis.tolerated_sparsity(run, loss_tol=0.10) == pytest.approx(0.2)  # 0.4 passes but follows a failure
    assert analysis.tolerated_sparsity(run, loss_tol=0.25) == pytest.approx(0.4)
    assert analysis.tolerated_sparsity(run, loss_tol=0.60) == pytest.approx(0.5)


def test_tolerated_sparsity_accuracy_criterion_binds():
    run = _run(sparsity=[0.0, 0.1, 0.2, 0.3], val_loss=[1.0, 1.0, 1.0, 1.0], val_accuracy=[0.90, 0.895, 0.885, 0.89])
    assert analysis.tolerated_sparsity(run, loss_tol=0.10, acc_tol=0.01) == pytest.approx(0.1)
    assert analysis.tolerated_sparsity(run, loss_tol=0.10, acc_tol=0.02) == pytest.approx(0.3)


@pytest.mark.slow
def test_rank_table_recovers_known_auc_order():
    table = analysis.rank_table(_known_frame())
    assert len(table) == 3 * 2 * 2  # measures x aggregations x epochs
    for _, condition in table.groupby(analysis.CONDITION):
        assert list(condition.sort_values("rank")["measure"]) == ["good", "mid", "bad"]
        assert list(condition["mean_rank"]) == [1.0, 2.0, 3.0]
    assert (table.groupby("measure")["tolerated_sparsity"].mean().sort_values().index == ["bad", "mid", "good"]).all()


@pytest.mark.slow
def test_summary_picks_best_measure_at_last_epoch():
    best = analysis.summary(analysis.rank_table(_known_frame()))
    assert set(best["aggregation"]) == {"weight", "unit"}
    assert (best["treatment"] == "good").all() and (best["epoch"] == 2).all()


# Intervals ------------------------------------------------------------------------------------------------------


def test_bootstrap_interval_matches_scipy_contains_mean_and_is_clipped():
    rng = np.random.default_rng(7)
    samples = [rng.uniform(0.5, 1.0, 5), rng.uniform(0.9, 1.0, 5), np.array([0.98, 0.99, 1.0]), np.array([0.4])]
    low, high = analysis.mean_intervals(samples, "bootstrap", bounds=(0.0, 1.0))
    direct = stats.bootstrap((samples[0],), np.mean, method="percentile", n_resamples=analysis.N_RESAMPLES,
                             random_state=np.random.default_rng(0)).confidence_interval  # fmt: skip
    assert low[0] == pytest.approx(direct.low, abs=0.01) and high[0] == pytest.approx(direct.high, abs=0.01)
    for i in range(3):
        assert 0.0 <= low[i] < samples[i].mean() < high[i] <= 1.0
    assert np.isnan(low[3]) and np.isnan(high[3])  # one value: no interval


def test_t_interval_is_clipped_to_metric_range():
    values = np.array([0.02, 0.05, 0.9])  # n = 3: t = 4.30, the raw interval runs below zero
    low, high = analysis.mean_intervals([values], "t", bounds=(0.0, 1.0))
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert values.mean() - half < 0 and low[0] == 0.0
    assert high[0] == pytest.approx(min(values.mean() + half, 1.0))


def test_interval_caption_claims_no_ci_for_one_seed():
    assert "95%" not in analysis.interval_caption("bootstrap", 1)
    assert "bootstrap" in analysis.interval_caption("bootstrap", 5)
    assert "clipped to [0, 1]" in analysis.interval_caption("t", 3, (0.0, 1.0))


# Statistics with seeds as blocks --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nine_seeds(tmp_path_factory):
    """good is always better than mid; twin_a and twin_b share one curve plus seed noise (random differences)."""
    centers = {"good": 0.8, "mid": 0.65, "twin_a": 0.45, "twin_b": 0.45}
    folder = _write_study(tmp_path_factory.mktemp("s9") / "study", centers, range(9), jitter=0.003)
    return analysis.load(folder)


@pytest.mark.slow
def test_friedman_and_wilcoxon_holm_over_seeds_match_scipy(nine_seeds):
    result = analysis.analyze(nine_seeds)
    (test,) = result["tests"].to_dict("records")
    matrix = _auc_matrix(nine_seeds, epoch=2)  # last epoch only
    assert test["epoch"] == 2 and test["n_seeds"] == 9 and test["n_treatments"] == 4
    assert test["friedman_p"] == pytest.approx(stats.friedmanchisquare(*matrix.to_numpy().T).pvalue, rel=1e-12)
    pairs = [("good", "mid"), ("good", "twin_a"), ("good", "twin_b"), ("mid", "twin_a"), ("mid", "twin_b"),
             ("twin_a", "twin_b")]  # fmt: skip
    raw = np.array([stats.wilcoxon(matrix[a], matrix[b]).pvalue for a, b in pairs])
    (pvalues,) = result["pvalues"].values()
    np.testing.assert_allclose([pvalues.loc[a, b] for a, b in pairs], _holm(raw), rtol=1e-12)
    assert test["friedman_p"] < 1e-4 and test["best"] == "good" and test["second"] == "mid"
    assert test["significant"] and test["p_best_second"] == pytest.approx(_holm(raw)[0]) and test["note"] == ""
    assert pvalues.loc["twin_a", "twin_b"] > 0.05  # random differences: not separated


@pytest.mark.slow
def test_mean_ranks_are_means_of_per_seed_ranks(nine_seeds):
    table = analysis.rank_table(nine_seeds)
    last = table[table.epoch == 2].set_index("treatment")
    expected = _auc_matrix(nine_seeds, epoch=2).rank(axis=1).mean()
    np.testing.assert_allclose(last.loc[expected.index, "mean_rank"], expected, rtol=1e-12)
    assert last.loc["good", "mean_rank"] == 1.0 and last.loc["mid", "mean_rank"] == 2.0
    assert (last["auc_lo"] < last["auc"]).all() and (last["auc"] < last["auc_hi"]).all()


@pytest.mark.slow
def test_five_seeds_friedman_significant_but_wilcoxon_holm_cannot_separate(tmp_path):
    study = analysis.load(_write_study(tmp_path / "s", CENTERS, range(5)))
    (test,) = analysis.analyze(study)["tests"].to_dict("records")
    assert test["friedman_p"] < 0.01 and test["best"] == "good"
    assert test["p_best_second"] == pytest.approx(3 * 0.0625) and not test["significant"]
    assert "smallest two-sided Wilcoxon p is 0.0625" in test["note"] and ">= 7 seeds" in test["note"]


@pytest.mark.parametrize("k", [2, 3, 8])
def test_seeds_needed_against_exact_wilcoxon(k):
    pairs = k * (k - 1) // 2
    smallest = {n: stats.wilcoxon(np.arange(1.0, n + 1)).pvalue for n in range(2, 13)}  # all differences one sign
    needed = analysis.seeds_needed(k)
    assert pairs * smallest[needed] < 0.05 <= pairs * smallest[needed - 1]


@pytest.mark.slow
def test_one_seed_says_no_test_and_ranks_descriptively(csv):
    df = analysis.load(csv)
    result = analysis.analyze(df[df.seed == 0])
    assert (result["tests"]["note"] == "one seed: no test is possible; the ranking is descriptive").all()
    assert result["tests"]["p_best_second"].isna().all() and not result["pvalues"]  # so no CD diagram is drawn
    assert result["tests"]["best"].tolist() == ["good", "good"]
    text = analysis.format_report(result)
    assert "no test is possible" in text and "95% CI" not in text and "no test" in text
    assert result["ranking"][["auc_lo", "auc_hi"]].isna().all().all()


@pytest.mark.slow
def test_epoch_choice_ranks_only_those_epochs(nine_seeds):
    assert analysis.analyze(nine_seeds, epoch=[1])["tests"]["epoch"].tolist() == [1]
    assert analysis.analyze(nine_seeds, epoch=[1, 2])["tests"]["epoch"].tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"Epochs \[7\] are not in the results; available: \[1, 2\]"):
        analysis.analyze(nine_seeds, epoch=[7])


@pytest.mark.slow
def test_compare_ranks_measure_by_scope_jointly_with_seeds_paired_across_trials(tmp_path):
    frames = []
    for seed in range(6):
        for scope, centers in (("global", {"obd": 0.8, "magnitude": 0.5}), ("layer", {"obd": 0.6})):
            run = f"{scope}{seed}"  # one trial per (seed, scope): blocks pair runs by seed
            frames += [_rows(m, "weight", 1, seed, c, run, scope=scope) for m, c in centers.items()]
    result = analysis.analyze(pd.concat(frames)[analysis.COLUMNS].assign(num_classes=np.nan), compare="measure,scope")
    (test,) = result["tests"].to_dict("records")
    assert "scope" not in result["tests"].columns and test["n_seeds"] == 6 and test["n_treatments"] == 3
    assert list(result["mean_ranks"].index) == ["obd, global", "obd, layer", "magnitude, global"]
    with pytest.raises(ValueError, match=r"compare takes distinct columns among \['measure'"):
        analysis.analyze(pd.concat(frames), compare="measure,sparsity")


# Non-finite values ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_non_finite_seed_is_excluded_visibly(nine_seeds):
    df = nine_seeds.copy()
    df.loc[(df.seed == 3) & (df.epoch == 2) & (df.measure == "mid") & (df.threshold == 0.5), "val_loss"] = np.nan
    result = analysis.analyze(df)
    (test,) = result["tests"].to_dict("records")
    assert test["n_seeds"] == 8 and test["best"] == "good"
    assert result["excluded"][["seed", "reason"]].values.tolist() == [[3, "non-finite scores for ['mid']"]]
    assert "Excluded from the ranking: 1" in analysis.format_report(result)
    assert analysis.analyze(df, epoch=[1])["excluded"].empty  # epoch 1 of seed 3 is intact


def test_all_non_finite_refuses_to_rank_and_writes_nothing(csv, tmp_path):
    df = analysis.load(csv).assign(val_loss=np.nan)
    with pytest.raises(ValueError, match="Nothing can be ranked at the ranked epochs: 4 .* non-finite scores"):
        analysis.report(df, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_scattered_nan_never_names_a_nan_measure_best(csv):
    df = analysis.load(csv)
    df.loc[np.random.default_rng(0).random(len(df)) < 0.1, "val_loss"] = np.nan
    try:
        result = analysis.analyze(df)
    except ValueError as err:
        assert "Nothing can be ranked" in str(err)
        return
    assert np.isfinite(result["tests"]["best_mean"]).all() and np.isfinite(result["ranking"]["mean_rank"]).all()


# Loading --------------------------------------------------------------------------------------------------------


def test_load_study_folder_reads_shards_and_sidecars(tmp_path):
    folder = _write_study(tmp_path / "s", CENTERS, range(3), epochs=(1,))
    df = analysis.load(folder)
    assert sorted(df.seed.unique()) == [0, 1, 2] and len(df) == 3 * 3 * THRESHOLDS.size
    assert (df.num_classes == 10).all()
    assert len(analysis.load([folder, folder / "trials" / "*.csv", folder / "trials" / "t000.csv"])) == len(df)


@pytest.mark.slow
def test_runs_differing_in_a_setting_are_separate_conditions(tmp_path):
    for rate in (0.01, 0.001):
        _write_study(tmp_path / "s", CENTERS, range(3), epochs=(1,), settings={"learning_rate": rate})
    df = analysis.load(tmp_path / "s")
    assert sorted(df.learning_rate.unique()) == ["0.001", "0.01"]
    tests = analysis.analyze(df)["tests"]
    assert tests["learning_rate"].tolist() == ["0.001", "0.01"] and (tests["n_seeds"] == 3).all()
    for meta in (tmp_path / "s" / "trials").glob("*.json"):
        meta.unlink()  # settings no longer known: the same seed in two runs of one condition
    with pytest.raises(ValueError, match=r"Seed 0 appears in runs \['t0000001', 't000001'\] of one condition"):
        analysis.analyze(analysis.load(tmp_path / "s"))


def test_same_path_given_twice_is_read_once(csv):
    assert len(analysis.load([csv, str(csv.parent / "*.csv"), csv])) == len(analysis.load(csv))


def test_duplicate_keys_across_files_are_refused(csv):
    shutil.copy(csv, csv.with_name("copy.csv"))
    with pytest.raises(ValueError, match=r"appear more than once, e\.g\. \(run_id=r0, .*\) in .*copy\.csv and .*results"):
        analysis.load(str(csv.parent / "*.csv"))


def test_duplicate_keys_within_a_file_are_refused(tmp_path):
    path = tmp_path / "doubled.csv"
    pd.concat([_known_frame()] * 2).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"264 result keys appear more than once.* 2 times in .*doubled\.csv"):
        analysis.load(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is not a result CSV: not UTF-8 text"),
        (np.random.default_rng(0).bytes(4096), "is not a result CSV"),
        (("\n".join([",".join(analysis.COLUMNS), "r,d,m,0,1,x,w,-,g,none,zero,0,0,0,abc,1,0,0"])).encode(),
         "column 'val_loss' holds a non-number on line 2: 'abc'"),
    ],
)  # fmt: skip
def test_bad_files_get_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        analysis.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "bad.csv"
    _known_frame().drop(columns=["val_loss", "sweep_seconds"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv is missing columns \['val_loss', 'sweep_seconds'\]"):
        analysis.load(path)


@pytest.mark.parametrize("content", ["", ",".join(analysis.COLUMNS) + "\n"])
def test_empty_csv(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="has no rows"):
        analysis.load(path)


def test_glob_or_folder_matching_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="No file matches"):
        analysis.load(str(tmp_path / "nothing*.csv"))
    with pytest.raises(FileNotFoundError, match="No result CSVs in folder"):
        analysis.load(tmp_path)


def test_load_expands_globs_and_reads_metadata(tmp_path):
    df = _known_frame()
    for seed in (0, 1):
        df[df.seed == seed].to_csv(tmp_path / f"part{seed}.csv", index=False)
    (tmp_path / "part0.r0.json").write_text(json.dumps({"num_classes": 10}))
    loaded = analysis.load(str(tmp_path / "part*.csv"))
    assert len(loaded) == len(df)
    assert loaded.groupby("seed")["num_classes"].first().fillna(-1).tolist() == [10, -1]


def test_unpooled_weight_rows_join_every_pooling(tmp_path):
    rows = []
    for aggregation, pooling in [("weight", "none"), ("unit", "mean"), ("unit", "max")]:
        for t in (0.0, 1.0):
            rows.append(dict(run_id="r", task="digits", model="mlp", seed=0, epoch=1, measure="m",
                             aggregation=aggregation, pooling=pooling, scope="layer", normalization="none",
                             replacement="zero", threshold=t, sparsity=t, n_replaced=int(t * 10), val_loss=1 + t,
                             val_accuracy=0.9, measure_seconds=0.1, sweep_seconds=0.1))  # fmt: skip
    path = tmp_path / "r.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert set(analysis.load(path).query("aggregation == 'weight'")["pooling"]) == {"none"}  # tables: pooling=none
    frame = analysis.share_unpooled(analysis.load(path))  # figures: beside every pooling
    combos = frame.groupby(["aggregation", "pooling"]).size().to_dict()
    assert combos == {("unit", "max"): 2, ("unit", "mean"): 2, ("weight", "max"): 2, ("weight", "mean"): 2}


@pytest.mark.slow
def test_new_key_columns_are_conditions_without_special_code():
    df = pd.concat([_known_frame().assign(order=o) for o in ("least", "most")])
    assert "order" in analysis.condition_columns(df) and "order" in analysis.panel_columns(df)
    tests = analysis.analyze(df.assign(num_classes=np.nan))["tests"]
    assert sorted(set(tests["order"])) == ["least", "most"] and len(tests) == 4  # 2 orders x 2 aggregations


# Figures and report ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_plot_curves_facets_chance_line_and_band_only_with_seeds(csv):
    df = analysis.load(csv)
    fig = analysis.plot_curves(df)
    assert fig.axes[0].get_gridspec().get_geometry() == (2, 2)  # epochs x aggregations
    assert any(np.allclose(line.get_ydata(), np.log(10)) for line in fig.axes[0].lines)
    assert any(isinstance(c, PolyCollection) for c in fig.axes[0].collections) and "bootstrap" in fig._suptitle.get_text()
    one = analysis.plot_curves(df[df.seed == 0])
    assert not any(isinstance(c, PolyCollection) for c in one.axes[0].collections)
    assert "one seed: no band" in one._suptitle.get_text() and "95%" not in one._suptitle.get_text()


@pytest.mark.slow
def test_one_colour_per_measure_in_curves_and_cd_diagram(nine_seeds):
    colors = analysis.measure_colors(["twin_b", "good", "mid", "twin_a", "good"])
    assert list(colors) == ["good", "mid", "twin_a", "twin_b"]
    assert colors == analysis.measure_colors(["twin_a", "twin_b", "mid", "good"])  # stable: by name
    fig = analysis.plot_curves(nine_seeds, colors=colors)
    legend = {t.get_text(): h.get_color() for t, h in zip(fig.legends[0].texts, fig.legends[0].legend_handles)}
    result = analysis.analyze(nine_seeds)
    ranks = result["ranking"].query("epoch == 2").set_index("treatment")["mean_rank"]
    cd = analysis.plot_cd(ranks, next(iter(result["pvalues"].values())), "t", colors)
    labels = {t.get_text().split(" ")[0 if t.get_text()[0] != "(" else 1]: t.get_color() for t in cd.axes[0].texts}
    for measure, color in colors.items():
        assert matplotlib.colors.same_color(legend[measure], color)
        assert matplotlib.colors.same_color(labels[measure], color)


@pytest.mark.slow
def test_report_writes_tables_and_one_figure_set_per_combination(csv, tmp_path):
    df = analysis.load(csv)
    cnn = df[(df.epoch == 2) & (df.aggregation == "unit")].assign(model="cnn")
    result = analysis.report(pd.concat([df, cnn]), tmp_path / "fig", fmt="svg")
    names = {p.name for p in result["files"]}
    expected = {"ranking.csv", "ranking.md", "conditions.csv", "tests.csv", "mean_ranks.csv", "mean_ranks.svg",
                "inputs.json"}
    for model in ("mlp", "cnn"):
        expected |= {f"{kind}_digits_{model}_mean_global_none_zero.svg" for kind in ("loss", "accuracy", "rank_heatmap")}
    expected |= {f"cd_digits_{m}_2_{a}_mean_global_none_zero.svg" for m, a in [("mlp", "unit"), ("mlp", "weight"),
                                                                                ("cnn", "unit")]}  # fmt: skip
    assert names == expected
    assert all(p.stat().st_size > 0 for p in result["files"])
    assert "| good |" in (tmp_path / "fig" / "ranking.md").read_text()
    text = analysis.format_report(result)
    assert "task=digits, epoch=2, pooling=mean" in text and "cnn" in text and "mlp" in text


def test_bad_format():
    with pytest.raises(ValueError, match="fmt must be one of"):
        analysis.report(_known_frame(), "unused", fmt="jpg")


# Command line ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_study_summary_and_plain_errors(tmp_path):
    folder = _write_study(tmp_path / "s", {"good": 0.8, "bad": 0.4}, range(3), epochs=(1,))
    cmd = [sys.executable, str(REPO / "analysis.py"), str(folder), "--out", str(tmp_path / "cli"), "--format", "svg"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "good" in done.stdout and "Friedman" in done.stdout and "3 seeds" not in done.stderr
    assert (tmp_path / "cli" / "cd_digits_mlp_1_weight_mean_global_none_zero.svg").stat().st_size > 0
    (tmp_path / "empty.csv").write_text("")
    assert analysis.main([str(tmp_path / "empty.csv"), "--out", str(tmp_path / "cli2")]) == 2
