"""Every table of a report, without writing files: options checked, scores ranked and tested."""

from __future__ import annotations

import pandas as pd

from reports._utils import _label
from reports.keys import COMPARABLE, INTERVALS, condition_columns, key_columns
from reports.metrics import run_scores
from reports.protocol import control_table, order_table, recovery_agreement
from reports.ranking import mean_rank_matrix, ranked_epochs, replicates, summary, table_from_blocks
from reports.statistics import rank_tests


def analyze(df, loss_tol=0.10, acc_tol=0.01, epoch="last", compare=("measure",), interval="bootstrap", alpha=0.05):
    """Every table of a report, without writing files (see the module docstring for the definitions).

    Args:
        df: rows from ``load``.
        loss_tol: relative loss increase tolerated (0.10 = 10%).
        acc_tol: accuracy drop tolerated, as a fraction (0.01 = 1 percentage point).
        epoch: "last" (each condition's last epoch) or a list of epochs to rank and test.
        compare: columns whose combinations are the treatments, e.g. ("measure", "scope").
        interval: "bootstrap" or "t".
        alpha: significance level.

    Returns:
        Keys ``scores`` (per run), ``ranking`` (``rank_table``, every epoch), ``summary``, ``tests`` and
        ``pvalues`` (``rank_tests`` at the ranked epochs), ``mean_ranks`` (``mean_rank_matrix``), ``excluded``
        (seeds excluded at the ranked epochs, with the reason), ``options``, and at the ranked epochs ``order``
        (``order_table``), ``controls`` (``control_table``) and ``recovery`` (``recovery_agreement``), each empty
        when the results hold no such rows.

    Raises:
        ValueError: nothing can be ranked at the ranked epochs (every seed of every condition excluded), or a bad
            option (named with the valid choices).
    """
    compare, epoch = _check_options(compare, epoch, interval, alpha)
    _refuse_uncompared(df, compare)
    scores = run_scores(df, loss_tol, acc_tol)
    used, excluded = replicates(scores, compare)
    ranked = scores.loc[ranked_epochs(scores, epoch, compare), condition_columns(scores, compare)].drop_duplicates()
    ranked_used, ranked_excluded = used.merge(ranked), excluded.merge(ranked)
    if ranked_used.empty:
        raise ValueError(f"Nothing can be ranked at the ranked epochs: {_excluded_line(ranked_excluded)}")
    table = table_from_blocks(used, compare, interval)
    tests, pvalues = rank_tests(ranked_used, compare, alpha)
    options = {"epoch": epoch, "compare": compare, "interval": interval, "alpha": alpha}
    protocol = {"order": order_table(scores, epoch), "controls": control_table(scores, epoch),
                "recovery": recovery_agreement(scores, epoch)}  # fmt: skip
    return {"scores": scores, "ranking": table, "summary": summary(table, compare), "tests": tests, "pvalues": pvalues,
            "mean_ranks": mean_rank_matrix(table, tests), "excluded": ranked_excluded, "options": options} | protocol


def _excluded_line(excluded: pd.DataFrame) -> str:
    if excluded.empty:
        return "no complete seed"
    conditions = list(excluded.columns[: excluded.columns.get_loc("seed")])
    first = excluded.iloc[0]
    return (
        f"{len(excluded)} (condition, seed) blocks excluded, e.g. {_label(first, conditions)}, seed {first['seed']}: "
        f"{first['reason']}"
    )


def _check_options(compare, epoch, interval, alpha) -> tuple[list[str], object]:
    """Normalises ``compare`` and ``epoch`` and checks every option; raises ValueError naming the choices."""
    compare = [c.strip() for c in compare.split(",")] if isinstance(compare, str) else list(compare)
    unknown = [c for c in compare if c not in COMPARABLE]
    if not compare or unknown or len(set(compare)) != len(compare):
        raise ValueError(f"compare takes distinct columns among {COMPARABLE}. Received: compare={compare}")
    epoch = _parse_epoch(epoch)
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}. Received: interval={interval!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1). Received: alpha={alpha}")
    return compare, epoch


def _parse_epoch(epoch):
    values = [epoch] if isinstance(epoch, str | int) else list(epoch)
    if values == ["last"]:
        return "last"
    try:
        parsed = sorted({int(v) for v in values})
    except (TypeError, ValueError):
        parsed = None
    if not parsed or any(e < 0 for e in parsed) or any(isinstance(v, float) and v != int(v) for v in values):
        raise ValueError(f"epoch must be 'last' or a list of epoch numbers. Received: epoch={epoch!r}")
    return parsed


def _refuse_uncompared(df: pd.DataFrame, compare: list[str]) -> None:
    absent = [c for c in compare if c not in key_columns(df)]
    if absent:
        available = [c for c in key_columns(df) if c in COMPARABLE]
        raise ValueError(f"compare columns {absent} are not in the results; available: {available}")
