"""Forgetting analysis on hand-made result and per-class CSVs: set metrics, selectivity, ranking, report files."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

import analysis
from harness.pipeline import results

matplotlib.use("Agg")
T = np.linspace(0, 1, 5)
KEY = dict(task="digits", model="mlp", aggregation="weight", pooling="none", scope="layer", normalization="none",
           replacement="zero", order="most", recovery="none")


def curves(measure: str, forget, retain, seed: int = 0, run_id: str = "r0") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Main rows and per-class rows (classes 0, 1, 2; A = {1}) with the given accuracies on A and on R per threshold."""
    main = pd.DataFrame(dict(run_id=run_id, seed=seed, epoch=1, measure=measure, threshold=T, sparsity=T,
                             n_replaced=(T * 10).astype(int), params_remaining=0, flops=0, val_loss=1.0,
                             val_accuracy=0.5, measure_seconds=0.1, sweep_seconds=0.1, **KEY))
    rows = []
    for t, a, r in zip(T, forget, retain, strict=True):
        for c, n, acc in [(0, 10, r), (1, 5, a), (2, 30, r)]:  # R's classes share its accuracy
            rows.append(dict(run_id=run_id, epoch=1, measure=measure, threshold=t, **KEY, **{"class": c},
                             val_loss=2.0 - acc, val_accuracy=acc, n_examples=n))
    per_class = pd.DataFrame(rows)
    return main[results.COLUMNS], per_class[[*results.SWEEP_KEY, *results.PER_CLASS_COLUMNS]]


def write_run(folder, parts, run_id="r0", forget=(1,)):
    main = pd.concat([m for m, _ in parts])
    main.to_csv(folder / "f.csv", index=False)
    pd.concat([p for _, p in parts]).to_csv(results.per_class_path(folder / "f.csv"), index=False)
    (folder / f"f.{run_id}.json").write_text(json.dumps({"num_classes": 3, "config": {"forget_classes": list(forget)}}))
    return folder / "f.csv"


def test_metrics_on_the_forget_set_and_the_rest_are_means_over_their_examples():
    _, per_class = curves("maav", forget=[0.8] * 5, retain=[0.9] * 5)
    per_class.loc[per_class["class"] == 0, ["val_accuracy", "val_loss"]] = [0.5, 1.5]  # R: (10 * 0.5 + 30 * 0.9) / 40
    keys = [*results.SWEEP_KEY, "threshold"]
    metrics = analysis.forgetting_metrics(per_class, {"r0": [1]}, keys)
    assert len(metrics) == 5 and list(metrics.columns) == [*keys, *analysis.FORGETTING]
    np.testing.assert_allclose(metrics["forget_accuracy"], 0.8)
    np.testing.assert_allclose(metrics["retain_accuracy"], (10 * 0.5 + 30 * 0.9) / 40)
    np.testing.assert_allclose(metrics["retain_loss"], (10 * 1.5 + 30 * 1.1) / 40)


@pytest.mark.slow
def test_load_attaches_the_sets_and_ranks_measures_by_the_area_between_the_curves(tmp_path):
    falling = 0.9 * (1 - T)  # A falls linearly; R kept at 0.9: area 0.45
    parts = [curves("maav", falling, [0.9] * 5), curves("random", falling, falling),
             curves("magnitude", [0.9, 0.05, 0, 0, 0], [0.9, 0.6, 0.3, 0.1, 0.1])]
    path = write_run(tmp_path, parts)
    df = analysis.load(tmp_path)  # the folder: the companion is read with its result CSV, not as one
    assert set(df["forget_classes"]) == {"1"} and df[analysis.FORGETTING].notna().all().all()
    table = analysis.forgetting_table(df).set_index("measure")
    np.testing.assert_allclose(table.loc["maav", "selectivity"], 0.45)
    np.testing.assert_allclose(table.loc["random", "selectivity"], 0.0, atol=1e-12)
    np.testing.assert_allclose(table.loc["maav", "over_random"], 0.45)
    assert table["rank"].to_dict() == {"maav": 1.0, "magnitude": 2.0, "random": 3.0}
    assert table.loc["magnitude", "retained_at_forgotten"] == 0.6 and table.loc["magnitude", "sparsity_at_forgotten"] == 0.25
    assert table.loc["maav", ["retained_at_forgotten", "sparsity_at_forgotten"]].tolist() == [0.9, 1.0]
    result = analysis.report(path, tmp_path / "figures")
    names = {p.name for p in result["files"]}
    assert "forgetting.csv" in names and any(n.startswith("selectivity_") for n in names)
    assert "1. maav: selectivity 0.450 (+0.450 over random)" in analysis.format_report(result)


def test_a_forgetting_run_without_its_per_class_csv_is_refused(tmp_path):
    path = write_run(tmp_path, [curves("maav", [0.9] * 5, [0.9] * 5)])
    results.per_class_path(path).unlink()
    with pytest.raises(ValueError, match="holds forgetting runs \\['r0'\\] but their per-class CSV .* is missing"):
        analysis.load(path)


@pytest.mark.slow
@pytest.mark.parametrize("plot", ["plot_selectivity", "plot_forgetting"])
def test_forgetting_figures_keep_the_legend_off_the_title_axes_and_labels(tmp_path, plot):
    falling = 0.9 * (1 - T)
    path = write_run(tmp_path, [curves(m, falling, [0.9 - 0.1 * i] * 5) for i, m in enumerate(["maav", "obd", "snip"])])
    fig = getattr(analysis, plot)(analysis.load(path))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    others = [fig._suptitle, fig._supylabel, *(ax.xaxis.label for ax in fig.axes), *(ax.title for ax in fig.axes)]
    assert not any(legend.overlaps(t.get_window_extent(renderer)) for t in others if t is not None and t.get_text())
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert len(fig._suptitle.get_text().splitlines()) == 2
