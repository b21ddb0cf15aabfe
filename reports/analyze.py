"""Every table of a report, without writing files: options checked, scores ranked and tested."""

from __future__ import annotations

import pandas as pd

from reports._utils import _label
from reports.disagreement import at_table, disagreements
from reports.keys import condition_columns, key_columns
from reports.metrics import run_scores
from reports.options import check_options, parse_where  # noqa: F401  (parse_where re-exported)
from reports.pairs import Family
from reports.protocol import control_table, order_table, recovery_agreement
from reports.ranking import mean_rank_matrix, ranked_epochs, replicates, summary, table_from_blocks, with_treatment
from reports.statistics import rank_tests
from reports.validate import nonfinite_notices


def analyze(df, loss_tol=0.10, acc_tol=0.01, epoch="last", compare=("measure",), interval="bootstrap", alpha=0.05, *,
            metric="loss_auc", where=None, control=None, pairs=None, at=None):  # fmt: skip
    """Every table of a report, without writing files (see the package docstring for the definitions).

    Args:
        df: rows from ``load``.
        loss_tol: relative loss increase tolerated (0.10 = 10%).
        acc_tol: accuracy drop tolerated, as a fraction (0.01 = 1 percentage point).
        epoch: "last" (each condition's last epoch) or a list of epochs to rank and test.
        compare: key columns whose combinations are the treatments, e.g. ("measure", "scope") or "model".
        interval: "bootstrap" or "t".
        alpha: significance level.
        metric: one or more metric names (``reports.metrics``): every ranking, test and interval is computed per
            metric; the first is the headline one.
        where: ``["column=value[,value]", ...]``: keep only those rows.
        control: a treatment label: test each other treatment against it only (k - 1 tests, Holm over those).
        pairs: ``["a:b", ...]``: test only these pairs of treatments (Holm over them).
        at: sparsities for the table of accuracy and loss at those sparsities (``at``).

    Returns:
        For the first metric, keys ``ranking`` (``rank_table``, every epoch), ``summary``, ``tests`` and ``pvalues``
        (``rank_tests`` at the ranked epochs), ``pairs`` (per tested pair), ``mean_ranks`` (``mean_rank_matrix``),
        ``excluded`` (seeds excluded at the ranked epochs, with the reason); ``metrics``: the same per metric name;
        ``disagreements`` (``reports.disagreement``); ``at``; ``scores`` (per run); ``options``; ``notices`` (rows
        ``load`` dropped, and curves with non-finite losses, not ranked: ``reports.validate``); and at the ranked
        epochs ``order``, ``controls`` and ``recovery`` (``reports.protocol``), each empty without such rows.

    Raises:
        ValueError: nothing can be ranked by a metric at the ranked epochs, or a bad option (named with the valid
            choices), or a metric at a sparsity outside a run's measured sparsities.
    """
    options = check_options(compare, epoch, interval, alpha, metric, where, control, pairs, at)
    notices = list(df.attrs.get("notices", []))
    df = apply_where(df, options["where"])
    notices += nonfinite_notices(df, key_columns(df))
    _refuse_uncompared(df, options["compare"])
    family = _check_family(df, options)
    extra = [f"{kind}_at:{s:g}" for s in options["at"] for kind in ("accuracy", "loss")]
    scores = run_scores(df, loss_tol, acc_tol, [*options["metrics"], *extra])
    per_metric = {m.name: _rank_metric(scores, m, options, family) for m in options["metrics"]}
    first = per_metric[options["metrics"][0].name]
    protocol = {"order": order_table(scores, options["epoch"]), "controls": control_table(scores, options["epoch"]),
                "recovery": recovery_agreement(scores, options["epoch"])}  # fmt: skip
    return first | protocol | {
        "scores": scores, "metrics": per_metric, "notices": notices,
        "options": options | {"metric": [m.name for m in options["metrics"]]},
        "disagreements": disagreements(per_metric, options["metrics"], options["compare"], alpha),
        "at": at_table(scores, options["at"], options["compare"], options["epoch"], interval),
    }  # fmt: skip


def _rank_metric(scores: pd.DataFrame, metric, options: dict, family) -> dict:
    """The tables of one metric: ranking, summary, tests, pvalues, pairs, mean_ranks, excluded."""
    compare = options["compare"]
    used, excluded = replicates(scores, compare, metric)
    ranked = scores.loc[ranked_epochs(scores, options["epoch"], compare), condition_columns(scores, compare)]
    ranked = ranked.drop_duplicates()
    ranked_used, ranked_excluded = used.merge(ranked), excluded.merge(ranked)
    if ranked_used.empty:
        raise ValueError(f"Nothing can be ranked at the ranked epochs: {_excluded_line(ranked_excluded)} "
                         f"(metric {metric.name})")  # fmt: skip
    table = table_from_blocks(used, compare, options["interval"], metric)
    tests, pvalues, pairs = rank_tests(ranked_used, compare, options["alpha"], metric, family)
    return {"ranking": table, "summary": summary(table, compare), "tests": tests.assign(metric=metric.name),
            "pvalues": pvalues, "pairs": pairs.assign(metric=metric.name), "mean_ranks": mean_rank_matrix(table, tests),
            "excluded": ranked_excluded, "used": ranked_used}  # fmt: skip


def _excluded_line(excluded: pd.DataFrame) -> str:
    if excluded.empty:
        return "no complete seed"
    conditions = list(excluded.columns[: excluded.columns.get_loc("seed")])
    first = excluded.iloc[0]
    return (
        f"{len(excluded)} (condition, seed) blocks excluded, e.g. {_label(first, conditions)}, seed {first['seed']}: "
        f"{first['reason']}"
    )


def apply_where(df: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The rows whose ``column`` holds one of the listed values, for every column of ``where``.

    Raises:
        ValueError: a column is not a key column of the results, or a value is absent (names the choices).
    """
    for column, values in where.items():
        if column not in key_columns(df):
            raise ValueError(f"where column {column!r} is not in the results; available: {key_columns(df)}")
        present = sorted(set(df[column].astype(str)))
        absent = [v for v in values if v not in present]
        if absent:
            raise ValueError(f"where {column}={','.join(values)}: {absent} not in the results; {column} takes {present}")
        df = df[df[column].astype(str).isin(values)]
    return df


def _check_family(df: pd.DataFrame, options: dict) -> Family:
    """The family of tested pairs; refuses a control or a pair naming a treatment absent from the results."""
    named = ([options["control"]] if options["control"] is not None else []) + [t for p in options["pairs"] for t in p]
    if named:
        treatments = sorted(set(with_treatment(df[options["compare"]].drop_duplicates(), options["compare"])["treatment"]))
        absent = [t for t in dict.fromkeys(named) if t not in treatments]
        if absent:
            raise ValueError(f"Treatments {absent} are not in the results (compare={','.join(options['compare'])}); "
                             f"available: {treatments}")  # fmt: skip
    return Family(options["control"], options["pairs"])


def _refuse_uncompared(df: pd.DataFrame, compare: list[str]) -> None:
    absent = [c for c in compare if c not in key_columns(df)]
    if absent:
        raise ValueError(f"compare columns {absent} are not in the results; available: {key_columns(df)}")
