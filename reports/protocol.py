"""Protocol tables and figures: removal order, matched controls, recovery agreement."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats

from reports._utils import full_title, short_title
from reports.colors import measure_colors
from reports.curves import curve_stats
from reports.figures import _single_panel
from reports.keys import CONTROL_MARKERS, CONTROL_SEPARATOR, CONTROL_STYLES, METRIC_LABELS, condition_columns
from reports.ranking import ranked_epochs
from reports.statistics import interval_caption


def base_measure(name: str) -> str:
    """The measure of a row: ``fisher`` for ``fisher`` and for its controls ``fisher~random_matched``, ..."""
    return str(name).split(CONTROL_SEPARATOR, 1)[0]


def control_of(name: str) -> str:
    """The control of a row's measure (``random_matched``, ``shuffled``), or "" for a measure."""
    return str(name).partition(CONTROL_SEPARATOR)[2]


def _at_ranked_epochs(scores: pd.DataFrame, epoch) -> pd.DataFrame:
    """Score rows at the ranked epochs with a finite AUC."""
    return scores[ranked_epochs(scores, epoch) & np.isfinite(scores["auc"])]


def order_table(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Per condition (without ``order``) and measure: the AUC of both removal orders, their gap, and three ranks.

    ``auc_least`` (least important removed first, LeRF; lower is better) and ``auc_most`` (MoRF; higher is better)
    are means over the seeds that have both; ``gap = auc_most - auc_least`` (higher is better: the measure is right
    about which weights matter in both directions) is the mean of the per-seed gaps. ``rank_least``, ``rank_most``
    and ``rank_gap`` rank the measures (controls included) of each condition by each, 1 = best, ties averaged.

    Args:
        scores: ``run_scores`` rows.
        epoch: the ranked epochs, "last" or a list.

    Returns:
        One row per (condition, measure); empty when the scores do not hold both orders.
    """
    if "order" not in scores or not {"least", "most"} <= set(scores["order"]):
        return pd.DataFrame()
    ranked = _at_ranked_epochs(scores, epoch)
    conditions = [c for c in condition_columns(ranked) if c != "order"]
    wide = ranked.groupby([*conditions, "measure", "seed", "order"], dropna=False)["auc"].mean().unstack("order")
    wide = wide.dropna(subset=["least", "most"]).assign(gap=lambda w: w["most"] - w["least"])
    table = wide.groupby([*conditions, "measure"], dropna=False).agg(
        auc_least=("least", "mean"), auc_most=("most", "mean"), gap=("gap", "mean"), n_seeds=("gap", "size"),
    ).reset_index()  # fmt: skip
    groups = table.groupby(conditions, dropna=False)
    table["rank_least"] = groups["auc_least"].rank()
    table["rank_most"] = groups["auc_most"].rank(ascending=False)
    table["rank_gap"] = groups["gap"].rank(ascending=False)
    return table.sort_values([*conditions, "rank_gap"], ignore_index=True)


def control_table(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Per condition and measure with controls: its mean AUC over seeds, each control's, and whether it beats them.

    A measure beats a control when its mean AUC is lower (order ``least``, or no order column) or higher (order
    ``most``: removing its most important weights first must hurt more than the control's choice). ``n_seeds``
    counts the seeds with the measure and every control.

    Returns:
        Condition columns, ``measure``, ``auc``, ``auc_<control>`` and ``beats_<control>`` per control; empty
        without control rows.
    """
    ranked = _at_ranked_epochs(scores, epoch)
    controls = sorted({control_of(m) for m in ranked["measure"]} - {""})
    if not controls:
        return pd.DataFrame()
    conditions = condition_columns(ranked)
    ranked = ranked.assign(_base=ranked["measure"].map(base_measure), _control=ranked["measure"].map(control_of))
    wide = ranked.groupby([*conditions, "_base", "seed", "_control"], dropna=False)["auc"].mean().unstack("_control")
    wide = wide.rename(columns={"": "_measure"}).dropna(subset=["_measure", *controls]).reset_index()
    table = wide.groupby([*conditions, "_base"], dropna=False).agg(
        auc=("_measure", "mean"), n_seeds=("seed", "size"), **{f"auc_{c}": (c, "mean") for c in controls}
    ).reset_index().rename(columns={"_base": "measure"})  # fmt: skip
    sign = np.where(table["order"] == "most", -1.0, 1.0) if "order" in table else 1.0
    for control in controls:
        table[f"beats_{control}"] = sign * (table["auc"] - table[f"auc_{control}"]) < 0
    return table


def recovery_agreement(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Spearman's rho between the measures' ranking without recovery and with each recovery, per condition.

    Per condition (without ``recovery``), recovery r other than ``none``, and seed: ``scipy.stats.spearmanr`` of the
    AUCs of the measures (controls excluded) with a finite AUC under both ``none`` and r. ``rho`` is the mean over
    seeds, ``rho_min``/``rho_max`` its range, ``n_seeds`` the seeds, ``n_measures`` the fewest measures of a seed.
    rho near 1 says a ranking without retraining is the ranking after recovery on this model; near 0 that it
    cannot be trusted.

    Returns:
        One row per (condition, recovery); empty unless ``none`` and another recovery are present.
    """
    if "recovery" not in scores or "none" not in set(scores["recovery"]) or scores["recovery"].nunique() < 2:
        return pd.DataFrame()
    ranked = _at_ranked_epochs(scores, epoch)
    ranked = ranked[ranked["measure"].map(control_of) == ""]
    conditions = [c for c in condition_columns(ranked) if c != "recovery"]
    wide = ranked.groupby([*conditions, "seed", "measure", "recovery"], dropna=False)["auc"].mean().unstack("recovery")
    rows = []
    for recovery in sorted(set(wide.columns) - {"none"}):
        for key, part in wide[["none", recovery]].dropna().groupby([*conditions, "seed"], dropna=False):
            rows.append((*key, recovery, _spearman(part["none"], part[recovery]), len(part)))
    per_seed = pd.DataFrame(rows, columns=[*conditions, "seed", "recovery", "rho", "n_measures"])
    return per_seed.groupby([*conditions, "recovery"], dropna=False).agg(
        rho=("rho", "mean"), rho_min=("rho", "min"), rho_max=("rho", "max"), n_seeds=("seed", "size"),
        n_measures=("n_measures", "min"),
    ).reset_index()  # fmt: skip


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho of two paired samples; NaN for fewer than three pairs or a constant sample."""
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def plot_order(table: pd.DataFrame, colors: dict | None = None):
    """AUC with the most important weights removed first (y) over AUC least important first (x), one point per measure.

    Args:
        table: ``order_table`` rows of one figure combination (``panel_columns`` less ``order``).
        colors: measure -> colour; controls are drawn hollow in their measure's colour.

    Returns:
        The matplotlib Figure; facets by aggregation. Up and left is better; the diagonal is no gap.
    """
    key = _single_panel(table)
    aggs = sorted(table["aggregation"].unique())
    colors = colors or measure_colors(table["measure"].map(base_measure))
    fig, axes = plt.subplots(1, len(aggs), figsize=(4.2 * len(aggs) + 2.5, 4.2), squeeze=False, layout="constrained")
    for ax, agg in zip(axes[0], aggs, strict=True):
        part = table[table["aggregation"] == agg]
        for _, row in part.iterrows():
            color, control = colors[base_measure(row["measure"])], control_of(row["measure"])
            ax.scatter(row["auc_least"], row["auc_most"], color=color if not control else "none", edgecolors=color,
                       marker=CONTROL_MARKERS.get(control, "o"), s=40)  # fmt: skip
        low, high = np.nanmin(part[["auc_least", "auc_most"]]), np.nanmax(part[["auc_least", "auc_most"]])
        ax.plot([low, high], [low, high], color="0.6", ls=":", lw=1)
        ax.set(title=agg, xlabel="AUC, least important first (lower is better)",
               ylabel="AUC, most important first (higher is better)")  # fmt: skip
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[m], marker="o", ls="", label=m) for m in sorted(colors)]
    handles += [Line2D([], [], color="0.3", marker=CONTROL_MARKERS[c], ls="", mfc="none", label=f"~{c}")
                for c in sorted({control_of(m) for m in table["measure"]} - {""})]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize="small")
    fig.report_metadata = {"Title": f"removal order; {full_title(key)}"}
    fig.suptitle(f"{short_title(key)}\nremoval order: area under validation loss over sparsity, mean over seeds",
                 fontsize="medium")  # fmt: skip
    return fig


def plot_controls(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None, interval="bootstrap"):
    """Validation loss over sparsity of each measure (solid) beside its matched controls (dashed, dotted).

    Args:
        df: rows of one figure combination (see ``panel_columns``), measures and their controls.
        epoch: the epoch shown; default the last.
        colors: measure -> colour; a measure's controls share its colour.
        interval: band over seeds, "bootstrap" or "t".

    Returns:
        The matplotlib Figure; rows aggregation, columns the measures that have controls.
    """
    key = _single_panel(df)
    epoch = int(df["epoch"].max()) if epoch is None else epoch
    data = curve_stats(df[df["epoch"] == epoch], "val_loss", interval)
    data = data.assign(_base=data["measure"].map(base_measure), _control=data["measure"].map(control_of))
    bases = sorted(set(data.loc[data["_control"] != "", "_base"]))
    aggs = sorted(data["aggregation"].unique())
    colors = colors or measure_colors(bases)
    fig, axes = plt.subplots(len(aggs), len(bases), figsize=(3.2 * len(bases) + 1.5, 2.8 * len(aggs) + 1),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for (i, agg), (j, base) in itertools.product(enumerate(aggs), enumerate(bases)):
        part = data[(data["aggregation"] == agg) & (data["_base"] == base)]
        for control, g in part.sort_values("sparsity").groupby("_control"):
            axes[i, j].plot(g["sparsity"], g["mean"], color=colors[base], ls=CONTROL_STYLES.get(control, "-"), lw=1.5)
        axes[i, j].set_title(f"{base}, {agg}", fontsize="medium")
        axes[i, j].grid(alpha=0.3)
    handles = [Line2D([], [], color="0.3", ls=CONTROL_STYLES.get(c, "-"), label=f"~{c}" if c else "the measure")
               for c in sorted(set(data["_control"]))]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize="small")
    for ax in axes[-1]:  # the legend below would cover a figure-level label
        ax.set_xlabel("sparsity (fraction replaced)")
    fig.supylabel(METRIC_LABELS["val_loss"])
    caption = interval_caption(interval, int(data["n"].max()) if len(data) else 0)
    fig.report_metadata = {"Title": f"matched controls; {full_title(key)}"}
    fig.suptitle(f"{short_title(key)}, epoch {epoch}\nmeasures and their matched controls; {caption}",
                 fontsize="medium")  # fmt: skip
    return fig
