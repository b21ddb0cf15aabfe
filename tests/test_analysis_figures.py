"""Figures for a paper: legend placement from the drawn boxes, titles, clipping, zoom, shared axes, colours."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

import analysis
from reports.colors import measure_style
from reports.report import _save

matplotlib.use("Agg")

S = np.round(np.linspace(0.0, 1.0, 11), 10)


def _frame(measures=None, scopes=("layer",), models=("mlp",), aggregations=(("weight", "none"),), epochs=(1,), seeds=2):
    measures = measures or {"magnitude": 1.0, "obd": 1.5, "random": 2.0}
    parts = []
    for (measure, peak), scope, model, (agg, pooling), epoch, seed in __import__("itertools").product(
            measures.items(), scopes, models, aggregations, epochs, range(seeds)):  # fmt: skip
        loss = 0.3 + peak * S**2 + 0.01 * seed + (0.2 if scope == "global" else 0) + (0.1 if model == "cnn" else 0)
        parts.append(pd.DataFrame({
            "run_id": f"{model}{scope}{seed}", "task": "digits", "model": model, "seed": seed, "epoch": epoch,
            "measure": measure, "aggregation": agg, "pooling": pooling, "scope": scope, "normalization": "none",
            "replacement": "zero", "threshold": S, "sparsity": S, "n_replaced": 0, "val_loss": loss,
            "val_accuracy": 0.9 - 0.5 * S, "measure_seconds": 0.1, "sweep_seconds": 0.1, "num_classes": 10.0}))
    return pd.concat(parts, ignore_index=True)  # fmt: skip


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    return legend, fig._suptitle.get_window_extent(renderer), [ax.get_window_extent(renderer) for ax in fig.axes]


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["val_loss", "val_accuracy"])
def test_legend_box_intersects_neither_the_title_nor_any_axis(metric):
    df = _frame({f"m{i}": 1.0 + 0.1 * i for i in range(12)} | {"grasp": 30.0}, aggregations=(("weight", "none"),
                                                                                                ("unit", "mean")))
    fig = analysis.plot_curves(analysis.share_unpooled(df), metric)
    legend, title, axes = _boxes(fig)
    assert not legend.overlaps(title)
    assert not any(legend.overlaps(ax) for ax in axes)
    labels = [fig._supylabel] + [ax.xaxis.label for ax in fig.axes]
    renderer = fig.canvas.get_renderer()
    assert not any(legend.overlaps(label.get_window_extent(renderer)) for label in labels if label.get_text())
    width, height = fig.canvas.get_width_height()
    assert legend.x0 >= 0 and legend.y0 >= 0 and legend.x1 <= width and legend.y1 <= height  # inside the figure


def test_title_two_lines_only_non_default_settings_rest_in_metadata():
    fig = analysis.plot_curves(_frame())
    lines = fig._suptitle.get_text().splitlines()
    assert len(lines) == 2 and lines[0] == "task=digits, model=mlp"
    assert "replacement=zero" in fig.report_metadata["Title"] and "scope=layer" in fig.report_metadata["Title"]
    other = analysis.plot_curves(_frame(scopes=("global",)))
    assert other._suptitle.get_text().splitlines()[0] == "task=digits, model=mlp, scope=global"


def test_a_curve_far_off_the_common_scale_is_clipped_with_a_marker_and_a_note():
    fig = analysis.plot_curves(_frame({"magnitude": 1.0, "obd": 1.2, "random": 1.5, "grasp": 40.0}))
    limit = 3 * np.median([1.305, 1.505, 1.805, 40.305])  # peaks: 0.3 + peak + mean seed offset 0.005
    ax = fig.axes[0]
    assert ax.get_ylim()[1] == pytest.approx(limit, rel=1e-6)
    labels = [t.get_text() for t in fig.legends[0].texts]
    assert any(label.startswith(f"clipped above {limit:.3g}: grasp (max 40.3)") for label in labels)
    assert any(line.get_marker() == "^" and not line.get_clip_on() for line in ax.lines)
    plain = analysis.plot_curves(_frame())
    assert not any("clipped" in t.get_text() for t in plain.legends[0].texts)


def test_sparsity_range_zooms():
    fig = analysis.plot_curves(_frame(), sparsity_range=(0.8, 1.0))
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0.8, 1.0))
    drawn = [line.get_xdata() for line in ax.lines if len(line.get_xdata()) > 2]
    assert drawn and min(float(np.min(x)) for x in drawn) >= 0.8 - 1e-9


@pytest.mark.parametrize("column, values", [("scope", ("layer", "global")), ("model", ("mlp", "cnn"))])
def test_compared_scope_or_model_share_axes(column, values):
    df = _frame(scopes=values if column == "scope" else ("layer",), models=values if column == "model" else ("mlp",))
    fig = analysis.plot_curves(df, styles_by=[column])
    curves = [line for line in fig.axes[0].lines if len(line.get_xdata()) == S.size]
    assert len(curves) == 3 * 2  # 3 measures x 2 compared values on one axis
    assert {line.get_linestyle() for line in curves} == {"-", "--"}
    labels = {t.get_text() for t in fig.legends[0].texts}
    assert {f"{column}={v}" for v in values} <= labels


def test_colours_do_not_change_when_a_measure_is_added():
    before = analysis.measure_colors(["update_tally", "wanda", "weight_change", "obd"])
    after = analysis.measure_colors(["update_tally", "wanda", "weight_change", "obd", "my_plugin", "aaa"])
    assert all(after[name] == color for name, color in before.items())
    assert measure_style("my_plugin") == measure_style("my_plugin")  # a hash of the name, no global state
    fig = analysis.plot_curves(_frame({"obd": 1.0, "wanda": 1.2, "aaa": 1.3}))
    legend = {t.get_text(): h.get_color() for t, h in zip(fig.legends[0].texts, fig.legends[0].legend_handles)}
    assert matplotlib.colors.same_color(legend["obd"], before["obd"])
    styles = {tuple(measure_style(m).values()) for m in ["magnitude", "obd", "fisher", "snip", "synflow", "grasp",
                                                         "taylor", "wanda", "maav", "mas", "si", "random", "momentum",
                                                         "update_tally", "weight_change", "sign_flip"]}  # fmt: skip
    assert len(styles) == 16  # every known measure distinct, beyond the 8 colours by line style


@pytest.mark.slow
@pytest.mark.parametrize("n_aggregations", [3, 5])
def test_rank_heatmap_layout_holds_for_one_epoch_and_many_panels(n_aggregations):
    aggs = tuple((f"agg{i}", "mean") for i in range(n_aggregations))
    table = analysis.rank_table(_frame(aggregations=aggs), interval="t")
    fig = analysis.plot_rank_heatmap(table)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]
    titles = [ax.title.get_window_extent(renderer) for ax in panels]
    assert len(panels) == n_aggregations
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])
    colorbar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>").get_window_extent(renderer)
    for ax in panels:
        for label in ax.get_yticklabels() + ax.get_xticklabels():
            assert not colorbar.overlaps(label.get_window_extent(renderer))
        assert not colorbar.overlaps(ax.get_window_extent(renderer))


def test_weight_rows_are_labelled_pooling_none():
    df = _frame(aggregations=(("weight", "none"), ("unit", "mean")))
    tests = analysis.analyze(df)["tests"]
    assert tests.set_index("aggregation").loc["weight", "pooling"] == "none"
    fig = analysis.plot_curves(analysis.share_unpooled(df))
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["unit, epoch 1", "weight (pooling=none), epoch 1"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_format_saves_with_metadata(tmp_path, fmt):
    path = _save(analysis.plot_curves(_frame()), tmp_path / f"loss.{fmt}")
    data = path.read_bytes()
    assert len(data) > 1000
    if fmt == "svg":
        assert b"replacement=zero" in data
