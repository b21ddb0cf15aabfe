"""The report as text: ranking.md and the terminal summary."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from reports._utils import _label, _varying, to_markdown
from reports.forgetting import format_forgetting
from reports.keys import PROTOCOL_TABLES, TESTS_LINE


def _pvalue_rows(result: dict) -> pd.DataFrame:
    """Holm-adjusted Wilcoxon p-values in long form: condition columns, a, b, p_holm."""
    conditions = list(result["tests"].columns[: result["tests"].columns.get_loc("n_seeds")])
    rows = [(*key, a, b, p.loc[a, b]) for key, p in result["pvalues"].items()
            for a, b in itertools.combinations(p.index, 2)]  # fmt: skip
    return pd.DataFrame(rows, columns=[*conditions, "a", "b", "p_holm"])


def _markdown(result: dict) -> str:
    options = result["options"]
    text = [
        "# Treatment ranking\n", f"Ranked epoch: {options['epoch']}; treatments: {', '.join(options['compare'])}; "
        f"{TESTS_LINE} (alpha {options['alpha']:g}); Benavoli et al. 2016, JMLR 17(5).\n",
        "## Per condition: best treatment, second, Holm-adjusted Wilcoxon p, Friedman p\n", to_markdown(result["tests"]),
        "\n## Mean rank over seeds per condition\n", to_markdown(result["mean_ranks"].reset_index()),
        "\n## Holm-adjusted Wilcoxon p-values\n", to_markdown(_pvalue_rows(result)),
    ]  # fmt: skip
    if not result["excluded"].empty:
        text += ["\n## Excluded from the ranking (non-finite scores or missing rows)\n", to_markdown(result["excluded"])]
    for name, heading in PROTOCOL_TABLES.items():
        if not result.get(name, pd.DataFrame()).empty:
            text += [f"\n## {heading}\n", to_markdown(result[name])]
    caption = f"interval: 95% {options['interval']} over seeds; NaN with one seed"
    text += [f"\n## Every condition and epoch ({caption}; AUC of val loss over sparsity, lower is better)\n",
             to_markdown(result["ranking"])]  # fmt: skip
    return "\n".join(text)


def format_report(result: dict) -> str:
    """The terminal summary: per ranked condition, the best treatment, whether it beats the second, the seeds."""
    tests, options = result["tests"], result["options"]
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    constant = [c for c in conditions if tests[c].nunique(dropna=False) == 1]
    lines = [
        f"Ranking at {_epoch_text(options['epoch'])} by AUC of validation loss over sparsity (lower is better); "
        f"treatments: {', '.join(options['compare'])}",
        f"{TESTS_LINE} (alpha {options['alpha']:g}); Benavoli et al. 2016, JMLR 17(5)",
        _label(tests.iloc[0], constant),
        _summary_frame(tests, result["ranking"], [c for c in conditions if c not in constant]).to_string(index=False),
    ]
    lines += _notes(tests) + _excluded_lines(result["excluded"]) + _protocol_lines(result)
    ranks = "; ".join(f"{t}: {r:.2f}" for t, r in result["mean_ranks"]["mean"].items())
    lines += [f"Mean rank over the {len(tests)} ranked conditions (descriptive): {ranks}"]
    if result.get("forgetting") is not None and not result["forgetting"].empty:
        lines += [format_forgetting(result["forgetting"])]
    if result.get("files"):
        lines += [f"Wrote {len(result['files'])} files to {result['files'][0].parent}, e.g. {result['files'][0]}"]
    return "\n".join(lines)


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
    merged = tests.merge(table[[*conditions, "treatment", "auc_lo", "auc_hi"]],
                         left_on=[*conditions, "best"], right_on=[*conditions, "treatment"], how="left")  # fmt: skip
    frame = merged[varying].copy() if varying else pd.DataFrame(index=merged.index)
    frame["seeds"] = merged["n_seeds"]
    frame["best"] = merged["best"]
    header = "mean AUC [95% CI]" if (merged["n_seeds"] > 1).any() else "AUC (one seed)"
    frame[header] = [_with_interval(a, lo, hi) for a, lo, hi in merged[["best_auc", "auc_lo", "auc_hi"]].to_numpy()]
    frame["second"] = merged["second"].fillna("-")
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
