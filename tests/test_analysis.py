"""Known-answer tests for analysis.py: AUC, tolerated sparsity, rankings, figures, error paths, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import analysis

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = np.linspace(0.0, 1.0, 11)
CENTERS = {"good": 0.8, "mid": 0.6, "bad": 0.4}  # loss rises later for better measures, so AUC: good < mid < bad


def _rows(measure, aggregation, epoch, seed, center):
    rng = np.random.default_rng(seed)
    rise = 1.0 / (1.0 + np.exp(-(THRESHOLDS - center) / 0.05))
    sparsity = np.clip(THRESHOLDS + rng.normal(0, 0.002, THRESHOLDS.size) * (THRESHOLDS > 0), 0, 1)
    return pd.DataFrame({
        "run_id": f"r{seed}", "task": "digits", "model": "mlp", "seed": seed, "epoch": epoch, "measure": measure,
        "aggregation": aggregation, "pooling": "mean", "scope": "global", "normalization": "none",
        "replacement": "zero", "threshold": THRESHOLDS, "sparsity": sparsity,
        "n_replaced": (sparsity * 1000).astype(int),
        "val_loss": 0.3 + 2.0 * rise + rng.normal(0, 0.01, THRESHOLDS.size),
        "val_accuracy": 0.95 - 0.85 * rise, "measure_seconds": 0.5, "sweep_seconds": 2.0,
    })  # fmt: skip


SHIFT = {("weight", 1): 0.0, ("weight", 2): 0.01, ("unit", 1): -0.01, ("unit", 2): 0.02}


def _known_frame():
    parts = [
        _rows(m, a, e, s, c + SHIFT[a, e]) for m, c in CENTERS.items() for a in ("weight", "unit") for e in (1, 2)
        for s in (0, 1)
    ]  # each condition's curves shifted a little, so no two conditions are the same block
    return pd.concat(parts, ignore_index=True)[analysis.COLUMNS]


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


# Scores ---------------------------------------------------------------------------------------------------------


def test_auc_is_exact_trapezoid_and_sorts_points():
    # Points given out of order; area = 0.5 * 1 + 0.5 * (1 + 3) / 2 = 1.5.
    assert analysis.auc([1.0, 0.0, 0.5], [3.0, 1.0, 1.0]) == pytest.approx(1.5, abs=1e-12)


def test_rank_table_averages_auc_over_runs():
    s = np.array([0.0, 0.5, 1.0])
    frames = [_known_frame().iloc[:0]]
    for seed, slope in ((0, 1.0), (1, 3.0)):  # AUCs 1.5 and 2.5 -> mean 2.0
        run = _rows("good", "weight", 1, seed, 0.5).iloc[:3]
        frames.append(run.assign(sparsity=s, threshold=s, val_loss=1 + slope * s))
    table = analysis.rank_table(pd.concat(frames))
    assert table["auc"].item() == pytest.approx(2.0)
    assert table["n_runs"].item() == 2


def test_tolerated_sparsity_uses_prefix_and_loss_limit():
    run = _run(sparsity=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], val_loss=[1.0, 1.02, 1.05, 1.2, 1.05, 1.5])
    assert analysis.tolerated_sparsity(run, loss_tol=0.10) == pytest.approx(0.2)  # 0.4 passes but follows a failure
    assert analysis.tolerated_sparsity(run, loss_tol=0.25) == pytest.approx(0.4)
    assert analysis.tolerated_sparsity(run, loss_tol=0.60) == pytest.approx(0.5)


def test_tolerated_sparsity_accuracy_criterion_binds():
    run = _run(sparsity=[0.0, 0.1, 0.2, 0.3], val_loss=[1.0, 1.0, 1.0, 1.0], val_accuracy=[0.90, 0.895, 0.885, 0.89])
    assert analysis.tolerated_sparsity(run, loss_tol=0.10, acc_tol=0.01) == pytest.approx(0.1)
    assert analysis.tolerated_sparsity(run, loss_tol=0.10, acc_tol=0.02) == pytest.approx(0.3)


def test_rank_table_recovers_known_auc_order():
    table = analysis.rank_table(_known_frame())
    assert len(table) == 3 * 2 * 2  # measures x aggregations x epochs
    for _, condition in table.groupby(analysis.CONDITION):
        assert list(condition.sort_values("rank")["measure"]) == ["good", "mid", "bad"]
    assert (table.groupby("measure")["tolerated_sparsity"].mean().sort_values().index == ["bad", "mid", "good"]).all()


def test_summary_picks_best_measure_at_last_epoch():
    best = analysis.summary(analysis.rank_table(_known_frame()))
    assert set(best["aggregation"]) == {"weight", "unit"}
    assert (best["measure"] == "good").all() and (best["epoch"] == 2).all()


def test_friedman_runs_with_enough_blocks():
    result = analysis.friedman(analysis.rank_table(_known_frame()))
    assert result["n_blocks"] == 4 and result["statistic"] == pytest.approx(8.0)  # k=3, b=4, perfect agreement
    assert list(result["mean_ranks"].index) == ["good", "mid", "bad"]
    assert result["nemenyi"].shape == (3, 3)


def test_friedman_counts_identical_blocks_once():
    table = analysis.rank_table(_known_frame())
    copy = table[table.aggregation == "unit"].assign(aggregation="filter")  # e.g. filter == weight on an MLP
    result = analysis.friedman(pd.concat([table, copy], ignore_index=True))
    assert result["n_blocks"] == 4 and result["statistic"] == pytest.approx(8.0)


def test_friedman_skipped_with_too_few_blocks():
    table = analysis.rank_table(_known_frame().query("epoch == 1 and aggregation == 'weight'"))
    result = analysis.friedman(table)
    assert result["statistic"] is None and "skipped" in result["note"]


# Figures --------------------------------------------------------------------------------------------------------


def test_plot_curves_facets_and_chance_line(csv):
    fig = analysis.plot_curves(analysis.load(csv))
    assert fig.axes[0].get_gridspec().get_geometry() == (2, 2)  # epochs x aggregations
    assert any(np.allclose(line.get_ydata(), np.log(10)) for line in fig.axes[0].lines)


def test_select_epochs_default_and_unknown():
    df = pd.DataFrame({"epoch": [1, 2, 3, 4, 5]})
    assert analysis.select_epochs(df) == [1, 3, 5]
    with pytest.raises(ValueError, match=r"Epochs \[7\]"):
        analysis.select_epochs(df, [1, 7])


def test_report_writes_tables_and_figures(csv, tmp_path):
    result = analysis.report(csv, tmp_path / "fig")
    names = {p.name for p in result["files"]}
    slug = "digits_mlp_mean_global_none_zero"
    expected = {"ranking.csv", "ranking.md", f"loss_{slug}.png", f"accuracy_{slug}.png", f"rank_heatmap_{slug}.png"}
    assert expected | {"cd_diagram.png"} == names
    assert all(p.stat().st_size > 0 for p in result["files"])
    assert "| good |" in (tmp_path / "fig" / "ranking.md").read_text()


def test_report_one_figure_set_per_combination(tmp_path):
    one = _known_frame().query("epoch == 2")
    result = analysis.report(pd.concat([one, one.assign(model="cnn")]), tmp_path)
    assert {"loss_digits_cnn_mean_global_none_zero.png", "loss_digits_mlp_mean_global_none_zero.png"} <= {
        p.name for p in result["files"]
    }
    text = analysis.format_report(result)
    assert "task=digits, pooling=mean" in text and "cnn" in text and "mlp" in text


def test_report_skips_cd_diagram_with_few_blocks(tmp_path):
    df = _known_frame().query("epoch == 1 and aggregation == 'unit'")
    result = analysis.report(df, tmp_path, fmt="svg")
    assert not any(p.name.startswith("cd_diagram") for p in result["files"])


# Loading and errors ---------------------------------------------------------------------------------------------


def test_load_expands_globs_and_reads_metadata(tmp_path):
    df = _known_frame()
    for seed in (0, 1):
        df[df.seed == seed].to_csv(tmp_path / f"part{seed}.csv", index=False)
    (tmp_path / "part0.r0.json").write_text(json.dumps({"num_classes": 10}))
    loaded = analysis.load(str(tmp_path / "part*.csv"))
    assert len(loaded) == len(df)
    assert loaded.groupby("seed")["num_classes"].first().fillna(-1).tolist() == [10, -1]


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


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="No file matches"):
        analysis.load(str(tmp_path / "nothing*.csv"))


def test_bad_format():
    with pytest.raises(ValueError, match="fmt must be one of"):
        analysis.report(_known_frame(), "unused", fmt="jpg")


# Command line ---------------------------------------------------------------------------------------------------


def _cli(*args):
    cmd = [sys.executable, str(REPO / "analysis.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_writes_outputs_and_reports_errors_plainly(csv, tmp_path):
    done = _cli(csv, "--out", tmp_path / "cli", "--format", "pdf", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "good" in done.stdout and (tmp_path / "cli" / "cd_diagram.pdf").stat().st_size > 0
    (tmp_path / "empty.csv").write_text("")
    failed = _cli(tmp_path / "empty.csv", "--out", tmp_path / "cli2")
    assert failed.returncode == 1 and "has no rows" in failed.stderr and "Traceback" not in failed.stderr


def test_unpooled_weight_rows_join_every_pooling(tmp_path):
    rows = []
    for aggregation, pooling in [("weight", "none"), ("unit", "mean"), ("unit", "max")]:
        for t in (0.0, 1.0):
            rows.append(dict(run_id="r", task="digits", model="mlp", seed=0, epoch=1, measure="m",
                             aggregation=aggregation, pooling=pooling, scope="layer", normalization="none",
                             replacement="zero", threshold=t, sparsity=t, n_replaced=int(t * 10), val_loss=1 + t,
                             val_accuracy=0.9, measure_seconds=0.1, sweep_seconds=0.1))
    path = tmp_path / "r.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    frame = analysis.load(path)
    combos = frame.groupby(["aggregation", "pooling"]).size().to_dict()
    assert combos == {("unit", "max"): 2, ("unit", "mean"): 2, ("weight", "max"): 2, ("weight", "mean"): 2}
