"""The report as text: ranking.md and the terminal summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports._utils import _label, _varying, to_markdown
from reports.forgetting import format_forgetting
from reports.keys import PROTOCOL_TABLES
from reports.metrics import parse_metric


def metric_tables(result: dict, name: str) -> pd.DataFrame:
    """``name`` ("ranking", "tests", "pairs", "excluded") of every metric, concatenated, with a ``metric`` column."""
    parts = [tables[name].assign(metric=metric) for metric, tables in result.get("metrics", {}).items()]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else result.get(name, pd.DataFrame())


def mean_rank_rows(result: dict) -> pd.DataFrame:
    """The mean-rank matrices of every metric in long-wide form: ``metric``, ``treatment``, then the columns."""
    parts = [t["mean_ranks"].reset_index().assign(metric=m) for m, t in result.get("metrics", {}).items()]
    return pd.concat(parts, ignore_index=True) if parts else result["mean_ranks"].reset_index()


def _markdown(result: dict) -> str:
    options = result["options"]
    text = ["# Treatment ranking\n", f"Ranked epoch: {options['epoch']}; treatments: {', '.join(options['compare'])}; "
            f"{_tests_line(result['tests'])} (alpha {options['alpha']:g}); Demšar 2006, JMLR 7; Benavoli et al. "
            "2016, JMLR 17(5).\n"]  # fmt: skip
    for metric, tables in result.get("metrics", {"": result}).items():
        text += [f"\n## Metric {metric} ({_direction(metric)})\n",
                 "### Per condition: best and second by mean rank over seeds, their means, Friedman p\n",
                 to_markdown(tables["tests"]),
                 "\n### Tested pairs: raw and Holm-adjusted Wilcoxon p, wins/ties/losses of a over seeds, median "
                 "difference a - b with 95% bootstrap interval, matched-pairs rank-biserial r\n",
                 to_markdown(tables["pairs"]),
                 "\n### Mean rank over seeds per condition (means per task and model)\n",
                 to_markdown(tables["mean_ranks"].reset_index())]  # fmt: skip
    if not result.get("disagreements", pd.DataFrame()).empty:
        text += ["\n## Where the metrics disagree\n", *(f"- {line}" for line in result["disagreements"]["line"])]
    if not result.get("at", pd.DataFrame()).empty:
        heading = "\n## Accuracy and loss at chosen sparsities (means over seeds, 95% intervals)\n"
        text += [heading, to_markdown(result["at"])]
    if result.get("notices"):
        text += ["\n## Rows dropped on loading, and curves not ranked\n", *(f"- {n}" for n in result["notices"])]
    excluded = metric_tables(result, "excluded")
    if not excluded.empty:
        text += ["\n## Excluded from the ranking (non-finite scores or missing rows)\n", to_markdown(excluded)]
    for name, heading in PROTOCOL_TABLES.items():
        if not result.get(name, pd.DataFrame()).empty:
            text += [f"\n## {heading}\n", to_markdown(result[name])]
    caption = f"interval: 95% {options['interval']} over seeds; NaN with one seed"
    text += [f"\n## Every condition and epoch ({caption}; mean = the metric's mean; auc = AUC of val loss)\n",
             to_markdown(metric_tables(result, "ranking"))]  # fmt: skip
    return "\n".join(text)


def _direction(name: str) -> str:
    return "lower is better" if not name or parse_metric(name).lower_is_better else "higher is better"


def _tests_line(tests: pd.DataFrame) -> str:
    families = sorted(set(tests["family"]) - {""}) if "family" in tests else []
    family = families[0] if len(families) == 1 else "the tested pairs"
    return f"blocks = seeds; Friedman test over seeds; Wilcoxon signed-rank tests of {family}, Holm-adjusted over them"


def format_report(result: dict) -> str:
    """The terminal summary: per metric and condition, best and second with their test; planned pairs; disagreements."""
    options = result["options"]
    lines = []
    for metric, tables in result.get("metrics", {"loss_auc": result}).items():
        lines += _metric_lines(metric, tables, options)
    if not result.get("disagreements", pd.DataFrame()).empty:
        lines += ["The choice of metric decides these comparisons:"] + [f"  {x}" for x in result["disagreements"]["line"]]
    lines += [f"Notice: {n}" for n in result.get("notices", [])]
    lines += _excluded_lines(result["excluded"]) + _protocol_lines(result)
    if not result.get("at", pd.DataFrame()).empty:
        lines += [f"Accuracy and loss at sparsities {', '.join(f'{s:g}' for s in options['at'])}: at.csv, at.md"]
    if result.get("forgetting") is not None and not result["forgetting"].empty:
        lines += [format_forgetting(result["forgetting"])]
    if result.get("files"):
        lines += [f"Wrote {len(result['files'])} files to {result['files'][0].parent}, e.g. {result['files'][0]}"]
    return "\n".join(lines)


def _metric_lines(metric: str, tables: dict, options: dict) -> list[str]:
    tests = tables["tests"]
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    constant = [c for c in conditions if tests[c].nunique(dropna=False) == 1]
    label = parse_metric(metric)
    lines = [
        f"Ranking at {_epoch_text(options['epoch'])} by {label.label} ({_direction(metric)}); "
        f"treatments: {', '.join(options['compare'])}",
        f"{_tests_line(tests)} (alpha {options['alpha']:g}); Demšar 2006; Benavoli et al. 2016, JMLR 17(5)",
        _label(tests.iloc[0], constant),
        _summary_frame(tests, tables["ranking"], [c for c in conditions if c not in constant]).to_string(index=False),
    ]
    lines += _notes(tests) + _pair_lines(tables["pairs"], options)
    for column in [c for c in tables["mean_ranks"].columns if c.startswith("mean")]:
        ranks = "; ".join(f"{t}: {r:.2f}" for t, r in tables["mean_ranks"][column].dropna().sort_values().items())
        where = column.removeprefix("mean").strip()
        lines += [f"Mean rank over the ranked conditions{' of ' + where if where else ''} (descriptive): {ranks}"]
    return lines


def _pair_lines(pairs: pd.DataFrame, options: dict) -> list[str]:
    """The tested pairs of a planned family (``--control``, ``--pairs``), one line each, under their condition."""
    if pairs.empty or (options.get("control") is None and not options.get("pairs")):
        return []
    lines = [f"Tested pairs ({pairs['family'].iloc[0]}; tests.csv): median difference a - b [95% bootstrap], "
             "wins/ties/losses of a, rank-biserial r, p raw -> Holm"]  # fmt: skip
    conditions = list(pairs.columns[: pairs.columns.get_loc("a")])
    varying = _varying(pairs, conditions)
    for _, part in pairs.groupby(varying, sort=False) if varying else [(None, pairs)]:
        lines += [f"  {_label(part.iloc[0], varying)}:"] if varying else []
        for _, r in part.iterrows():
            median = _with_interval(r["median_difference"], r["median_lo"], r["median_hi"])
            lines.append(f"    {r['a']} vs {r['b']}: {r['direction']}; {median}; "
                         f"{r['wins']}/{r['ties']}/{r['losses']} of {r['n']} seeds; r = {r['rank_biserial']:+.2f}; "
                         f"p {r['p_raw']:.3g} -> {r['p_adjusted']:.3g}{' (significant)' if r['significant'] else ''}")
    return lines


def _protocol_lines(result: dict) -> list[str]:
    """Summary lines of the removal order, the controls and the recovery agreement, when the results hold them."""
    lines = []
    order, controls, recovery = (result.get(k, pd.DataFrame()) for k in ("order", "controls", "recovery"))
    if not order.empty:
        conditions = [c for c in order.columns[: order.columns.get_loc("measure")]]
        best = order.sort_values("rank_gap").groupby(conditions, dropna=False).head(1)
        frame = best[[*_varying(best, conditions), "measure", "gap", "auc_least", "auc_most", "n_seeds"]]
        lines += ["Removal order (order.csv): per condition the measure with the largest gap AUC(most) - AUC(least):",
                  frame.rename(columns={"measure": "best by gap"}).to_string(index=False),
                  "Note: conditions with order=most are ranked above by the same AUC, lower first, so their 'best' is "
                  "the measure whose most important weights matter least; order.csv ranks them the other way."]
    if not controls.empty:
        lines += ["Matched controls (controls.csv): measures that beat their control (lower mean AUC; higher with "
                  "order=most), per condition:"] + _control_lines(controls)
    if not recovery.empty:
        conditions = list(recovery.columns[: recovery.columns.get_loc("recovery")])
        frame = recovery[[*_varying(recovery, conditions), "recovery", "rho", "n_seeds", "n_measures"]]
        lines += ["Recovery (recovery.csv): Spearman's rho between the measures' rankings without recovery and with it "
                  "(1: the no-retrain ranking is the recovered one; 0: unrelated), mean over n_seeds seeds:",
                  frame.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    return lines


def _control_lines(controls: pd.DataFrame) -> list[str]:
    conditions = list(controls.columns[: controls.columns.get_loc("measure")])
    varying = _varying(controls, conditions)
    lines = []
    for _, part in controls.groupby(varying or conditions[:1], dropna=False, sort=False):
        label = _label(part.iloc[0], varying) if varying else "all"
        beats = [f"{c.removeprefix('beats_')}: {', '.join(part.loc[part[c], 'measure']) or '-'} "
                 f"({int(part[c].sum())} of {len(part)})" for c in part.columns if c.startswith("beats_")]  # fmt: skip
        lines.append(f"  {label}: " + "; ".join(beats))
    return lines


def _epoch_text(epoch) -> str:
    return "the last epoch" if epoch == "last" else f"epoch{'s' * (len(epoch) > 1)} {', '.join(map(str, epoch))}"


def _summary_frame(tests: pd.DataFrame, table: pd.DataFrame, varying: list[str]) -> pd.DataFrame:
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    merged = tests.merge(table[[*conditions, "treatment", "mean_lo", "mean_hi"]],
                         left_on=[*conditions, "best"], right_on=[*conditions, "treatment"], how="left")  # fmt: skip
    frame = merged[varying].copy() if varying else pd.DataFrame(index=merged.index)
    frame["seeds"] = merged["n_seeds"]
    frame["best"] = merged["best"]
    header = "mean [95% CI]" if (merged["n_seeds"] > 1).any() else "value (one seed)"
    frame[header] = [_with_interval(a, lo, hi) for a, lo, hi in merged[["best_mean", "mean_lo", "mean_hi"]].to_numpy()]
    frame["second"] = merged["second"].fillna("-")
    frame["its mean"] = merged["second_mean"].map(lambda v: f"{v:.4g}" if np.isfinite(v) else "-")
    frame["p best vs second (Holm)"] = merged["p_best_second"].map(lambda p: f"{p:.3g}" if np.isfinite(p) else "-")
    frame["significant?"] = [_verdict(r) for _, r in merged.iterrows()]
    frame["Friedman p"] = merged["friedman_p"].map(lambda p: f"{p:.3g}" if np.isfinite(p) else "-")
    return frame


def _with_interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.4g}" if not np.isfinite(low) else f"{mean:.4g} [{low:.4g}, {high:.4g}]"


def _verdict(test) -> str:
    if not np.isfinite(test["p_best_second"]):
        return "no test"
    return "yes" if test["significant"] else "no"


def _notes(tests: pd.DataFrame) -> list[str]:
    notes = sorted(set(tests["note"]) - {""})
    return [f"Note: {note}." for note in notes]


def _excluded_lines(excluded: pd.DataFrame) -> list[str]:
    if excluded.empty:
        return []
    conditions = list(excluded.columns[: excluded.columns.get_loc("seed")])
    lines = [f"Excluded from the ranking: {len(excluded)} (condition, seed) blocks with non-finite scores or missing rows:"]
    shown = [f"  {_label(r, conditions)}, seed {r['seed']}: {r['reason']}" for _, r in excluded.head(10).iterrows()]
    return lines + shown + ([f"  ... and {len(excluded) - 10} more (excluded.csv)"] if len(excluded) > 10 else [])
