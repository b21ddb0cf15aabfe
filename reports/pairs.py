"""Planned families of paired tests and their per-pair report: raw and Holm-adjusted p, direction, effect sizes.

A family is the set of pairs whose p-values Holm adjusts together (Demšar 2006, "Statistical comparisons of
classifiers over multiple data sets", JMLR 7, sec. 3.2.2):

- every pair of the k treatments (k(k-1)/2 tests; the default);
- each treatment against one control (k-1 tests; ``--control``);
- the listed pairs only (``--pairs a:b c:d``).

Per pair (a, b), with seeds as the matched blocks and d = value(a) - value(b) per seed, in the metric's units:

- ``p_raw``: two-sided Wilcoxon signed-rank test of d (``scipy.stats.wilcoxon``; zero differences dropped; p = 1
  when every d is 0); ``p_adjusted``: Holm over the family;
- ``wins``/``ties``/``losses``: seeds where a is better than, equal to, worse than b by the metric's direction;
- ``median_difference`` with ``median_lo``/``median_hi``: the median of d and its 95% percentile bootstrap interval
  over seeds (``scipy.stats.bootstrap``, 9,999 resamples, fixed seed);
- ``rank_biserial``: the matched-pairs rank-biserial correlation of d, (R+ - R-) / (R+ + R-) with R+ and R- the
  sums of the ranks of |d| over the positive and negative non-zero d (Kerby 2014, "The simple difference formula",
  Comprehensive Psychology 3). Its sign is that of d: positive when a's values are larger.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from reports.keys import N_RESAMPLES
from reports.metrics import Metric
from reports.options import parse_pairs  # noqa: F401  (re-exported)

PAIR_FIELDS = [
    "a", "b", "n", "mean_a", "mean_b", "p_raw", "p_adjusted", "significant", "direction", "wins", "ties", "losses",
    "median_difference", "median_lo", "median_hi", "rank_biserial", "family",
]  # fmt: skip


@dataclass(frozen=True)
class Family:
    """Which pairs are tested together: all, each against ``control``, or the listed ``pairs``."""

    control: str | None = None
    pairs: tuple = ()

    def pairs_of(self, treatments) -> list[tuple[str, str]]:
        """The family's pairs among ``treatments`` (those present)."""
        present = list(treatments)
        if self.control is not None:
            return [(self.control, t) for t in present if t != self.control] if self.control in present else []
        if self.pairs:
            return [(a, b) for a, b in self.pairs if a in present and b in present]
        return list(itertools.combinations(present, 2))

    def describe(self, m: int) -> str:
        """The family in words, for ``m`` tests: "all 6 pairs", "3 tests against the control obd", "2 listed pairs"."""
        if self.control is not None:
            return f"{m} test{'s' * (m != 1)} against the control {self.control}"
        if self.pairs:
            return f"{m} listed pair{'s' * (m != 1)}"
        return f"all {m} pair{'s' * (m != 1)}"


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment: sorted p_(i) * (m - i), running maximum, capped at 1 (Holm 1979)."""
    pvalues = np.asarray(pvalues, float)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.maximum.accumulate(pvalues[order] * (len(pvalues) - np.arange(len(pvalues))))
    out = np.empty_like(pvalues)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def wilcoxon_p(d) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences ``d``; 1 when every difference is 0."""
    d = np.asarray(d, float)
    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d).pvalue)


def rank_biserial(d) -> float:
    """Matched-pairs rank-biserial correlation of ``d`` (see the module docstring); 0 when every d is 0."""
    d = np.asarray(d, float)
    d = d[d != 0]
    if not len(d):
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def median_interval(d, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``d`` over seeds; NaN for fewer than two values."""
    d = np.asarray(d, float)
    if len(d) < 2:
        return np.nan, np.nan
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((d,), np.median, method="percentile", n_resamples=N_RESAMPLES,
                                 confidence_level=confidence, random_state=np.random.default_rng(0))  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def pair_tests(matrix: pd.DataFrame, family: Family, metric: Metric, alpha: float = 0.05) -> pd.DataFrame:
    """One row per pair of ``family`` among the columns of ``matrix`` (seeds x treatments), ``PAIR_FIELDS``.

    Raises nothing; an empty frame when the family has no pair here or there are fewer than two seeds.
    """
    pairs = family.pairs_of(matrix.columns)
    if len(matrix) < 2 or not pairs:
        return pd.DataFrame(columns=PAIR_FIELDS)
    rows = [_pair_row(matrix[a].to_numpy(float), matrix[b].to_numpy(float), a, b, metric) for a, b in pairs]
    table = pd.DataFrame(rows)
    table["p_adjusted"] = holm(table["p_raw"].to_numpy())
    table["significant"] = table["p_adjusted"] < alpha
    return table.assign(family=family.describe(len(pairs)))[PAIR_FIELDS]


def _pair_row(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, metric: Metric) -> dict:
    d = a - b
    better = -d if metric.lower_is_better else d  # > 0: a is better on that seed
    low, high = median_interval(d)
    median = float(np.median(d))
    signed = -median if metric.lower_is_better else median
    direction = f"{name_a} better" if signed > 0 else f"{name_b} better" if signed < 0 else "no difference"
    return {"a": name_a, "b": name_b, "n": len(d), "mean_a": a.mean(), "mean_b": b.mean(), "p_raw": wilcoxon_p(d),
            "direction": direction, "wins": int((better > 0).sum()), "ties": int((better == 0).sum()),
            "losses": int((better < 0).sum()), "median_difference": median, "median_lo": low, "median_hi": high,
            "rank_biserial": rank_biserial(d)}  # fmt: skip
