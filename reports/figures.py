"""Figures: curves over sparsity, rank heatmaps, critical-difference diagrams, mean ranks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns

from reports._utils import full_title, short_title
from reports.colors import treatment_colors
from reports.keys import condition_columns, panel_columns


def select_epochs(df: pd.DataFrame, epochs: Iterable[int] | None = None) -> list[int]:
    """The requested epochs, checked against the data; by default the first, middle and last."""
    available = sorted(int(e) for e in df["epoch"].unique())
    if epochs is None:
        return sorted({available[0], available[(len(available) - 1) // 2], available[-1]})
    missing = sorted(set(epochs) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: {list(epochs)}")
    return sorted(set(epochs))


def plot_rank_heatmap(table: pd.DataFrame, colors: dict | None = None, compare: Sequence[str] = ("measure",)):
    """Mean rank over seeds of each treatment (rows, best first) at each epoch (columns), one heatmap per aggregation.

    The epochs are a curve over training, not replicates. Panels wrap after three per row and share one colour
    bar, so the layout holds for any number of aggregations and epochs.

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
    ncols = min(len(aggs), 3)
    nrows = -(-len(aggs) // ncols)
    width = max(0.5 * min(n_epochs, 24), 1.2) + 0.12 * max(len(str(t)) for t in table["treatment"].unique()) + 1.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + 1.5, (0.4 * n_treatments + 1.4) * nrows + 1.0),
                             squeeze=False, layout="constrained")  # fmt: skip
    order = table.groupby("treatment")["mean_rank"].mean().sort_values().index
    for ax, agg in itertools.zip_longest(axes.flat, aggs):
        if agg is None and ax is not None and len(aggs) > 1:
            ax.set_axis_off()
            continue
        part = table if agg is None else table[table["aggregation"] == agg]
        grid = part.pivot_table(index="treatment", columns="epoch", values="mean_rank")
        sns.heatmap(grid.reindex([t for t in order if t in grid.index]), ax=ax, annot=n_epochs <= 12, fmt=".2g",
                    cmap="viridis_r", vmin=1, vmax=n_treatments, cbar=False, annot_kws={"fontsize": "small"})
        ax.set(title=agg or "", xlabel="epoch", ylabel="treatment" if ax in axes[:, 0] else "")
        _color_ticks(ax, colors or treatment_colors(table, compare))
    mappable = plt.cm.ScalarMappable(plt.Normalize(1, max(n_treatments, 2)), "viridis_r")
    metric = table["metric"].iloc[0] if "metric" in table else "loss_auc"
    fig.colorbar(mappable, ax=axes, label=f"mean rank by {metric} over {_seed_range(table)} (1 = best)", shrink=0.9)
    fig.suptitle(short_title(key), fontsize="medium")
    fig.report_metadata = {"Title": f"rank heatmap by {metric}; {full_title(key)}"}
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
    ax.set_title(f"{title}\nmean rank over seeds (1 = best); bars: Wilcoxon-Holm cannot separate (alpha {alpha:g})",
                 fontsize="medium")  # fmt: skip
    fig.report_metadata = {"Title": f"critical-difference diagram; {title}; bars join treatments that pairwise "
                           f"Wilcoxon signed-rank tests, Holm-adjusted, cannot separate (alpha {alpha:g})"}  # fmt: skip
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
