"""The seed-002 statistics: relative updating r, relative fork difference s, and their correlations."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_POINTS = 3


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / (a + b)`` elementwise (float64), NaN where ``a + b == 0``.

    For r, ``a`` and ``b`` are the two groups' update tallies (a + b = 0: the
    parameter never moved while tallied, e.g. a weight from an input that is
    always exactly 0); for s they are the fork differences c and d (c + d = 0:
    all four forks left the parameter at the same value). Such parameters
    carry no ratio and are left out of every correlation and counted.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, a / np.where(total > 0, total, 1.0), np.nan)


def fork_differences(forks: list[list[np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``c = |theta_A - theta_B|`` and ``d = |theta_C - theta_D|`` per parameter, from the four forks' weights in order."""
    first, second, third, fourth = forks
    c = [np.abs(p.astype(np.float64) - q) for p, q in zip(first, second)]
    d = [np.abs(p.astype(np.float64) - q) for p, q in zip(third, fourth)]
    return c, d


def correlate(r: np.ndarray, s: np.ndarray) -> dict:
    """Pearson r (two-sided p), R² = r², Spearman rho (p) of ``s`` on ``r`` over the pairs where both are finite.

    Returns:
        ``n`` (pairs used), ``n_undefined`` (pairs left out), and the statistics;
        NaN statistics when fewer than 3 pairs remain or either side is constant.
    """
    r, s = np.ravel(r), np.ravel(s)
    keep = np.isfinite(r) & np.isfinite(s)
    out = dict(n=int(keep.sum()), n_undefined=int((~keep).sum()), pearson_r=math.nan, pearson_p=math.nan,
               r2=math.nan, spearman_rho=math.nan, spearman_p=math.nan)
    x, y = r[keep], s[keep]
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    out.update(pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue), r2=float(pearson.statistic ** 2),
               spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue))
    return out


def partial(r: np.ndarray, s: np.ndarray, q: np.ndarray) -> dict:
    """Correlation of ``s`` with the baseline ``q``, and the partial correlation of ``s`` with ``r`` given ``q``.

        rho_{sr.q} = (rho_sr - rho_sq rho_rq) / sqrt((1 - rho_sq^2)(1 - rho_rq^2))   (Pearson, over finite triples)

    equal to the Pearson r of the residuals of s and r after a least-squares line on q; its two-sided p uses
    t = rho sqrt((n - 3) / (1 - rho^2)) with n - 3 degrees of freedom (one variable partialled out).

    Returns:
        ``n``, ``baseline_r2`` (R² of s on q), ``baseline_r``, ``partial_r``, ``partial_p``; NaN with fewer than
        4 triples or a constant variable.
    """
    r, s, q = (np.ravel(np.asarray(v, np.float64)) for v in (r, s, q))
    keep = np.isfinite(r) & np.isfinite(s) & np.isfinite(q)
    out = dict(n=int(keep.sum()), baseline_r=math.nan, baseline_r2=math.nan, partial_r=math.nan, partial_p=math.nan)
    x = np.stack([s[keep], r[keep], q[keep]])
    if x.shape[1] < MIN_POINTS + 1 or np.any(np.ptp(x, axis=1) == 0):
        return out
    c = np.corrcoef(x)
    rho = (c[0, 1] - c[0, 2] * c[1, 2]) / math.sqrt((1 - c[0, 2] ** 2) * (1 - c[1, 2] ** 2))
    dof = x.shape[1] - 3
    p = 2 * stats.t.sf(abs(rho) * math.sqrt(dof / max(1 - rho**2, 1e-300)), dof)
    out.update(baseline_r=float(c[0, 2]), baseline_r2=float(c[0, 2] ** 2), partial_r=float(rho), partial_p=float(p))
    return out


def pixel_map(r_kernel: np.ndarray, s_kernel: np.ndarray) -> np.ndarray:
    """Pearson r of s on r over each input's outgoing weights (rows of ``(n_in, units)`` kernels).

    Returns:
        ``(n_in,)`` float64; NaN where fewer than 3 finite pairs or a constant side.
    """
    return np.array([correlate(r_row, s_row)["pearson_r"] for r_row, s_row in zip(r_kernel, s_kernel)])


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation, min, max and a 95% Student-t interval of the mean over seeds (NaN-free values)."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    out = dict(n_seeds=len(v), mean=math.nan, std=math.nan, min=math.nan, max=math.nan, ci95=[math.nan, math.nan])
    if len(v) == 0:
        return out
    out.update(mean=float(v.mean()), min=float(v.min()), max=float(v.max()))
    if len(v) > 1:
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
        out.update(std=float(v.std(ddof=1)), ci95=[float(v.mean() - half), float(v.mean() + half)])
    return out
