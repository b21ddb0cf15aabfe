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
from reports.metrics import parse_metric
from reports.pairs import PAIR_FIELDS, Family, pair_tests


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


def seeds_needed_tests(m: int, alpha: float = 0.05) -> int:
    """Fewest seeds with which Holm over ``m`` tests can reach ``alpha`` (m * 2 / 2**n < alpha)."""
    return next(n for n in itertools.count(1) if max(m, 1) * 2.0 / 2**n < alpha)


def condition_test(matrix: pd.DataFrame, alpha: float = 0.05, metric="loss_auc", family=None):
    """Ranks the treatments of one condition and tests them, with seeds as blocks.

    Args:
        matrix: seeds x treatments of the metric's values, complete and finite.
        alpha: significance level.
        metric: the ``Metric`` (or its name) the values are of; its direction orders the treatments.
        family: the ``Family`` of pairs tested (default every pair).

    Returns:
        ``(row, pvalues, pairs)``: a dict (``n_seeds``, ``n_treatments``, ``best``, ``second`` by mean rank over
        seeds, their mean ranks and means ``best_mean``/``second_mean``, ``friedman_statistic``, ``friedman_p``,
        ``p_best_second`` (Holm-adjusted Wilcoxon, NaN when the pair is not in the family), ``significant``,
        ``note``, ``family``); the Holm-adjusted p-values as a treatments x treatments matrix (NaN for untested
        pairs; None with one seed or one treatment); and ``pair_tests``'s rows.
    """
    metric, family = parse_metric(metric), family or Family()
    signed = matrix if metric.lower_is_better else -matrix
    order = pd.DataFrame({"rank": signed.rank(axis=1).mean(), "key": signed.mean(), "mean": matrix.mean()})
    order = order.sort_values(["rank", "key"])
    n, k = matrix.shape
    row = {"n_seeds": n, "n_treatments": k, "best": order.index[0], "best_mean_rank": order["rank"].iloc[0],
           "best_mean": order["mean"].iloc[0], "second": None, "second_mean_rank": np.nan, "second_mean": np.nan,
           "friedman_statistic": np.nan, "friedman_p": np.nan, "p_best_second": np.nan, "significant": False,
           "family": ""}  # fmt: skip
    if k > 1:
        row |= {"second": order.index[1], "second_mean_rank": order["rank"].iloc[1], "second_mean": order["mean"].iloc[1]}
    if n < 2 or k < 2:
        why = "one seed: no test is possible; the ranking is descriptive" if n < 2 else "one treatment: nothing to rank"
        return row | {"note": why}, None, pair_tests(matrix.iloc[:0], family, metric, alpha)
    pairs = pair_tests(matrix, family, metric, alpha)
    pvalues = _pvalue_matrix(pairs, matrix.columns)
    row |= _friedman(matrix) | {"p_best_second": pvalues.loc[order.index[0], order.index[1]], "family": _family(pairs)}
    note = _power_note(n, len(pairs), alpha, row["family"]) if len(pairs) else f"no pair of {family.describe(0)}"
    return row | {"significant": bool(row["p_best_second"] < alpha), "note": note}, pvalues, pairs


def _family(pairs: pd.DataFrame) -> str:
    return str(pairs["family"].iloc[0]) if len(pairs) else ""


def _pvalue_matrix(pairs: pd.DataFrame, treatments) -> pd.DataFrame:
    """Symmetric treatments x treatments of adjusted p, 1 on the diagonal, NaN for pairs not tested."""
    index = {t: i for i, t in enumerate(treatments)}
    values = np.full((len(index), len(index)), np.nan)
    np.fill_diagonal(values, 1.0)
    for a, b, p in pairs[["a", "b", "p_adjusted"]].itertuples(index=False):
        values[index[a], index[b]] = values[index[b], index[a]] = p
    return pd.DataFrame(values, index=treatments, columns=treatments)


def _friedman(matrix: pd.DataFrame) -> dict:
    if matrix.shape[1] < 3:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        statistic, pvalue = stats.friedmanchisquare(*matrix.to_numpy(float).T)
    return {"friedman_statistic": statistic, "friedman_p": pvalue}


def _power_note(n: int, m: int, alpha: float, family: str) -> str:
    """Says when Holm over the family's ``m`` tests cannot reach ``alpha`` with ``n`` seeds, naming the family."""
    needed = seeds_needed_tests(m, alpha)
    if n >= needed:
        return ""
    return (
        f"with {n} seeds the smallest two-sided Wilcoxon p is {2 / 2**n:.3g}; under Holm over {family} no pair can "
        f"reach alpha {alpha:g}; that needs >= {needed} seeds"
    )


def rank_tests(used: pd.DataFrame, compare: Sequence[str] = ("measure",), alpha: float = 0.05, metric="loss_auc",
               family=None):  # fmt: skip
    """``condition_test`` for every condition of ``used`` (complete blocks, ranked epochs only).

    Returns:
        ``(tests, pvalues, pairs)``: one row per condition (condition columns, then the ``condition_test``
        fields), a dict condition key (tuple) -> Holm-adjusted p-value DataFrame (absent with one seed or one
        treatment), and the per-pair rows (condition columns, then ``PAIR_FIELDS``).
    """
    metric = parse_metric(metric)
    conditions = condition_columns(used, compare)
    rows, pvalues, pairs = [], {}, []
    for key, part in used.groupby(conditions, dropna=False):
        matrix = part.pivot(index="seed", columns="treatment", values=metric.column).astype(float)
        row, p, tested = condition_test(matrix, alpha, metric, family)
        labels = dict(zip(conditions, key, strict=True))
        rows.append(labels | row)
        pairs.append(tested.assign(**labels)[[*conditions, *PAIR_FIELDS]] if len(tested) else None)
        if p is not None:
            pvalues[key] = p
    kept = [p for p in pairs if p is not None]
    pair_table = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=[*conditions, *PAIR_FIELDS])
    return pd.DataFrame(rows, columns=[*conditions, *_TEST_FIELDS]), pvalues, pair_table


_TEST_FIELDS = [
    "n_seeds", "n_treatments", "best", "best_mean_rank", "best_mean", "second", "second_mean_rank", "second_mean",
    "friedman_statistic", "friedman_p", "p_best_second", "significant", "family", "note",
]  # fmt: skip
