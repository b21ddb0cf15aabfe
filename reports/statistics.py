"""Intervals over seeds and the tests with seeds as blocks: Friedman, Wilcoxon signed-rank with Holm."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

from reports.keys import N_RESAMPLES, condition_columns


def mean_intervals(samples: Sequence, method: str = "bootstrap", bounds=(-np.inf, np.inf), confidence: float = 0.95):
    """95% intervals of the mean of each sample, clipped to ``bounds``; NaN for samples of fewer than two values.

    Args:
        samples: 1-D arrays, one per group (e.g. one AUC per seed).
        method: "bootstrap": percentile bootstrap, ``scipy.stats.bootstrap`` with 9,999 resamples and a fixed
            seed; "t": mean +- t(0.975, n - 1) * sd / sqrt(n).
        bounds: the metric's range, (low, high).
        confidence: the interval's confidence level.

    Returns:
        Arrays ``(low, high)``, one entry per sample.
    """
    low, high = np.full(len(samples), np.nan), np.full(len(samples), np.nan)
    sizes = np.array([len(s) for s in samples])
    for n in np.unique(sizes[sizes >= 2]):
        index = np.flatnonzero(sizes == n)
        low[index], high[index] = _interval(np.stack([np.asarray(samples[i], float) for i in index]), method, confidence)
    return np.clip(low, *bounds), np.clip(high, *bounds)


def _interval(data: np.ndarray, method: str, confidence: float):
    """Interval of the mean along the last axis of ``data`` (groups x n)."""
    if method == "t":
        half = stats.t.ppf((1 + confidence) / 2, data.shape[1] - 1) * data.std(axis=1, ddof=1) / np.sqrt(data.shape[1])
        return data.mean(axis=1) - half, data.mean(axis=1) + half
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (data,), np.mean, axis=-1, vectorized=True, method="percentile", n_resamples=N_RESAMPLES,
            batch=max(1, 2_000_000 // data.size), confidence_level=confidence, random_state=np.random.default_rng(0),
        )  # fmt: skip
    return result.confidence_interval.low, result.confidence_interval.high


def interval_caption(method: str, n_seeds: int, bounds=None) -> str:
    """Caption of a mean with its band: which interval, over how many seeds; no claim for one seed."""
    if n_seeds < 2:
        return "one seed: no band, no interval"
    if method == "bootstrap":
        return f"mean over {n_seeds} seeds; band = 95% percentile bootstrap over seeds"
    clip = f", clipped to [{bounds[0]:g}, {bounds[1]:g}]" if bounds else ""
    return f"mean over {n_seeds} seeds; band = 95% t-interval over seeds{clip}"


def wilcoxon_holm(matrix: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values of two-sided Wilcoxon signed-rank tests between every pair of columns.

    Args:
        matrix: seeds (rows, the blocks) x treatments (columns) of AUCs; pairs are matched by row.

    Returns:
        Symmetric DataFrame treatments x treatments, 1 on the diagonal. A pair whose differences are all zero
        gets p = 1.

    Source:
        Benavoli, Corani and Mangili 2016, JMLR 17(5); ``scikit_posthocs.posthoc_wilcoxon(..., p_adjust="holm")``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = sp.posthoc_wilcoxon([matrix[c].to_numpy(float) for c in matrix.columns], p_adjust="holm")
    return pd.DataFrame(p.to_numpy(), index=matrix.columns, columns=matrix.columns)


def seeds_needed(k: int, alpha: float = 0.05) -> int:
    """Fewest seeds with which Holm over the k(k-1)/2 pairs can separate any pair (exact two-sided Wilcoxon).

    The smallest two-sided p of n paired values is 2 / 2**n; Holm multiplies the smallest p by the number of
    pairs m, so a pair can be separated only when m * 2 / 2**n < alpha.
    """
    pairs = max(k * (k - 1) // 2, 1)
    return next(n for n in itertools.count(1) if pairs * 2.0 / 2**n < alpha)


def condition_test(matrix: pd.DataFrame, alpha: float = 0.05) -> tuple[dict, pd.DataFrame | None]:
    """Ranks the treatments of one condition and tests them, with seeds as blocks.

    Args:
        matrix: seeds x treatments of AUCs, complete and finite.
        alpha: significance level.

    Returns:
        A dict (``n_seeds``, ``n_treatments``, ``best``, ``second``, their mean ranks and mean AUCs,
        ``friedman_statistic``, ``friedman_p``, ``p_best_second`` (Holm-adjusted Wilcoxon), ``significant``,
        ``note``) and the Holm-adjusted p-values (None with one seed or one treatment).
    """
    order = pd.DataFrame({"rank": matrix.rank(axis=1).mean(), "auc": matrix.mean()}).sort_values(["rank", "auc"])
    n, k = matrix.shape
    row = {"n_seeds": n, "n_treatments": k, "best": order.index[0], "best_mean_rank": order["rank"].iloc[0],
           "best_auc": order["auc"].iloc[0], "second": None, "second_mean_rank": np.nan, "second_auc": np.nan,
           "friedman_statistic": np.nan, "friedman_p": np.nan, "p_best_second": np.nan, "significant": False}  # fmt: skip
    if k > 1:
        row |= {"second": order.index[1], "second_mean_rank": order["rank"].iloc[1], "second_auc": order["auc"].iloc[1]}
    if n < 2 or k < 2:
        why = "one seed: no test is possible; the ranking is descriptive" if n < 2 else "one treatment: nothing to rank"
        return row | {"note": why}, None
    pvalues = wilcoxon_holm(matrix)
    row |= _friedman(matrix) | {"p_best_second": pvalues.loc[order.index[0], order.index[1]]}
    return row | {"significant": bool(row["p_best_second"] < alpha), "note": _power_note(n, k, alpha)}, pvalues


def _friedman(matrix: pd.DataFrame) -> dict:
    if matrix.shape[1] < 3:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        statistic, pvalue = stats.friedmanchisquare(*matrix.to_numpy(float).T)
    return {"friedman_statistic": statistic, "friedman_p": pvalue}


def _power_note(n: int, k: int, alpha: float) -> str:
    needed = seeds_needed(k, alpha)
    if n >= needed:
        return ""
    return (
        f"with {n} seeds the smallest two-sided Wilcoxon p is {2 / 2**n:.3g}; under Holm over {k * (k - 1) // 2} "
        f"pairs no pair can reach alpha {alpha:g}; that needs >= {needed} seeds"
    )


def rank_tests(used: pd.DataFrame, compare: Sequence[str] = ("measure",), alpha: float = 0.05):
    """``condition_test`` for every condition of ``used`` (complete blocks, ranked epochs only).

    Returns:
        ``(tests, pvalues)``: one row per condition (condition columns, then the ``condition_test`` fields), and a
        dict condition key (tuple) -> Holm-adjusted p-value DataFrame (absent with one seed or one treatment).
    """
    conditions = condition_columns(used, compare)
    rows, pvalues = [], {}
    for key, part in used.groupby(conditions, dropna=False):
        row, p = condition_test(part.pivot(index="seed", columns="treatment", values="auc"), alpha)
        rows.append(dict(zip(conditions, key, strict=True)) | row)
        if p is not None:
            pvalues[key] = p
    return pd.DataFrame(rows, columns=[*conditions, *_TEST_FIELDS]), pvalues


_TEST_FIELDS = [
    "n_seeds", "n_treatments", "best", "best_mean_rank", "best_auc", "second", "second_mean_rank", "second_auc",
    "friedman_statistic", "friedman_p", "p_best_second", "significant", "note",
]  # fmt: skip
