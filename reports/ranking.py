"""Complete blocks (seeds) per condition, the rank table, the summary and the mean-rank matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reports._utils import _label
from reports.keys import BOUNDS, condition_columns
from reports.metrics import Metric, parse_metric, run_scores
from reports.statistics import mean_intervals


def replicates(
    scores: pd.DataFrame, compare: Sequence[str] = ("measure",), metric: Metric | str = "loss_auc"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits run scores into complete blocks (seeds) per condition, and the seeds excluded.

    A seed of a condition is kept when every treatment of that condition has a finite value of the metric for it
    (for ``loss_auc``, a finite AUC and tolerated sparsity). Treatments are labelled in a ``treatment`` column
    (the ``compare`` values joined by ", ").

    Returns:
        ``(used, excluded)``: score rows kept, and one row per excluded (condition, seed) with a ``reason``.

    Raises:
        ValueError: a seed appears in two runs of one condition and treatment (their differing settings are not
            recorded), naming the condition, the seed and the runs.
    """
    scores = with_treatment(scores, compare)
    conditions = condition_columns(scores, compare)
    _refuse_repeated_seeds(scores, conditions)
    column = parse_metric(metric).column
    finite = np.isfinite(scores[column].astype(float))
    if column == "auc":
        finite &= np.isfinite(scores["tolerated_sparsity"])
    n_treatments = scores.groupby(conditions, dropna=False)["treatment"].transform("nunique")
    blocks = scores.assign(_finite=finite).groupby([*conditions, "seed"], dropna=False)
    keep = blocks["_finite"].transform("all") & (blocks["treatment"].transform("size") == n_treatments)
    return scores[keep].reset_index(drop=True), _excluded(scores, keep, finite, conditions)


def with_treatment(scores: pd.DataFrame, compare: Sequence[str]) -> pd.DataFrame:
    """Adds the ``treatment`` label: the ``compare`` column values joined by ", "."""
    label = scores[list(compare)].astype(str).agg(", ".join, axis=1) if len(scores) else pd.Series(dtype=str)
    return scores.assign(treatment=label)


def _refuse_repeated_seeds(scores: pd.DataFrame, conditions: list[str]) -> None:
    repeated = scores.duplicated([*conditions, "treatment", "seed"], keep=False)
    if not repeated.any():
        return
    block = [*conditions, "treatment", "seed"]
    first = scores[repeated].iloc[0]
    runs = scores.loc[repeated & (scores[block] == first[block]).all(axis=1), "run_id"]
    raise ValueError(
        f"Seed {first['seed']} appears in runs {sorted(set(runs))} of one condition ({_label(first, conditions)}, "
        f"treatment {first['treatment']}); runs of a condition must differ only in seed, and these differ in "
        "settings not recorded (is each run's metadata JSON beside its CSV?)"
    )


def _excluded(scores: pd.DataFrame, keep, finite, conditions: list[str]) -> pd.DataFrame:
    rows = []
    everything = scores.groupby(conditions, dropna=False)["treatment"].agg(set)
    for key, block in scores[~keep].assign(_finite=finite[~keep]).groupby([*conditions, "seed"], dropna=False):
        bad = sorted(block.loc[~block["_finite"], "treatment"])
        missing = sorted(everything[key[:-1] if len(conditions) > 1 else key[0]] - set(block["treatment"]))
        reason = f"non-finite scores for {bad}" if bad else f"no rows for {missing}"
        rows.append((*key, reason))
    return pd.DataFrame(rows, columns=[*conditions, "seed", "reason"])


def rank_table(
    df: pd.DataFrame, loss_tol=0.10, acc_tol=0.01, compare: Sequence[str] = ("measure",), interval="bootstrap",
    metric: Metric | str = "loss_auc",
) -> pd.DataFrame:  # fmt: skip
    """One row per (condition, treatment) over complete seeds: means, 95% intervals and ranks.

    Columns: the condition columns, the ``compare`` columns, ``treatment``, ``auc`` (mean over seeds) with
    ``auc_lo``/``auc_hi``, ``tolerated_sparsity`` with ``_lo``/``_hi``, ``measure_seconds``, ``n_seeds``,
    ``mean_rank`` (mean over seeds of the per-seed rank by the metric) and ``rank`` (rank of the metric's mean);
    1 = best. ``metric`` names the metric, ``mean`` with ``mean_lo``/``mean_hi`` is its mean over seeds (the same
    as ``auc`` for ``loss_auc``). Intervals are NaN for one seed. Every epoch is included (each its own condition).
    """
    scores = run_scores(df, loss_tol, acc_tol, [metric])
    return table_from_blocks(replicates(scores, compare, metric)[0], compare, interval, metric)


def table_from_blocks(
    used: pd.DataFrame, compare: Sequence[str] = ("measure",), interval="bootstrap", metric: Metric | str = "loss_auc"
) -> pd.DataFrame:
    """``rank_table`` from the complete blocks of ``replicates``."""
    metric = parse_metric(metric)
    conditions = condition_columns(used, compare)
    seeds = used.groupby([*conditions, "seed"], dropna=False)[metric.column]
    used = used.assign(_seed_rank=seeds.rank(ascending=metric.lower_is_better), _mean=used[metric.column].astype(float))
    groups = used.groupby([*conditions, *compare, "treatment"], dropna=False)
    table = groups.agg(
        mean=("_mean", "mean"), auc=("auc", "mean"), tolerated_sparsity=("tolerated_sparsity", "mean"),
        measure_seconds=("measure_seconds", "mean"), n_seeds=("seed", "nunique"), mean_rank=("_seed_rank", "mean"),
    )  # fmt: skip
    for name, column, bounds in (("mean", "_mean", metric.bounds), *((c, c, BOUNDS[c]) for c in BOUNDS_OF_TABLE)):
        low, high = mean_intervals([g.to_numpy(float) for _, g in groups[column]], interval, bounds)
        table.insert(table.columns.get_loc(name) + 1, f"{name}_lo", low)
        table.insert(table.columns.get_loc(name) + 2, f"{name}_hi", high)
    table = table.reset_index().assign(metric=metric.name)
    table["rank"] = table.groupby(conditions, dropna=False)["mean"].rank(ascending=metric.lower_is_better)
    return table.assign(_key=_signed(table["mean"], metric)).sort_values(
        [*conditions, "mean_rank", "_key"], ignore_index=True).drop(columns="_key")


BOUNDS_OF_TABLE = ("auc", "tolerated_sparsity")


def _signed(values: pd.Series, metric: Metric) -> pd.Series:
    """Values with lower = better whatever the metric's direction (for sorting)."""
    return values if metric.lower_is_better else -values


def summary(table: pd.DataFrame, compare: Sequence[str] = ("measure",)) -> pd.DataFrame:
    """Best treatment (lowest mean rank over seeds, then best mean) per condition at the last epoch of each run."""
    conditions = condition_columns(table, compare)
    others = [c for c in conditions if c != "epoch"]
    last = table[table["epoch"] == table.groupby(others, dropna=False)["epoch"].transform("max")]
    metric = parse_metric(table["metric"].iloc[0]) if "metric" in table and len(table) else parse_metric("loss_auc")
    last = last.assign(_key=_signed(last.get("mean", last["auc"]), metric))
    best = last.sort_values(["mean_rank", "_key"]).groupby(conditions, dropna=False).head(1)
    columns = [*conditions, "treatment", "auc", "auc_lo", "auc_hi", "tolerated_sparsity", "mean_rank", "n_seeds"]
    extra = ["metric", "mean", "mean_lo", "mean_hi"] if "metric" in table else []
    return best[[*columns, *extra]].sort_values(conditions, ignore_index=True)


def ranked_epochs(scores: pd.DataFrame, epoch="last", compare: Sequence[str] = ("measure",)) -> pd.Series:
    """Boolean mask of the rows at the ranked epochs: the last epoch of each condition, or the listed epochs.

    Raises:
        ValueError: a listed epoch is not in the data (the available epochs are named).
    """
    if epoch == "last":
        others = [c for c in condition_columns(scores, compare) if c != "epoch"]
        return scores["epoch"] == scores.groupby(others, dropna=False)["epoch"].transform("max")
    available = sorted(int(e) for e in scores["epoch"].unique())
    missing = sorted(set(epoch) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: epoch={epoch}")
    return scores["epoch"].isin(epoch)

def mean_rank_matrix(table: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Mean rank over seeds of each treatment (rows) in each ranked condition (columns), best overall first.

    Columns are labelled by the condition values that differ between the ranked conditions. Then the plain mean
    over conditions (descriptive: conditions of one run are not independent), never pooled across tasks or models:
    one column ``mean`` when the conditions hold one (task, model), else one ``mean task=..., model=...`` each.
    """
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    ranked = table.merge(tests[conditions], on=conditions)
    varying = [c for c in conditions if ranked[c].nunique() > 1] or conditions[:1]
    ranked = ranked.assign(_column=[_label(r, varying) for _, r in ranked.iterrows()])
    matrix = ranked.pivot_table(index="treatment", columns="_column", values="mean_rank", sort=False)
    matrix.columns.name = None
    means = {}
    for name, part in _per_task_model(ranked, conditions):
        means[name] = matrix[list(dict.fromkeys(part["_column"]))].mean(axis=1)
    return matrix.assign(**means).sort_values(next(iter(means))).rename_axis("treatment")


def _per_task_model(ranked: pd.DataFrame, conditions: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(column name, rows) per (task, model) of the ranked conditions: ``mean`` alone when there is one."""
    by = [c for c in ("task", "model") if c in conditions and ranked[c].nunique() > 1]
    if not by:
        return [("mean", ranked)]
    return [(f"mean {_label(part.iloc[0], by)}", part) for _, part in ranked.groupby(by, sort=True)]
