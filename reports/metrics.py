"""Per-run scores of a sparsity curve: area under the loss curve and tolerated sparsity."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import integrate

from reports.keys import RUN, key_columns


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


def run_scores(df: pd.DataFrame, loss_tol: float = 0.10, acc_tol: float = 0.01) -> pd.DataFrame:
    """AUC, tolerated sparsity and measure time of every (key columns, epoch, run)."""
    _check_tolerances(loss_tol, acc_tol)
    keys = [*key_columns(df), "epoch", *RUN]
    rows = [
        (*key, auc(g["sparsity"], g["val_loss"]), tolerated_sparsity(g, loss_tol, acc_tol), g["measure_seconds"].mean())
        for key, g in df.groupby(keys, dropna=False, sort=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, "auc", "tolerated_sparsity", "measure_seconds"])


def _check_tolerances(loss_tol: float, acc_tol: float) -> None:
    if not (loss_tol >= 0 and acc_tol >= 0):
        raise ValueError(f"Tolerances must be >= 0. Received: loss_tol={loss_tol}, acc_tol={acc_tol}")
