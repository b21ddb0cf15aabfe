"""Figures: curves over sparsity, rank heatmaps, critical-difference diagrams, mean ranks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns
from matplotlib.lines import Line2D

from reports._utils import _title
from reports.colors import measure_colors, treatment_colors
from reports.keys import BOUNDS, METRIC_LABELS, SPARSITY_LABEL, condition_columns, panel_columns
from reports.statistics import interval_caption, mean_intervals


def select_epochs(df: pd.DataFrame, epochs: Iterable[int] | None = None) -> list[int]:
    """The requested epochs, checked against the data; by default the first, middle and last."""
    available = sorted(int(e) for e in df["epoch"].unique())
    if epochs is None:
        return sorted({available[0], available[(len(available) - 1) // 2], available[-1]})
    missing = sorted(set(epochs) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: {list(epochs)}")
    return sorted(set(epochs))


def curve_stats(df: pd.DataFrame, metric: str = "val_loss", interval: str = "bootstrap") -> pd.DataFrame:
    """Per (condition, measure, threshold): mean sparsity, mean metric over seeds and its 95% interval.

    A point where any seed's value is not finite gets a NaN mean (a gap in the curve). Columns ``lo``/``hi`` are
    NaN for one seed; ``n`` counts the seeds.
    """
    values = df[metric].where(np.isfinite(df[metric]))
    groups = df.assign(_value=values).groupby([*condition_columns(df), "measure", "threshold"], dropna=False)
    out = groups.agg(sparsity=("sparsity", "mean"), mean=("_value", "mean"), n=("_value", "size"),
                     finite=("_value", "count"))  # fmt: skip
    low, high = mean_intervals([g.to_numpy() for _, g in groups["_value"]], interval, BOUNDS.get(metric, (-np.inf, np.inf)))
    out = out.assign(lo=low, hi=high).reset_index()
    out.loc[out["finite"] < out["n"], ["mean", "lo", "hi"]] = np.nan
    return out.drop(columns="finite")


def plot_curves(df, metric="val_loss", epochs=None, num_classes=None, colors=None, interval="bootstrap"):
    """Metric over sparsity, one line per measure; facets aggregation (columns) x epoch (rows).

    Args:
        df: rows of one figure combination (see ``panel_columns``).
        metric: "val_loss" or "val_accuracy".
        epochs: epochs to show; default first, middle, last.
        num_classes: class count for the chance line; default from the runs' JSON metadata.
        colors: measure -> colour; default ``measure_colors`` of the measures in ``df``.
        interval: band over seeds, "bootstrap" or "t"; no band for one seed.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(df)
    epochs, aggs = select_epochs(df, epochs), sorted(df["aggregation"].unique())
    data = curve_stats(df[df["epoch"].isin(epochs)], metric, interval)
    colors = colors or measure_colors(df["measure"])
    fig, axes = plt.subplots(len(epochs), len(aggs), figsize=(3.6 * len(aggs) + 2, 2.8 * len(epochs) + 0.8),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for (i, epoch), (j, agg) in itertools.product(enumerate(epochs), enumerate(aggs)):
        _draw_curves(axes[i, j], data[(data["epoch"] == epoch) & (data["aggregation"] == agg)], colors)
        axes[i, j].set_title(f"{agg}, epoch {epoch}", fontsize="medium")
    handles = [Line2D([], [], color=colors[m], label=m) for m in sorted(data["measure"].unique())]
    handles += _chance_lines(axes, metric, _classes(df, num_classes))
    fig.legend(handles=handles, loc="outside right upper", title="measure")
    fig.supxlabel(SPARSITY_LABEL)
    fig.supylabel(_metric_label(metric, _classes(df, num_classes)))
    caption = interval_caption(interval, int(data["n"].max()), BOUNDS.get(metric))
    fig.suptitle(f"{_title(key, per_line=3)}\n{caption}", fontsize="medium")
    return fig


def _draw_curves(ax, data: pd.DataFrame, colors: dict) -> None:
    for measure, g in data.sort_values("sparsity").groupby("measure"):
        ax.plot(g["sparsity"], g["mean"], color=colors[measure], lw=1.5)
        if g["lo"].notna().any():
            ax.fill_between(g["sparsity"], g["lo"], g["hi"], color=colors[measure], alpha=0.2, lw=0)
    ax.grid(alpha=0.3)


def _chance_lines(axes, metric: str, classes: float | None) -> list:
    """Draws chance level (ln C nats, or accuracy 1/C) on every axis; returns legend handles."""
    if classes is None:
        return []
    level = np.log(classes) if metric == "val_loss" else 1.0 / classes
    label = f"chance (ln {classes:g})" if metric == "val_loss" else f"chance (1/{classes:g})"
    for ax in axes.flat:
        ax.axhline(level, color="0.4", ls="--", lw=1)
    return [Line2D([], [], color="0.4", ls="--", lw=1, label=label)]


def _classes(df: pd.DataFrame, num_classes: int | None) -> float | None:
    """The explicit class count, else the one count the runs' metadata agree on, else None."""
    if num_classes is not None:
        return float(num_classes)
    known = df["num_classes"].dropna().unique() if "num_classes" in df else []
    return float(known[0]) if len(known) == 1 else None


def _metric_label(metric: str, classes: float | None) -> str:
    if metric == "val_loss" and classes is not None:
        return "validation loss (cross-entropy, nats)"
    return METRIC_LABELS.get(metric, metric)


def plot_rank_heatmap(table: pd.DataFrame, colors: dict | None = None, compare: Sequence[str] = ("measure",)):
    """Mean rank over seeds of each treatment (rows, best first) at each epoch (columns), one heatmap per aggregation.

    The epochs are a curve over training, not replicates.

    Args:
        table: ``rank_table`` rows of one figure combination (``panel_columns`` less the ``compare`` columns).
        colors: treatment -> colour for the row labels; default ``treatment_colors``.
        compare: the treatment columns of ``table``.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(table, compare)
    aggs = sorted(table["aggregation"].unique()) if "aggregation" in condition_columns(table, compare) else [None]
    n_treatments, n_epochs = table["treatment"].nunique(), table["epoch"].nunique()
    fig, axes = plt.subplots(1, len(aggs), figsize=(min(0.5 * n_epochs, 12) * len(aggs) + 3,
                             0.45 * n_treatments + 1.6), squeeze=False, layout="constrained")  # fmt: skip
    order = table.groupby("treatment")["mean_rank"].mean().sort_values().index
    for ax, agg in zip(axes[0], aggs, strict=True):
        part = table if agg is None else table[table["aggregation"] == agg]
        grid = part.pivot_table(index="treatment", columns="epoch", values="mean_rank")
        sns.heatmap(grid.reindex([t for t in order if t in grid.index]), ax=ax, annot=n_epochs <= 20, fmt=".3g",
                    cmap="viridis_r", vmin=1, vmax=n_treatments,
                    cbar_kws={"label": f"mean rank by AUC over {_seed_range(part)} (1 = best)"})  # fmt: skip
        ax.set(title=agg or "", xlabel="epoch", ylabel="treatment")
        _color_ticks(ax, colors or treatment_colors(table, compare))
    fig.suptitle(_title(key, per_line=2), fontsize="medium")
    return fig


def _seed_range(table: pd.DataFrame) -> str:
    low, high = int(table["n_seeds"].min()), int(table["n_seeds"].max())
    return f"{low} seed{'s' * (high > 1)}" if low == high else f"{low}-{high} seeds"


def _color_ticks(ax, colors: dict) -> None:
    ax.tick_params(axis="y", rotation=0)
    for label in ax.get_yticklabels():
        label.set_color(colors.get(label.get_text(), "black"))


def plot_cd(mean_ranks: pd.Series, pvalues: pd.DataFrame, title: str = "", colors: dict | None = None, alpha=0.05):
    """Critical-difference diagram: mean ranks over seeds; bars join treatments Wilcoxon-Holm cannot separate.

    Args:
        mean_ranks: treatment -> mean rank over seeds (1 = best).
        pvalues: Holm-adjusted Wilcoxon p-values (``wilcoxon_holm``).
        title: first lines of the title (the condition).
        colors: treatment -> colour (the measure's colour in the curves).
        alpha: significance level.

    Returns:
        The matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(mean_ranks) + 2.2), layout="constrained")
    palette = {t: colors[t] for t in mean_ranks.index} if colors else None
    sp.critical_difference_diagram(mean_ranks, pvalues.loc[mean_ranks.index, mean_ranks.index], ax=ax, alpha=alpha,
                                   color_palette=palette)  # fmt: skip
    ax.set_title(f"{title}\nmean rank by AUC over seeds (1 = best); bars join treatments that pairwise Wilcoxon "
                 f"signed-rank tests,\nHolm-adjusted, cannot separate (alpha {alpha:g})", fontsize="medium")  # fmt: skip
    return fig


def plot_mean_ranks(matrix: pd.DataFrame, colors: dict | None = None):
    """Heatmap of ``mean_rank_matrix``: treatments (rows) x ranked conditions (columns)."""
    grid = matrix.drop(columns=[c for c in matrix.columns if str(c).startswith("mean")])
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 4, 0.45 * len(grid) + 2), layout="constrained")
    sns.heatmap(grid, ax=ax, annot=grid.size <= 400, fmt=".3g", cmap="viridis_r", vmin=1, vmax=len(grid),
                cbar_kws={"label": "mean rank by AUC over seeds (1 = best)"})  # fmt: skip
    ax.set(xlabel="condition (at the ranked epoch)", ylabel="treatment", title="Mean rank per condition, best first")
    ax.tick_params(axis="x", rotation=30)
    _color_ticks(ax, colors or {})
    return fig


def _single_panel(df: pd.DataFrame, compare: Sequence[str] = ()) -> tuple:
    """The one figure combination (``panel_columns`` less ``compare``) of ``df``, as (column, value) pairs."""
    columns = [c for c in panel_columns(df) if c not in compare]
    combos = df[columns].drop_duplicates()
    if len(combos) != 1:
        raise ValueError(f"Expected one combination of {columns}; filter the rows first. Received: {len(combos)}")
    return tuple(zip(columns, combos.iloc[0], strict=True))
