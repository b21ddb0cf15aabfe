"""Curves over sparsity: mean over seeds with a band, one colour per measure, compared settings on shared axes.

Layout for a paper: the legend sits below the axes (never over the title or the data), the title holds two lines
(the settings that differ from the harness defaults, then the band's caption; every setting goes into the file's
metadata), curves far above the common scale are clipped at a robust limit (three times the median of the
measures' peaks) with a triangle where each leaves the axes and a legend entry naming them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from reports._utils import full_title, short_title
from reports.colors import LINE_STYLES, MARKERS, measure_style
from reports.figures import _single_panel, select_epochs
from reports.keys import BOUNDS, METRIC_LABELS, SPARSITY_LABEL, condition_columns
from reports.statistics import interval_caption, mean_intervals

CLIP_FACTOR = 3.0


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


def plot_curves(df, metric="val_loss", epochs=None, num_classes=None, colors=None, interval="bootstrap", *,
                styles_by: Sequence[str] = (), sparsity_range=None):  # fmt: skip
    """Metric over sparsity, one line per measure (and per value of ``styles_by``); facets aggregation x epoch.

    Args:
        df: rows of one figure combination (see ``panel_columns``; ``styles_by`` may vary).
        metric: "val_loss" or "val_accuracy".
        epochs: epochs to show; default first, middle, last.
        num_classes: class count for the chance line; default from the runs' JSON metadata.
        colors: measure -> colour; default each measure's fixed colour (``reports.colors``).
        interval: band over seeds, "bootstrap" or "t"; no band for one seed.
        styles_by: compared columns (``scope``, ``model``, ...) whose values share the axes, one line style each.
        sparsity_range: ``(low, high)``: the sparsities shown; default all.

    Returns:
        The matplotlib Figure; its ``report_metadata`` holds every setting for the saved file.
    """
    key = _single_panel(df, styles_by)
    epochs, aggs = select_epochs(df, epochs), sorted(df["aggregation"].unique())
    data = _in_range(curve_stats(df[df["epoch"].isin(epochs)], metric, interval), sparsity_range)
    styles = _styles(data, colors, list(styles_by))
    fig, axes = plt.subplots(len(epochs), len(aggs), figsize=(3.6 * len(aggs) + 1, 2.8 * len(epochs) + 1.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    unpooled = set(df.loc[df["_unpooled"].astype(bool), "aggregation"]) if "_unpooled" in df else set()
    panels = []
    for (i, epoch), (j, agg) in itertools.product(enumerate(epochs), enumerate(aggs)):
        panels.append((axes[i, j], data[(data["epoch"] == epoch) & (data["aggregation"] == agg)]))
        _draw_curves(*panels[-1], styles, styles_by)
        axes[i, j].set_title(f"{agg}{' (pooling=none)' * (agg in unpooled)}, epoch {epoch}", fontsize="medium")
    handles = _legend_handles(data, styles, styles_by) + _chance_lines(axes, metric, _classes(df, num_classes))
    if sparsity_range is not None:
        axes[0, 0].set_xlim(*sparsity_range)
    handles += _clip(panels, data, styles) if metric != "val_accuracy" else []
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize="small")
    for ax in axes[-1]:  # on the axes, not fig.supxlabel: the legend below would cover a figure-level label
        ax.set_xlabel(SPARSITY_LABEL if len(aggs) == 1 else "sparsity (fraction replaced)")
    fig.supylabel(_metric_label(metric, _classes(df, num_classes)))
    caption = interval_caption(interval, int(data["n"].max()) if len(data) else 0, BOUNDS.get(metric))
    fig.suptitle(f"{short_title(key)}\n{caption}", fontsize="medium")
    fig.report_metadata = {"Title": f"{METRIC_LABELS.get(metric, metric)}; {full_title(key)}"}
    return fig


def _in_range(data: pd.DataFrame, sparsity_range) -> pd.DataFrame:
    if sparsity_range is None:
        return data
    low, high = sparsity_range
    return data[(data["sparsity"] >= low - 1e-9) & (data["sparsity"] <= high + 1e-9)]


def _styles(data: pd.DataFrame, colors: dict | None, styles_by: list[str]) -> dict:
    """Line keywords per (measure, compared values): the measure's colour; its style, or the compared value's."""
    values = sorted(set(map(tuple, data[styles_by].astype(str).to_numpy()))) if styles_by else [()]
    styles = {}
    for measure, (i, value) in itertools.product(sorted(data["measure"].unique()), enumerate(values)):
        style = measure_style(measure) | ({"color": colors[measure]} if colors and measure in colors else {})
        if styles_by:
            style |= {"ls": LINE_STYLES[i % len(LINE_STYLES)], "marker": MARKERS[(i // len(LINE_STYLES)) % len(MARKERS)]}
        styles[measure, value] = style
    return styles


def _draw_curves(ax, data: pd.DataFrame, styles: dict, styles_by: Sequence[str]) -> None:
    for key, g in data.sort_values("sparsity").groupby(["measure", *styles_by]):
        style = styles[key[0], tuple(map(str, key[1:]))]
        ax.plot(g["sparsity"], g["mean"], lw=1.5, markersize=3, markevery=max(1, len(g) // 8), **style)
        if g["lo"].notna().any():
            ax.fill_between(g["sparsity"], g["lo"], g["hi"], color=style["color"], alpha=0.15, lw=0)
    ax.grid(alpha=0.3)


def _legend_handles(data: pd.DataFrame, styles: dict, styles_by: Sequence[str]) -> list:
    first = {m: s for (m, _), s in styles.items()}
    handles = [Line2D([], [], lw=1.5, label=m, **(first[m] | ({"ls": "-", "marker": ""} if styles_by else {})))
               for m in sorted(data["measure"].unique())]  # fmt: skip
    if styles_by:
        values = sorted({v for _, v in styles})
        handles += [Line2D([], [], color="0.3", lw=1.5, ls=styles[next(iter(first)), v]["ls"],
                           marker=styles[next(iter(first)), v]["marker"], label=", ".join(
                               f"{c}={x}" for c, x in zip(styles_by, v, strict=True))) for v in values]  # fmt: skip
    return handles


def robust_limit(data: pd.DataFrame) -> float | None:
    """Upper limit of the common scale: ``CLIP_FACTOR`` x the median of the measures' peaks, when a peak exceeds it.

    None with fewer than three measures or when no curve reaches past the limit.
    """
    peaks = data.groupby("measure")["mean"].max().dropna()
    if len(peaks) < 3 or peaks.median() <= 0:
        return None
    limit = CLIP_FACTOR * float(peaks.median())
    return limit if (peaks > limit).any() else None


def _clip(panels: list, data: pd.DataFrame, styles: dict) -> list:
    """Clips the y axis at ``robust_limit``; a triangle where each clipped curve leaves; one legend entry."""
    limit = robust_limit(data)
    if limit is None:
        return []
    peaks = data.groupby("measure")["mean"].max()
    clipped = sorted(peaks[peaks > limit].index)
    colors = {m: s["color"] for (m, _), s in styles.items()}
    low = float(np.nanmin(data[["mean", "lo"]].to_numpy(float)))
    for ax, part in panels:
        ax.set_ylim(low - 0.05 * (limit - low), limit)
        for measure in clipped:
            above = part[(part["measure"] == measure) & (part["mean"] > limit)].sort_values("sparsity")
            if len(above):
                ax.plot(above["sparsity"].iloc[0], limit, marker="^", color=colors[measure], ms=8, clip_on=False)
    names = ", ".join(f"{m} (max {peaks[m]:.3g})" for m in clipped)
    return [Line2D([], [], ls="", marker="^", color="0.3", label=f"clipped above {limit:.3g}: {names}")]


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
