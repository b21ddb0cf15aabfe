"""Figures and rankings from harness result CSVs.

Command line::

    python analysis.py data/results.csv "data/*.csv" --out figures/ [--format svg] [--epochs 1 5 10]

Notebook::

    import analysis
    df = analysis.load("data/*.csv")
    analysis.plot_curves(df[df.task == "digits"])   # a Figure
    table = analysis.rank_table(df)                  # a DataFrame
    analysis.summary(table)
    result = analysis.report(df, "figures")          # every table and file

Definitions. A condition is (task, model, epoch, aggregation, pooling, scope, normalization, replacement); a run is
(run_id, seed). Within a condition, for each measure:

- AUC: trapezoid integral of val_loss over achieved sparsity, points sorted by sparsity, computed per run and then
  averaged over runs. Lower is better: the model lost less while its least important weights were replaced.
- Tolerated sparsity (prefix definition): per run, the largest sparsity s such that every point with sparsity <= s
  keeps val_loss <= loss0 + loss_tol * |loss0| and val_accuracy >= acc0 - acc_tol, where loss0 and acc0 are the
  values at the smallest threshold (t = 0). Both limits are one-sided; a NaN accuracy (regression) passes. Averaged
  over runs.
- Rank: rank of the mean AUC among the measures of the condition, 1 = best, ties averaged.

Curves show, at each threshold, the mean over runs of the metric against the mean achieved sparsity, with a 95%
t-interval band. Figures are written one per (task, model, pooling, scope, normalization, replacement) combination,
named ``<kind>_<task>_<model>_<pooling>_<scope>_<normalization>_<replacement>.<fmt>``, with facets aggregation
(columns) x epoch (rows). Missing key values (e.g. no pooling) read as "-".
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns
from matplotlib.lines import Line2D
from scipy import integrate, stats

COLUMNS = [
    "run_id", "task", "model", "seed", "epoch", "measure", "aggregation", "pooling", "scope", "normalization",
    "replacement", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds",
    "sweep_seconds",
]  # fmt: skip
PANEL = ["task", "model", "pooling", "scope", "normalization", "replacement"]
CONDITION = ["task", "model", "epoch", "aggregation", "pooling", "scope", "normalization", "replacement"]
KEYS = ["task", "model", "measure", "aggregation", "pooling", "scope", "normalization", "replacement"]
RUN = ["run_id", "seed"]
FORMATS = ("png", "svg", "pdf")
MIN_MEASURES, MIN_BLOCKS = 3, 3
SPARSITY_LABEL = "sparsity (fraction of prunable weights replaced)"
METRIC_LABELS = {"val_loss": "validation loss", "val_accuracy": "validation accuracy (fraction correct)"}


# Loading ------------------------------------------------------------------------------------------------------


def load(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Reads and concatenates result CSVs.

    Args:
        paths: one path or glob, or several.

    Returns:
        All rows, with a ``num_classes`` column from each run's ``<csv stem>.<run_id>.json`` (NaN when absent or null).
        Rows whose pooling is ``"none"`` (aggregations where pooling has no effect, such as ``weight``) are
        repeated once per pooling the data hold, so they share figures and rankings with ``unit`` and ``filter``.

    Raises:
        FileNotFoundError: a path or glob matches no file.
        ValueError: a CSV has no rows or lacks required columns (both named in the message).
    """
    files = _expand([paths] if isinstance(paths, str | Path) else list(paths))
    return _share_unpooled(pd.concat([_read_one(f) for f in files], ignore_index=True))


def _share_unpooled(df: pd.DataFrame) -> pd.DataFrame:
    """Repeats ``pooling == "none"`` rows under every real pooling present (unchanged if there is none)."""
    unpooled = df["pooling"] == "none"
    poolings = sorted(set(df.loc[~unpooled, "pooling"]) - {"-"})
    if not poolings or not unpooled.any():
        return df
    copies = [df[unpooled].assign(pooling=p) for p in poolings]
    return pd.concat([df[~unpooled], *copies], ignore_index=True)


def _expand(patterns: list) -> list[str]:
    """Expands globs, in order; every pattern must match."""
    if not patterns:
        raise ValueError("No result CSVs given. Received: paths=[]")
    files = []
    for pattern in map(str, patterns):
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"No file matches {pattern!r}")
        files += matches
    return files


def _read_one(path: str) -> pd.DataFrame:
    """Reads one CSV, checks it, and attaches the class count of each run."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} has no rows") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is missing columns {missing}. Received columns: {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path} has no rows")
    df[KEYS] = df[KEYS].fillna("-")
    classes = {r: _num_classes(path, r) for r in df["run_id"].unique()}
    return df.assign(num_classes=df["run_id"].map(classes))


def _num_classes(csv_path: str, run_id) -> float:
    """Returns num_classes from the run's metadata JSON, or NaN when unknown."""
    meta = Path(csv_path).with_name(f"{Path(csv_path).stem}.{run_id}.json")
    if not meta.is_file():
        return np.nan
    value = json.loads(meta.read_text()).get("num_classes")
    return np.nan if value is None else float(value)


# Scores -------------------------------------------------------------------------------------------------------


def auc(sparsity, loss) -> float:
    """Trapezoid area under loss over sparsity, after sorting the points by sparsity."""
    order = np.argsort(np.asarray(sparsity, dtype=float), kind="stable")
    return float(integrate.trapezoid(np.asarray(loss, dtype=float)[order], np.asarray(sparsity, dtype=float)[order]))


def tolerated_sparsity(run: pd.DataFrame, loss_tol: float = 0.10, acc_tol: float = 0.01) -> float:
    """Largest sparsity up to which every point stays within tolerance of the t = 0 point (see module docstring).

    Args:
        run: one run's rows for one condition and measure.
        loss_tol: relative loss increase allowed (0.10 = 10%).
        acc_tol: accuracy drop allowed, as a fraction (0.01 = 1 percentage point).
    """
    run = run.sort_values(["sparsity", "threshold"])
    base = run.loc[run["threshold"].idxmin()]
    ok = run["val_loss"] <= base["val_loss"] + loss_tol * abs(base["val_loss"])
    ok &= ~(run["val_accuracy"] < base["val_accuracy"] - acc_tol)
    prefix = np.logical_and.accumulate(ok.to_numpy())
    return float(run["sparsity"][prefix].max())


def run_scores(df: pd.DataFrame, loss_tol: float = 0.10, acc_tol: float = 0.01) -> pd.DataFrame:
    """AUC, tolerated sparsity and measure time of every (condition, measure, run)."""
    keys = [*CONDITION, "measure", *RUN]
    rows = [
        (*key, auc(g["sparsity"], g["val_loss"]), tolerated_sparsity(g, loss_tol, acc_tol), g["measure_seconds"].mean())
        for key, g in df.groupby(keys, dropna=False, sort=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, "auc", "tolerated_sparsity", "measure_seconds"])


def rank_table(df: pd.DataFrame, loss_tol: float = 0.10, acc_tol: float = 0.01) -> pd.DataFrame:
    """One row per (condition, measure): mean AUC, its SD over runs, mean tolerated sparsity, rank by AUC."""
    _check_tolerances(loss_tol, acc_tol)
    table = (
        run_scores(df, loss_tol, acc_tol)
        .groupby([*CONDITION, "measure"], dropna=False)
        .agg(
            auc=("auc", "mean"),
            auc_sd=("auc", "std"),
            tolerated_sparsity=("tolerated_sparsity", "mean"),
            measure_seconds=("measure_seconds", "mean"),
            n_runs=("auc", "size"),
        )
        .reset_index()
    )
    table["rank"] = table.groupby(CONDITION, dropna=False)["auc"].rank(method="average")
    return table.sort_values([*CONDITION, "rank"], ignore_index=True)


def _check_tolerances(loss_tol: float, acc_tol: float) -> None:
    if loss_tol < 0 or acc_tol < 0:
        raise ValueError(f"Tolerances must be >= 0. Received: loss_tol={loss_tol}, acc_tol={acc_tol}")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Best measure (lowest rank, then AUC) per aggregation at the last epoch of each task and model."""
    last = table[table["epoch"] == table.groupby(["task", "model"])["epoch"].transform("max")]
    best = last.sort_values(["rank", "auc"]).groupby([*PANEL, "aggregation"], dropna=False).head(1)
    columns = [*PANEL, "aggregation", "epoch", "measure", "auc", "tolerated_sparsity", "n_runs"]
    return best[columns].sort_values([*PANEL, "aggregation"], ignore_index=True)


def friedman(table: pd.DataFrame, min_measures: int = MIN_MEASURES, min_blocks: int = MIN_BLOCKS) -> dict:
    """Mean rank of each measure over conditions, Friedman test and Nemenyi post-hoc p-values.

    Blocks are the conditions holding every measure. Blocks whose AUCs are identical for every measure are
    counted once: they are the same sweeps seen twice (``weight`` rows shared with each pooling, or ``filter``
    on a model without convolutions, which equals ``weight``). Epochs of one run are not independent, so
    p-values are optimistic when several epochs count as blocks.

    Returns:
        Keys ``mean_ranks`` (Series, 1 = best), ``n_blocks``, ``n_measures``, ``statistic``, ``pvalue``,
        ``nemenyi`` (DataFrame of p-values) and ``note``; the test entries are None when skipped.
    """
    blocks = table.set_index([*CONDITION, "measure"])["auc"].unstack("measure").dropna().drop_duplicates()
    result = {"mean_ranks": blocks.rank(axis=1).mean().sort_values(), "n_blocks": len(blocks)}
    result |= {"n_measures": blocks.shape[1], "statistic": None, "pvalue": None, "nemenyi": None}
    if blocks.shape[1] < min_measures or len(blocks) < min_blocks:
        note = f"needs >= {min_measures} measures and >= {min_blocks} complete conditions"
        return result | {"note": f"Friedman test skipped: {note}; found {blocks.shape[1]} and {len(blocks)}."}
    statistic, pvalue = stats.friedmanchisquare(*blocks.to_numpy().T)
    if not np.isfinite(statistic):
        return result | {"note": "Friedman test skipped: every measure ties in every condition."}
    nemenyi = sp.posthoc_nemenyi_friedman(blocks)
    return result | {"statistic": statistic, "pvalue": pvalue, "nemenyi": nemenyi, "note": ""}


# Figures ------------------------------------------------------------------------------------------------------


def select_epochs(df: pd.DataFrame, epochs: Iterable[int] | None = None) -> list[int]:
    """The requested epochs, checked against the data; by default the first, middle and last."""
    available = sorted(int(e) for e in df["epoch"].unique())
    if epochs is None:
        return sorted({available[0], available[(len(available) - 1) // 2], available[-1]})
    missing = sorted(set(epochs) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: {list(epochs)}")
    return sorted(set(epochs))


def curve_stats(df: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """Per (condition, measure, threshold): mean sparsity, mean metric and its 95% t-interval over runs."""
    grouped = df.groupby([*CONDITION, "measure", "threshold"], dropna=False)
    out = grouped.agg(
        sparsity=("sparsity", "mean"), mean=(metric, "mean"), sd=(metric, "std"), n=(metric, "count")
    ).reset_index()
    half = (stats.t.ppf(0.975, out["n"] - 1) * out["sd"] / np.sqrt(out["n"])).fillna(0.0)
    return out.assign(lo=out["mean"] - half, hi=out["mean"] + half)


def plot_curves(df: pd.DataFrame, metric: str = "val_loss", epochs=None, num_classes: int | None = None):
    """Metric over sparsity, one line per measure; facets aggregation (columns) x epoch (rows).

    Args:
        df: rows of one (task, model, pooling, scope, normalization, replacement) combination.
        metric: "val_loss" or "val_accuracy".
        epochs: epochs to show; default first, middle, last.
        num_classes: class count for the chance line; default from the runs' JSON metadata.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(df)
    epochs, aggs = select_epochs(df, epochs), sorted(df["aggregation"].unique())
    data = curve_stats(df[df["epoch"].isin(epochs)], metric)
    measures = sorted(data["measure"].unique())
    colors = dict(zip(measures, sns.color_palette(n_colors=len(measures)), strict=True))
    fig, axes = plt.subplots(len(epochs), len(aggs), figsize=(3.6 * len(aggs) + 2, 2.8 * len(epochs) + 0.8),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for (i, epoch), (j, agg) in itertools.product(enumerate(epochs), enumerate(aggs)):
        _draw_curves(axes[i, j], data[(data["epoch"] == epoch) & (data["aggregation"] == agg)], colors)
        axes[i, j].set_title(f"{agg}, epoch {epoch}", fontsize="medium")
    handles = [Line2D([], [], color=c, label=m) for m, c in colors.items()]
    handles += _chance_lines(axes, metric, _classes(df, num_classes))
    fig.legend(handles=handles, loc="outside right upper", title="measure")
    fig.supxlabel(SPARSITY_LABEL)
    fig.supylabel(_metric_label(metric, _classes(df, num_classes)))
    fig.suptitle(f"{_title(key, per_line=3)}\nmean over runs, band = 95% CI", fontsize="medium")
    return fig


def _draw_curves(ax, data: pd.DataFrame, colors: dict) -> None:
    for measure, g in data.sort_values("sparsity").groupby("measure"):
        ax.plot(g["sparsity"], g["mean"], color=colors[measure], lw=1.5)
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


def plot_rank_heatmap(table: pd.DataFrame):
    """Rank of each measure (rows, best mean rank first) at each epoch (columns), one heatmap per aggregation.

    Args:
        table: ``rank_table`` rows of one (task, model, pooling, scope, normalization, replacement) combination.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(table)
    aggs, n_measures = sorted(table["aggregation"].unique()), table["measure"].nunique()
    n_epochs = table["epoch"].nunique()
    fig, axes = plt.subplots(1, len(aggs), figsize=(min(0.5 * n_epochs, 12) * len(aggs) + 3, 0.45 * n_measures + 1.6),
                             squeeze=False, layout="constrained")  # fmt: skip
    order = table.groupby("measure")["rank"].mean().sort_values().index
    for ax, agg in zip(axes[0], aggs, strict=True):
        grid = table[table["aggregation"] == agg].pivot_table(index="measure", columns="epoch", values="rank")
        grid = grid.reindex([m for m in order if m in grid.index])
        sns.heatmap(grid, ax=ax, annot=n_epochs <= 20, fmt=".3g", cmap="viridis_r", vmin=1, vmax=n_measures,
                    cbar_kws={"label": "rank by AUC (1 = best)"})  # fmt: skip
        ax.set(title=agg, xlabel="epoch", ylabel="measure")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(_title(key, per_line=2), fontsize="medium")
    return fig


def plot_cd(result: dict):
    """Critical-difference diagram from ``friedman(...)``; returns the Figure."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * result["n_measures"] + 1.8), layout="constrained")
    sp.critical_difference_diagram(result["mean_ranks"], result["nemenyi"], ax=ax)
    ax.set_title(
        f"Mean rank by AUC over {result['n_blocks']} conditions (1 = best)\n"
        f"Friedman p = {result['pvalue']:.3g}\nbars join measures Nemenyi cannot separate (alpha 0.05)"
    )
    return fig


def _single_panel(df: pd.DataFrame) -> tuple:
    """The one (task, model, pooling, scope, normalization, replacement) combination of ``df``."""
    combos = df[PANEL].drop_duplicates()
    if len(combos) != 1:
        raise ValueError(f"Expected one combination of {PANEL}; filter the rows first. Received: {len(combos)}")
    return tuple(combos.iloc[0])


def _title(key: tuple, per_line: int = len(PANEL)) -> str:
    pairs = [f"{c}={v}" for c, v in zip(PANEL, key, strict=True)]
    return "\n".join(", ".join(pairs[i : i + per_line]) for i in range(0, len(pairs), per_line))


def _slug(key: tuple) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(v)) for v in key)


# Report -------------------------------------------------------------------------------------------------------


def report(paths_or_df, out_dir, fmt="png", epochs=None, loss_tol=0.10, acc_tol=0.01, num_classes=None) -> dict:
    """Writes every table and figure, and returns them.

    Args:
        paths_or_df: CSV paths or globs (see ``load``), or an already loaded DataFrame.
        out_dir: folder for the outputs; created when absent.
        fmt: figure format, "png", "svg" or "pdf".
        epochs: epochs shown in the curve figures; default first, middle, last.
        loss_tol: relative loss increase tolerated (0.10 = 10%).
        acc_tol: accuracy drop tolerated, as a fraction (0.01 = 1 percentage point).
        num_classes: class count for the chance lines; default from the runs' JSON metadata.

    Returns:
        Keys ``files`` (written paths), ``ranking``, ``summary`` (DataFrames) and ``friedman`` (see ``friedman``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}. Received: fmt={fmt!r}")
    df = paths_or_df if isinstance(paths_or_df, pd.DataFrame) else load(paths_or_df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = rank_table(df, loss_tol, acc_tol)
    result = {"ranking": table, "summary": summary(table), "friedman": friedman(table)}
    files = _write_tables(out, result) + _write_figures(out, df, table, fmt, epochs, num_classes)
    if result["friedman"]["statistic"] is not None:
        files.append(_save(plot_cd(result["friedman"]), out / f"cd_diagram.{fmt}"))
    return result | {"files": files}


def _write_tables(out: Path, result: dict) -> list[Path]:
    """Writes ranking.csv and ranking.md (summary, mean ranks, per-condition table)."""
    result["ranking"].to_csv(out / "ranking.csv", index=False)
    ranks = result["friedman"]["mean_ranks"].rename("mean_rank").reset_index()
    text = [
        "# Measure ranking\n\nBest measure per aggregation at the last epoch:\n", to_markdown(result["summary"]),
        f"\nMean rank by AUC over conditions (1 = best). {_friedman_line(result['friedman'])}\n", to_markdown(ranks),
        "\nPer condition (AUC of validation loss over sparsity, lower is better):\n", to_markdown(result["ranking"]),
    ]  # fmt: skip
    (out / "ranking.md").write_text("\n".join(text))
    return [out / "ranking.csv", out / "ranking.md"]


def _write_figures(out: Path, df: pd.DataFrame, table: pd.DataFrame, fmt: str, epochs, num_classes) -> list[Path]:
    """Writes loss, accuracy and rank-heatmap figures for each panel combination."""
    tables = dict(iter(table.groupby(PANEL, dropna=False)))
    files = []
    for key, part in df.groupby(PANEL, dropna=False):
        figures = {
            "loss": plot_curves(part, "val_loss", epochs, num_classes),
            "rank_heatmap": plot_rank_heatmap(tables[key]),
        }
        if part["val_accuracy"].notna().any():
            figures["accuracy"] = plot_curves(part, "val_accuracy", epochs, num_classes)
        files += [_save(fig, out / f"{kind}_{_slug(key)}.{fmt}") for kind, fig in figures.items()]
    return files


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table, without the optional ``tabulate`` dependency."""
    cells = df.map(lambda v: format(v, floatfmt) if isinstance(v, float) else str(v).replace("|", r"\|"))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]) + "\n"


def _friedman_line(result: dict) -> str:
    if result["statistic"] is None:
        return result["note"]
    return (
        f"Friedman chi2 = {result['statistic']:.3g}, p = {result['pvalue']:.3g} "
        f"({result['n_measures']} measures, {result['n_blocks']} conditions)."
    )


def format_report(result: dict) -> str:
    """The terminal summary of ``report(...)``."""
    best = result["summary"]
    constant = [c for c in PANEL if best[c].nunique(dropna=False) == 1]
    lines = ["Best measure per aggregation at the last epoch (AUC of val loss over sparsity, lower is better):"]
    lines += [", ".join(f"{c}={best.loc[0, c]}" for c in constant)]
    lines += [best.drop(columns=constant).to_string(index=False)]
    mean_ranks = ", ".join(f"{m} {r:.2f}" for m, r in result["friedman"]["mean_ranks"].items())
    lines += ["", f"Mean ranks: {mean_ranks}", _friedman_line(result["friedman"])]
    return "\n".join(lines + [f"Wrote {len(result['files'])} files, e.g. {result['files'][0]}"])


# Command line -------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Figures and measure rankings from harness result CSVs.")
    parser.add_argument("paths", nargs="+", help="result CSVs or globs")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="figure format (default: png)")
    parser.add_argument("--epochs", type=int, nargs="+", help="epochs to plot (default: first, middle, last)")
    parser.add_argument("--loss-tol", type=float, default=0.10, help="relative loss increase tolerated (0.10)")
    parser.add_argument("--acc-tol", type=float, default=0.01, help="accuracy drop tolerated, fraction (0.01)")
    parser.add_argument("--classes", type=int, help="class count for the chance line (default: run metadata)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    matplotlib.use("Agg")
    try:
        result = report(args.paths, args.out, args.format, args.epochs, args.loss_tol, args.acc_tol, args.classes)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
