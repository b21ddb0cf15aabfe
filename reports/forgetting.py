"""Selective forgetting: accuracy on the forget set and the other classes, selectivity, figures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from reports._utils import _label, full_title, short_title
from reports.colors import measure_colors
from reports.figures import _single_panel
from reports.keys import FORGETTING, RUN, condition_columns, key_columns
from reports.metrics import auc


def forgetting_metrics(per_class: pd.DataFrame, forget: dict, keys: Sequence[str]) -> pd.DataFrame:
    """Accuracy and loss on the forget set and on the other classes per row key, from per-class rows.

    Args:
        per_class: rows of a per-class CSV: ``keys``, ``class``, ``val_loss``, ``val_accuracy``, ``n_examples``.
        forget: run id -> forget classes.
        keys: the columns that identify one main row (the sweep key and ``threshold``).

    Returns:
        One row per key: ``keys`` and ``FORGETTING``. Each value is a mean over the validation examples of the
        set: sum over its classes of n_c * metric_c, divided by the set's n (NaN when the set has none).
    """
    in_a = [c in forget[r] for r, c in zip(per_class["run_id"], per_class["class"], strict=True)]
    part = per_class.assign(_set=np.where(in_a, "forget", "retain"),
                            _correct=per_class["val_accuracy"] * per_class["n_examples"],
                            _loss=(per_class["val_loss"] * per_class["n_examples"]).where(per_class["n_examples"] > 0, 0))
    sums = part.groupby([*keys, "_set"], dropna=False)[["_correct", "_loss", "n_examples"]].sum()
    n = sums["n_examples"].where(sums["n_examples"] > 0)
    wide = pd.DataFrame({"accuracy": sums["_correct"] / n, "loss": sums["_loss"] / n}).unstack("_set")
    wide.columns = [f"{s}_{metric}" for metric, s in wide.columns]
    return wide.reindex(columns=FORGETTING).reset_index()


def forgetting_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of forgetting runs (those with accuracy on the forget set); empty when there are none."""
    return df[df["forget_accuracy"].notna()] if "forget_accuracy" in df else df.iloc[:0]


def forgetting_scores(df: pd.DataFrame, level: float = 0.10) -> pd.DataFrame:
    """Selectivity and the accuracy on R when A is forgotten, per (key columns, epoch, run); see the module docstring.

    Columns: the keys, ``epoch``, ``run_id``, ``seed``, ``selectivity``, ``forget_accuracy0``/``retain_accuracy0``
    (at the smallest threshold), ``retained_at_forgotten`` and ``sparsity_at_forgotten``.
    """
    keys = [*key_columns(df), "epoch", *RUN]
    rows = [(*key, *_forgetting_point(g.sort_values(["threshold", "sparsity"]), level))
            for key, g in forgetting_rows(df).groupby(keys, dropna=False, sort=False)]
    fields = ["selectivity", "forget_accuracy0", "retain_accuracy0", "retained_at_forgotten", "sparsity_at_forgotten"]
    return pd.DataFrame(rows, columns=[*keys, *fields])


def _forgetting_point(run: pd.DataFrame, level: float) -> tuple:
    gap = (run["retain_accuracy"] - run["forget_accuracy"]).to_numpy(float)
    area = auc(run["sparsity"], gap)
    below = run[run["forget_accuracy"] < level]
    at = below.iloc[0] if len(below) else None
    first = run.iloc[0]
    return (area, first["forget_accuracy"], first["retain_accuracy"],
            np.nan if at is None else at["retain_accuracy"], np.nan if at is None else at["sparsity"])


def forgetting_table(df: pd.DataFrame, level: float = 0.10) -> pd.DataFrame:
    """Per (condition, measure), the mean over seeds of ``forgetting_scores``, ranked by selectivity.

    Adds ``n_seeds``, ``over_random`` (selectivity minus that of measure ``random`` in the same condition; NaN
    without it) and ``rank`` (1 = most selective). Sorted by condition, then rank.
    """
    scores = forgetting_scores(df, level)
    if scores.empty:
        return scores
    conditions = condition_columns(scores)
    fields = ["selectivity", "forget_accuracy0", "retain_accuracy0", "retained_at_forgotten", "sparsity_at_forgotten"]
    table = scores.groupby([*conditions, "measure"], dropna=False).agg(
        **{f: (f, "mean") for f in fields}, n_seeds=("seed", "nunique")).reset_index()
    random = table[table["measure"] == "random"].set_index(conditions)["selectivity"]
    base = table.set_index(conditions).index.map(lambda k: random.get(k, np.nan))
    table["over_random"] = table["selectivity"] - np.asarray(base, float)
    table["rank"] = table.groupby(conditions, dropna=False)["selectivity"].rank(ascending=False, method="average")
    return table.sort_values([*conditions, "rank"], ignore_index=True)


def _forgetting_curves(df: pd.DataFrame, epoch, by: str = "aggregation") -> pd.DataFrame:
    """Mean over seeds of sparsity and both accuracies per (``by``, measure, threshold) at one epoch.

    Raises:
        ValueError: ``by`` is not a key column, or the rows hold several aggregations and ``by`` is another column.
    """
    part = forgetting_rows(df)
    if by not in key_columns(part) or (by != "aggregation" and part["aggregation"].nunique() > 1):
        raise ValueError(f"Panels by {by!r} need a key column and one aggregation; filter the rows first. "
                         f"Received: by={by!r}, aggregations={sorted(part['aggregation'].unique())}")
    part = part[part["epoch"] == (part["epoch"].max() if epoch is None else epoch)]
    return part.groupby([by, "measure", "threshold"], as_index=False)[
        ["sparsity", "forget_accuracy", "retain_accuracy"]].mean()


def plot_forgetting(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None):
    """Accuracy on the forget set A (dashed) and on the other classes R (solid) over sparsity, one panel per measure.

    Args:
        df: forgetting rows of one figure combination (see ``panel_columns``).
        epoch: the epoch drawn; default the last.
        colors: measure -> colour.

    Returns:
        The matplotlib Figure: rows aggregation, columns measure; means over seeds.
    """
    key, data = _single_panel(forgetting_rows(df)), _forgetting_curves(df, epoch)
    aggs, names = sorted(data["aggregation"].unique()), sorted(data["measure"].unique())
    colors = colors or measure_colors(names)
    fig, axes = plt.subplots(len(aggs), len(names), figsize=(2.8 * len(names) + 1.5, 2.6 * len(aggs) + 1),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for (i, agg), (j, name) in itertools.product(enumerate(aggs), enumerate(names)):
        g, ax = data[(data["aggregation"] == agg) & (data["measure"] == name)].sort_values("threshold"), axes[i, j]
        ax.plot(g["sparsity"], g["retain_accuracy"], color=colors[name], lw=1.5, label="other classes (R)")
        ax.plot(g["sparsity"], g["forget_accuracy"], color=colors[name], lw=1.5, ls="--", label="forget set (A)")
        ax.set_title(f"{name}, {agg}", fontsize="medium")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color="0.3", lw=1.5, label="other classes (R)"),
               Line2D([], [], color="0.3", lw=1.5, ls="--", label="forget set (A)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    for ax in axes[-1]:  # the legend below would cover a figure-level label
        ax.set_xlabel("sparsity (most A-specific first)")
    fig.supylabel("validation accuracy (fraction correct)")
    fig.suptitle(f"{short_title(key)}\n{_forget_caption(df, epoch)}", fontsize="medium")
    fig.report_metadata = {"Title": f"selective forgetting; {full_title(key)}"}
    return fig


def plot_selectivity(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None, by: str = "aggregation"):
    """Selectivity curves: accuracy on the other classes R against accuracy on the forget set A, one line per measure.

    Each line runs over the thresholds from t = 0 (a circle); the ideal curve keeps R high while A falls to 0 (top
    left). Means over seeds.

    Args:
        df: forgetting rows of one figure combination, less ``by``.
        epoch: the epoch drawn; default the last.
        colors: measure -> colour.
        by: the key column whose values get one panel each (``aggregation``; ``prunable`` for rows of one aggregation).

    Returns:
        The matplotlib Figure.
    """
    key, data = _single_panel(forgetting_rows(df), (by,)), _forgetting_curves(df, epoch, by)
    aggs = sorted(data[by].unique())
    colors = colors or measure_colors(data["measure"])
    fig, axes = plt.subplots(1, len(aggs), figsize=(4.2 * len(aggs) + 1.8, 4.2), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, agg in zip(axes[0], aggs, strict=True):
        for name, g in data[data[by] == agg].groupby("measure"):
            g = g.sort_values("threshold")
            ax.plot(g["forget_accuracy"], g["retain_accuracy"], color=colors[name], lw=1.5, marker=".", label=name)
            ax.plot(g["forget_accuracy"].iloc[:1], g["retain_accuracy"].iloc[:1], "o", color=colors[name], mfc="none")
        ax.set(title=agg if by == "aggregation" else f"{by}={agg}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("accuracy on the forget set A")
    fig.supylabel("accuracy on the other classes R")
    fig.suptitle(f"{short_title(key)}\n{_forget_caption(df, epoch)}", fontsize="medium")
    fig.report_metadata = {"Title": f"selective forgetting; {full_title(key)}"}
    return fig


def _forget_caption(df: pd.DataFrame, epoch) -> str:
    part = forgetting_rows(df)
    shown = part["epoch"].max() if epoch is None else epoch
    classes = ", ".join(sorted(set(part["forget_classes"].astype(str))))
    return f"forget set A = class(es) {classes}; epoch {shown}; mean over {part['seed'].nunique()} seed(s)"


def format_forgetting(table: pd.DataFrame) -> str:
    """Terminal lines: per condition (last epoch), measures by selectivity, margin over random, R when A < 10%."""
    if table.empty:
        return ""
    conditions = condition_columns(table)
    others = [c for c in conditions if c != "epoch"]
    last = table[table["epoch"] == table.groupby(others, dropna=False)["epoch"].transform("max")]
    lines = ["Selective forgetting: selectivity = area between the accuracy on the other classes and on the forget "
             "set over sparsity (larger = more selective); R@A<10% = accuracy on the other classes when the forget "
             "set's accuracy first drops below 10% (sparsity there)"]
    for key, part in last.groupby(conditions, dropna=False, sort=False):
        lines.append("  " + _label(pd.Series(key, index=conditions), [c for c in conditions if part[c].notna().all()]))
        for _, r in part.iterrows():
            margin = f" ({r['over_random']:+.3f} over random)" if np.isfinite(r["over_random"]) else ""
            forgotten = "never" if not np.isfinite(r["retained_at_forgotten"]) else \
                f"{r['retained_at_forgotten']:.3f} (sparsity {r['sparsity_at_forgotten']:.3g})"
            lines.append(f"    {int(r['rank'])}. {r['measure']}: selectivity {r['selectivity']:.3f}{margin}; "
                         f"R@A<10%: {forgotten}")
    return "\n".join(lines)
