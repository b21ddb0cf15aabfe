"""Per-run scores of a sparsity curve, and the metrics a ranking is about.

Metrics (``--metric``), each computed per run (one curve of one seed) and condition:

- ``loss_auc``: trapezoid area under val_loss over achieved sparsity (lower is better; column ``auc``);
- ``accuracy_auc``: the same area under val_accuracy (higher is better);
- ``accuracy_at:S`` / ``loss_at:S``: val_accuracy / val_loss at sparsity S, linear interpolation between the two
  measured points around S; refused when S lies outside the run's measured sparsities;
- ``tolerated_sparsity``: the largest sparsity within the loss and accuracy tolerances (higher is better).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import integrate

from reports.keys import RUN, key_columns
from reports.options import METRIC_NAMES, Metric, check_tolerances, parse_metric, parse_metrics  # noqa: F401
from reports.validate import nonfinite_rows


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

    Returns:
        The sparsity (fraction in [0, 1]); NaN when the t = 0 loss is not finite.
    """
    run = run.sort_values(["sparsity", "threshold"])
    base = run.loc[run["threshold"].idxmin()]
    if not np.isfinite(base["val_loss"]):
        return float("nan")
    ok = run["val_loss"] <= base["val_loss"] + loss_tol * abs(base["val_loss"])
    ok &= ~(run["val_accuracy"] < base["val_accuracy"] - acc_tol)
    prefix = np.logical_and.accumulate(ok.to_numpy())
    return float(run["sparsity"][prefix].max())


def run_scores(df: pd.DataFrame, loss_tol: float = 0.10, acc_tol: float = 0.01, metrics=()) -> pd.DataFrame:
    """AUC, tolerated sparsity, measure time and each extra metric's value of every (key columns, epoch, run).

    Args:
        df: rows from ``load``.
        loss_tol: relative loss increase tolerated.
        acc_tol: accuracy drop tolerated, fraction.
        metrics: ``Metric`` objects (or their names) whose columns are added (``auc`` and ``tolerated_sparsity``
            are always present).

    Returns:
        One row per curve; every metric is NaN for a curve holding a non-finite loss (``reports.validate``), so
        the ranking excludes its seed by name instead of ranking it on a NaN or an infinite value.

    Raises:
        ValueError: a metric at a sparsity S outside a run's measured sparsities (names the run and the range).
    """
    check_tolerances(loss_tol, acc_tol)
    keys = [*key_columns(df), "epoch", *RUN]
    extra = [m for m in dict.fromkeys(map(parse_metric, metrics)) if m.column not in ("auc", "tolerated_sparsity")]
    df = df.assign(_nonfinite=nonfinite_rows(df).to_numpy())
    rows = [
        (*key, *_unranked(g["_nonfinite"].any(), auc(g["sparsity"], g["val_loss"]),
                          tolerated_sparsity(g, loss_tol, acc_tol)), g["measure_seconds"].mean(),
         *_unranked(g["_nonfinite"].any(), *(metric_value(g, m, key, keys) for m in extra)))
        for key, g in df.groupby(keys, dropna=False, sort=False)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "auc", "tolerated_sparsity", "measure_seconds", *(m.column for m in extra)])


def _unranked(nonfinite: bool, *values: float) -> tuple[float, ...]:
    """The values, or NaN for each when the curve holds a non-finite loss (``reports.validate.nonfinite_rows``)."""
    return tuple(float("nan") for _ in values) if nonfinite else values


def value_at(sparsity, values, at: float) -> float:
    """``values`` at sparsity ``at``: linear interpolation between the measured points, sorted by sparsity.

    Raises:
        ValueError: ``at`` lies outside [min, max] of the measured sparsities.
    """
    sparsity, values = np.asarray(sparsity, float), np.asarray(values, float)
    order = np.argsort(sparsity, kind="stable")
    low, high = sparsity[order[0]], sparsity[order[-1]]
    if not low - 1e-9 <= at <= high + 1e-9:
        raise ValueError(f"sparsity {at:g} lies outside the measured sparsities [{low:.4g}, {high:.4g}]")
    return float(np.interp(at, sparsity[order], values[order]))


def metric_value(run: pd.DataFrame, metric: Metric, key=(), keys=()) -> float:
    """One run's value of ``metric`` (see the module docstring); ``key``/``keys`` name the run in errors."""
    column = "val_accuracy" if metric.name.startswith("accuracy") else "val_loss"
    if metric.at is None:
        return auc(run["sparsity"], run[column])
    try:
        return value_at(run["sparsity"], run[column], metric.at)
    except ValueError as err:
        where = ", ".join(f"{c}={v}" for c, v in zip(keys, key, strict=False) if c in ("run_id", "measure", "epoch"))
        raise ValueError(f"metric {metric.name}: {err} of run ({where}); choose S inside it") from None
