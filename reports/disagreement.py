"""Where the choice of metric decides the answer, and the table of accuracy and loss at chosen sparsities.

Two metrics disagree on a pair (a, b) of a condition when their means order the pair differently and either both
orders are significant (Holm-adjusted p < alpha in each metric's family) or the per-seed orders flip in most seeds
(more than half of the seeds both metrics rank).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from reports._utils import _label
from reports.keys import condition_columns
from reports.metrics import Metric, parse_metric
from reports.ranking import ranked_epochs, with_treatment
from reports.statistics import mean_intervals

DISAGREEMENT_FIELDS = ["metric_1", "first_1", "metric_2", "first_2", "flips", "n", "p_1", "p_2", "line"]


def disagreements(per_metric: dict, metrics: Sequence[Metric], compare: Sequence[str], alpha: float) -> pd.DataFrame:
    """One row per (condition, pair of metrics, tested pair of treatments) where the two metrics disagree.

    Args:
        per_metric: metric name -> ``analyze``'s tables of that metric (``used``: complete blocks at the ranked
            epochs; ``pairs``: the tested pairs).
        metrics: the metrics, in the order requested.
        compare: the treatment columns.
        alpha: significance level.

    Returns:
        Condition columns, ``a``, ``b`` and ``DISAGREEMENT_FIELDS``: which treatment each metric ranks first, in
        how many of the ``n`` common seeds the orders flip, both adjusted p, and the report's ``line``.
    """
    rows = []
    for m1, m2 in itertools.combinations(metrics, 2):
        one, two = per_metric[m1.name], per_metric[m2.name]
        conditions = condition_columns(one["used"], compare)
        tested = one["pairs"].merge(two["pairs"], on=[*conditions, "a", "b"], suffixes=("_1", "_2"))
        for _, pair in tested.iterrows():
            row = _disagreement(pair, conditions, one["used"], two["used"], m1, m2, alpha)
            if row:
                rows.append({c: pair[c] for c in [*conditions, "a", "b"]} | row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["a", "b", *DISAGREEMENT_FIELDS])


def _disagreement(pair, conditions, used_1, used_2, m1: Metric, m2: Metric, alpha: float) -> dict | None:
    better_1, better_2 = _better(pair, "_1", m1), _better(pair, "_2", m2)
    if better_1 == better_2 or 0 in (better_1, better_2):
        return None
    seeds = _per_seed(pair, conditions, used_1, m1).to_frame("one").join(
        _per_seed(pair, conditions, used_2, m2).to_frame("two"), how="inner")
    flips = int(((np.sign(seeds["one"]) * np.sign(seeds["two"])) < 0).sum())
    both = pair["p_adjusted_1"] < alpha and pair["p_adjusted_2"] < alpha
    if not (both or flips > len(seeds) / 2):
        return None
    first_1, first_2 = (pair["a"], pair["b"]) if better_1 > 0 else (pair["b"], pair["a"])
    where = _label(pair, [c for c in conditions if c != "epoch"] + ["epoch"])
    line = (f"{m1.label} ranks {first_1} first; {m2.label} ranks {first_2} first, {flips} of {len(seeds)} seeds "
            f"(Holm p {pair['p_adjusted_1']:.3g} and {pair['p_adjusted_2']:.3g}; {where})")  # fmt: skip
    return {"metric_1": m1.name, "first_1": first_1, "metric_2": m2.name, "first_2": first_2, "flips": flips,
            "n": len(seeds), "p_1": pair["p_adjusted_1"], "p_2": pair["p_adjusted_2"], "line": line}  # fmt: skip


def _better(pair, suffix: str, metric: Metric) -> int:
    """+1 when the metric's mean prefers a, -1 when it prefers b, 0 on a tie."""
    difference = pair[f"mean_a{suffix}"] - pair[f"mean_b{suffix}"]
    return int(np.sign(-difference if metric.lower_is_better else difference))


def _per_seed(pair, conditions, used: pd.DataFrame, metric: Metric) -> pd.Series:
    """Per seed, > 0 when the metric prefers a, < 0 when it prefers b."""
    part = used[(used[conditions] == pair[conditions]).all(axis=1)]
    wide = part.pivot(index="seed", columns="treatment", values=metric.column).astype(float)
    difference = wide[pair["a"]] - wide[pair["b"]]
    return -difference if metric.lower_is_better else difference


def at_table(scores: pd.DataFrame, at: Sequence[float], compare: Sequence[str], epoch="last",
             interval: str = "bootstrap") -> pd.DataFrame:  # fmt: skip
    """Mean accuracy and loss at each sparsity of ``at``, per condition and treatment at the ranked epochs.

    Values are interpolated on each run's measured curve (``accuracy_at:S`` and ``loss_at:S``); means over the
    seeds with a finite value, with 95% intervals over seeds (``interval``; NaN for one seed).

    Returns:
        Condition columns, ``treatment``, ``sparsity``, ``accuracy`` with ``_lo``/``_hi``, ``loss`` with
        ``_lo``/``_hi``, ``n_seeds``; empty when ``at`` is empty.
    """
    if not len(at):
        return pd.DataFrame()
    scores = with_treatment(scores[ranked_epochs(scores, epoch, compare)], compare)
    conditions = condition_columns(scores, compare)
    parts = [_at_one(scores, conditions, s, interval) for s in at]
    return pd.concat(parts, ignore_index=True).sort_values([*conditions, "sparsity", "treatment"], ignore_index=True)


def _at_one(scores: pd.DataFrame, conditions: list[str], s: float, interval: str) -> pd.DataFrame:
    groups = scores.groupby([*conditions, "treatment"], dropna=False)
    table = groups.size().rename("n_seeds").to_frame()
    for kind in ("accuracy", "loss"):
        metric = parse_metric(f"{kind}_at:{s:g}")
        samples = [g[np.isfinite(g)].to_numpy(float) for _, g in groups[metric.column]]
        low, high = mean_intervals(samples, interval, metric.bounds)
        table[kind] = [np.mean(x) if len(x) else np.nan for x in samples]
        table[f"{kind}_lo"], table[f"{kind}_hi"] = low, high
    table["n_seeds"] = [len(x) for x in samples]
    return table.reset_index().assign(sparsity=s)[[*conditions, "treatment", "sparsity", "accuracy", "accuracy_lo",
                                                   "accuracy_hi", "loss", "loss_lo", "loss_hi", "n_seeds"]]
