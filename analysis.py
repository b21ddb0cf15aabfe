"""Figures, rankings and significance tests from harness result CSVs and study folders.

Command line::

    python analysis.py data/studies/digits5 --out figures/digits5          # a study folder (its trials/*.csv)
    python analysis.py data/results.csv "data/*.csv" --out figures/ [--format svg] [--epoch last] [--epochs 1 5 10]
    python analysis.py data/studies/obd --compare measure,scope             # rank (measure x scope) jointly

Notebook::

    import analysis
    df = analysis.load("data/studies/digits5")        # a folder, CSVs or globs
    analysis.plot_curves(df[df.aggregation == "weight"])   # a Figure
    table = analysis.rank_table(df)                  # a DataFrame
    analysis.summary(table)
    result = analysis.report(df, "figures")          # every table and file
    print(analysis.format_report(result))

Definitions. The key columns of a row are task, model, measure, aggregation, pooling, scope, normalization,
replacement, any further text column (``order``, ``recovery``, ...), and every run setting that differs between the
loaded runs (read from each run's ``<csv stem>.<run_id>.json``: ``learning_rate``, ``epochs``, ...). A treatment is
what is ranked: the measure, or with ``compare`` a combination such as (measure, scope). A condition is the epoch plus
every other key column. A replicate is a seed: the runs of one condition differ only in their seed. Within a
condition, for each treatment and seed:

- AUC: trapezoid integral of val_loss over achieved sparsity, points sorted by sparsity. Lower is better: the model
  lost less while its least important weights were replaced.
- Tolerated sparsity (prefix definition): the largest sparsity s such that every point with sparsity <= s keeps
  val_loss <= loss0 + loss_tol * |loss0| and val_accuracy >= acc0 - acc_tol, where loss0 and acc0 are the values at
  the smallest threshold (t = 0). Both limits are one-sided; a NaN accuracy (regression) passes.
- Rank: within each seed, treatments ranked by AUC (1 = best, ties averaged); ``mean_rank`` is the mean over seeds,
  ``rank`` the rank of the mean AUC.

Statistics, per condition at the ranked epoch (``epoch="last"`` by default), with seeds as blocks (never epochs or
thresholds: the epochs of one run are not independent, so they are drawn as curves over training):

- Mean AUC and mean tolerated sparsity over seeds with a 95% interval: percentile bootstrap over seeds
  (``scipy.stats.bootstrap``, 9,999 resamples) or a t-interval; both clipped to the metric's range. No interval for
  one seed.
- Friedman test over seeds (``scipy.stats.friedmanchisquare``; k >= 3 treatments).
- Pairwise two-sided Wilcoxon signed-rank tests on the per-seed AUCs, Holm-adjusted over the k(k-1)/2 pairs
  (``scikit_posthocs.posthoc_wilcoxon``). The critical-difference diagram joins the treatments these tests cannot
  separate. Mean-rank post-hoc tests (Nemenyi) are not used: whether they separate two treatments depends on which
  other treatments are in the pool (Benavoli, Corani and Mangili 2016, "Should we really use post-hoc tests based
  on mean-ranks?", JMLR 17(5)). With n seeds the smallest two-sided Wilcoxon p is 2 / 2**n (0.0625 at n = 5), so
  separating any pair of k treatments needs 2 / 2**n * k(k-1)/2 < alpha.
- A seed with a non-finite score (NaN or inf loss) or a missing treatment is excluded from its condition, and
  reported; when nothing is left to rank, ``analyze`` raises ``ValueError``.

Selective forgetting (runs with ``forget_classes`` in their metadata, seed 001). ``load`` reads each such run's
per-class companion CSV (``<csv stem>.per_class.csv``) and adds, per row, the accuracy and loss on the forget set A
(``forget_accuracy``, ``forget_loss``: over the validation examples of the classes in A) and on the other classes R
(``retain_accuracy``, ``retain_loss``), and a ``forget_classes`` key column ("7", "3,8"). Per run and condition:

- Selectivity: trapezoid integral of (accuracy on R - accuracy on A) over achieved sparsity (the fraction t of the
  prunable weights replaced, most A-specific first). Larger is better: the model lost A while it kept R.
- Retained at forgotten: the accuracy on R at the first threshold where the accuracy on A is below ``level`` (10%),
  and the sparsity there; NaN when A is never forgotten that far.
- ``forgetting_table``: both, averaged over seeds, ranked by selectivity (1 = most selective), with the margin over
  the ``random`` measure of the same condition.

Figures: curves (one per (task, model, pooling, scope, normalization, replacement, ...) combination, facets
aggregation x epoch, named ``<kind>_<values>.<fmt>``; missing key values read "-"), a rank heatmap over epochs per
combination, a CD diagram per ranked condition and a heatmap of mean ranks across conditions. Each measure has one
colour in every figure of a report.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns
from matplotlib.lines import Line2D
from scipy import integrate, stats

COLUMNS = [
    "run_id", "task", "model", "seed", "epoch", "measure", "aggregation", "pooling", "scope", "normalization",
    "replacement", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds",
    "sweep_seconds",
]  # fmt: skip
PANEL = ["task", "model", "pooling", "scope", "normalization", "replacement"]
CONDITION = ["task", "model", "epoch", "aggregation", "pooling", "scope", "normalization", "replacement"]
KEYS = ["task", "model", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "order", "recovery"]
RUN = ["run_id", "seed"]
VALUES = [
    "run_id", "seed", "epoch", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds",
    "sweep_seconds", "params_remaining", "flops", "num_classes",
]  # fmt: skip
FORGETTING = ["forget_accuracy", "forget_loss", "retain_accuracy", "retain_loss"]
PER_CLASS_SUFFIX = ".per_class.csv"  # the per-class companion of a result CSV (harness.results.per_class_path)
NOT_KEYS = {*VALUES, *FORGETTING, "treatment", "reason"}
NUMERIC = ["seed", "epoch", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds"]
SETTINGS = ["epochs", "batch_size", "learning_rate", "importance_samples", "prunable", "deterministic"]
NOT_SETTINGS = {"seed", "output", "data_dir", "progress", "resume"}
COMPARABLE = [k for k in KEYS if k not in ("task", "model")] + SETTINGS
FORMATS, INTERVALS = ("png", "svg", "pdf"), ("bootstrap", "t")
N_RESAMPLES = 9999
BOUNDS = {"auc": (0.0, np.inf), "val_loss": (0.0, np.inf), "val_accuracy": (0.0, 1.0), "tolerated_sparsity": (0.0, 1.0)}
SPARSITY_LABEL = "sparsity (fraction of prunable weights replaced)"
METRIC_LABELS = {"val_loss": "validation loss", "val_accuracy": "validation accuracy (fraction correct)"}
CONTROL_SEPARATOR = "~"  # measure~control: the rows of a matched control (harness/controls.py)
CONTROL_STYLES = {"": "-", "random_matched": "--", "shuffled": ":"}
CONTROL_MARKERS = {"": "o", "random_matched": "s", "shuffled": "D"}
PROTOCOL_TABLES = {
    "order": "Removal order: mean AUC least (LeRF, lower is better) and most important first (MoRF, higher is better), "
             "gap = most - least (higher is better), ranks within each condition",
    "controls": "Measures and their matched controls: mean AUC over seeds; beats = better than the control "
                "(lower AUC, or higher with order most)",
    "recovery": "Spearman's rho between the measures' AUC rankings without recovery and with it (controls excluded), "
                "mean over seeds",
}  # fmt: skip
TESTS_LINE = "blocks = seeds; Friedman test over seeds; pairwise Wilcoxon signed-rank tests, Holm-adjusted"


# Loading ------------------------------------------------------------------------------------------------------


def load(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Reads and concatenates result CSVs: files, globs, or study folders.

    Args:
        paths: one path, glob or folder, or several. A folder stands for its ``trials/*.csv`` (a study) or, without
            ``trials/``, its ``*.csv``. A file named twice (directly or through globs) is read once.

    Returns:
        All rows, with a ``num_classes`` column from each run's ``<csv stem>.<run_id>.json`` (NaN when absent or
        null), and one text column per run setting that differs between the runs (``learning_rate``, ...; "-" when
        unknown). Rows whose pooling is ``"none"`` (aggregations where pooling has no effect, such as ``weight``)
        are repeated once per pooling the data hold, so they share figures and rankings with ``unit`` and ``filter``.

    Raises:
        FileNotFoundError: a path, glob or folder matches no CSV.
        ValueError: a file is not a UTF-8 CSV, has no rows, lacks required columns, holds non-numeric values, or
            a result key (run, epoch, key columns, threshold) appears twice; the message names the file.
    """
    files = _expand([paths] if isinstance(paths, str | Path) else list(paths))
    parts, settings = zip(*(_read_one(f) for f in files), strict=True)
    df = pd.concat(parts, ignore_index=True)
    keys = key_columns(df)
    df[keys] = df[keys].fillna("-").astype(str)
    _refuse_duplicate_keys(df)
    df = _attach_settings(df.drop(columns="_file"), {k: v for s in settings for k, v in s.items()})
    return _share_unpooled(df)


def _share_unpooled(df: pd.DataFrame) -> pd.DataFrame:
    """Repeats ``pooling == "none"`` rows under every real pooling present (unchanged if there is none)."""
    unpooled = df["pooling"] == "none"
    poolings = sorted(set(df.loc[~unpooled, "pooling"]) - {"-"})
    if not poolings or not unpooled.any():
        return df
    copies = [df[unpooled].assign(pooling=p) for p in poolings]
    return pd.concat([df[~unpooled], *copies], ignore_index=True)


def _expand(patterns: list) -> list[str]:
    """Expands folders and globs, in order; every pattern must match; a file met twice is kept once."""
    if not patterns:
        raise ValueError("No result CSVs given. Received: paths=[]")
    files = {}
    for pattern in map(str, patterns):
        for match in _matches(pattern):
            files.setdefault(os.path.realpath(match), match)
    return list(files.values())


def _matches(pattern: str) -> list[str]:
    """Result CSVs of a folder or glob; per-class companions are read with their result CSV, not on their own."""
    folder = Path(pattern)
    if folder.is_dir():
        inner = folder / "trials" if (folder / "trials").is_dir() else folder
        matches = sorted(str(p) for p in inner.glob("*.csv") if p.is_file() and not p.name.endswith(PER_CLASS_SUFFIX))
        if not matches:
            raise FileNotFoundError(f"No result CSVs in folder {inner}")
        return matches
    found = sorted(glob.glob(pattern))
    matches = [m for m in found if not m.endswith(PER_CLASS_SUFFIX)]
    if found and not matches:
        raise FileNotFoundError(f"{pattern!r} matches only per-class companion CSVs (*{PER_CLASS_SUFFIX}); give "
                                "their result CSVs")
    if not matches:
        raise FileNotFoundError(f"No file matches {pattern!r}")
    return matches


def _read_one(path: str) -> tuple[pd.DataFrame, dict]:
    """Reads one CSV, checks it, and attaches its runs' class counts; returns it and its runs' settings."""
    df = _read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is missing columns {missing}. Received columns: {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path} has no rows")
    _check_numeric(path, df)
    meta = {r: _metadata(path, r) for r in df["run_id"].unique()}
    classes = {r: m.get("num_classes") for r, m in meta.items()}
    df = df.assign(num_classes=df["run_id"].map(classes).astype(float), _file=path)
    return _attach_forgetting(path, df, meta), {r: m.get("config") or {} for r, m in meta.items()}


def _read_csv(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, low_memory=False, dtype={"run_id": str})
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} has no rows") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a result CSV: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise ValueError(f"{path} is not a result CSV: {str(err).strip().splitlines()[0]}") from None


def _check_numeric(path: str, df: pd.DataFrame) -> None:
    for column in NUMERIC:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: column {column!r} holds a non-number on line {row + 2}: {df[column].iloc[row]!r}")


def _metadata(csv_path: str, run_id) -> dict:
    """The run's metadata JSON beside the CSV, or {} when absent."""
    meta = Path(csv_path).with_name(f"{Path(csv_path).stem}.{run_id}.json")
    if not meta.is_file():
        return {}
    try:
        value = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta} is not a run's metadata JSON: {err}") from None
    return value if isinstance(value, dict) else {}


def _refuse_duplicate_keys(df: pd.DataFrame) -> None:
    """Raises when a (run, epoch, key columns, threshold) key appears more than once, naming where."""
    key = ["run_id", "epoch", *key_columns(df), "threshold"]
    repeated = df.duplicated(key, keep=False)
    if not repeated.any():
        return
    first = df.loc[repeated.idxmax(), key]
    files = df.loc[(df[key] == first).all(axis=1), "_file"].tolist()
    where = f"in {files[0]} and {files[1]}" if files[0] != files[1] else f"{len(files)} times in {files[0]}"
    example = ", ".join(f"{c}={first[c]}" for c in key)
    raise ValueError(
        f"{int(df.duplicated(key).sum())} result keys appear more than once, e.g. ({example}) {where}; "
        "give each run's rows once (a file listed twice, a copy of a shard, or a run written twice)"
    )


def _attach_settings(df: pd.DataFrame, configs: dict) -> pd.DataFrame:
    """Adds one text column per scalar run setting that differs between the runs."""
    table = pd.DataFrame.from_dict(
        {r: {k: v for k, v in c.items() if _is_setting(k, v, df)} for r, c in configs.items()}, orient="index"
    )
    varying = [c for c in table.columns if table[c].dropna().astype(str).nunique() > 1]
    for column in varying:
        df[column] = df["run_id"].map(table[column].map(_setting_text)).fillna("-")
    return df


def _is_setting(name: str, value, df: pd.DataFrame) -> bool:
    return name not in NOT_SETTINGS and name not in df.columns and not isinstance(value, list | dict)


def _setting_text(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# Columns ------------------------------------------------------------------------------------------------------


def key_columns(df: pd.DataFrame) -> list[str]:
    """The key columns present: ``KEYS``, then every other text column that is not a value (settings, ...)."""
    extra = [c for c in df.columns if c not in KEYS and c not in NOT_KEYS and not c.startswith("_")]
    extra = [c for c in extra if not pd.api.types.is_numeric_dtype(df[c])]
    return [c for c in KEYS if c in df.columns] + extra


def condition_columns(df: pd.DataFrame, compare: Sequence[str] = ("measure",)) -> list[str]:
    """Key columns that are not compared, with ``epoch`` after ``model``: the columns that define a condition."""
    columns = [c for c in key_columns(df) if c not in compare]
    at = columns.index("model") + 1 if "model" in columns else 0
    return [*columns[:at], "epoch", *columns[at:]]


def panel_columns(df: pd.DataFrame) -> list[str]:
    """Key columns that select one figure of curves: all but measure and aggregation (``PANEL`` by default)."""
    return [c for c in key_columns(df) if c not in ("measure", "aggregation")]


# Scores -------------------------------------------------------------------------------------------------------


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


# Intervals ----------------------------------------------------------------------------------------------------


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


# Replicates and ranking ---------------------------------------------------------------------------------------


def replicates(scores: pd.DataFrame, compare: Sequence[str] = ("measure",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits run scores into complete blocks (seeds) per condition, and the seeds excluded.

    A seed of a condition is kept when every treatment of that condition has a finite AUC and tolerated sparsity
    for it. Treatments are labelled in a ``treatment`` column (the ``compare`` values joined by ", ").

    Returns:
        ``(used, excluded)``: score rows kept, and one row per excluded (condition, seed) with a ``reason``.

    Raises:
        ValueError: a seed appears in two runs of one condition and treatment (their differing settings are not
            recorded), naming the condition, the seed and the runs.
    """
    scores = with_treatment(scores, compare)
    conditions = condition_columns(scores, compare)
    _refuse_repeated_seeds(scores, conditions)
    finite = np.isfinite(scores["auc"]) & np.isfinite(scores["tolerated_sparsity"])
    n_treatments = scores.groupby(conditions, dropna=False)["treatment"].transform("nunique")
    blocks = scores.assign(_finite=finite).groupby([*conditions, "seed"], dropna=False)
    keep = blocks["_finite"].transform("all") & (blocks["treatment"].transform("size") == n_treatments)
    return scores[keep].reset_index(drop=True), _excluded(scores, keep, finite, conditions)


def with_treatment(scores: pd.DataFrame, compare: Sequence[str]) -> pd.DataFrame:
    """Adds the ``treatment`` label: the ``compare`` column values joined by ", "."""
    label = scores[list(compare)].astype(str).agg(", ".join, axis=1) if len(scores) else pd.Series(dtype=str)
    return scores.assign(treatment=label)


def _refuse_repeated_seeds(scores: pd.DataFrame, conditions: list[str]) -> None:
    repeated = scores.duplicated([*conditions, "treatment", "seed"], keep=False)
    if not repeated.any():
        return
    block = [*conditions, "treatment", "seed"]
    first = scores[repeated].iloc[0]
    runs = scores.loc[repeated & (scores[block] == first[block]).all(axis=1), "run_id"]
    raise ValueError(
        f"Seed {first['seed']} appears in runs {sorted(set(runs))} of one condition ({_label(first, conditions)}, "
        f"treatment {first['treatment']}); runs of a condition must differ only in seed, and these differ in "
        "settings not recorded (is each run's metadata JSON beside its CSV?)"
    )


def _excluded(scores: pd.DataFrame, keep, finite, conditions: list[str]) -> pd.DataFrame:
    rows = []
    everything = scores.groupby(conditions, dropna=False)["treatment"].agg(set)
    for key, block in scores[~keep].assign(_finite=finite[~keep]).groupby([*conditions, "seed"], dropna=False):
        bad = sorted(block.loc[~block["_finite"], "treatment"])
        missing = sorted(everything[key[:-1] if len(conditions) > 1 else key[0]] - set(block["treatment"]))
        reason = f"non-finite scores for {bad}" if bad else f"no rows for {missing}"
        rows.append((*key, reason))
    return pd.DataFrame(rows, columns=[*conditions, "seed", "reason"])


def rank_table(
    df: pd.DataFrame, loss_tol=0.10, acc_tol=0.01, compare: Sequence[str] = ("measure",), interval="bootstrap"
) -> pd.DataFrame:
    """One row per (condition, treatment) over complete seeds: means, 95% intervals and ranks.

    Columns: the condition columns, the ``compare`` columns, ``treatment``, ``auc`` (mean over seeds) with
    ``auc_lo``/``auc_hi``, ``tolerated_sparsity`` with ``_lo``/``_hi``, ``measure_seconds``, ``n_seeds``,
    ``mean_rank`` (mean over seeds of the per-seed rank by AUC) and ``rank`` (rank of the mean AUC); 1 = best.
    Intervals are NaN for one seed. Every epoch is included (each one its own condition).
    """
    return table_from_blocks(replicates(run_scores(df, loss_tol, acc_tol), compare)[0], compare, interval)


def table_from_blocks(used: pd.DataFrame, compare: Sequence[str] = ("measure",), interval="bootstrap") -> pd.DataFrame:
    """``rank_table`` from the complete blocks of ``replicates``."""
    conditions = condition_columns(used, compare)
    used = used.assign(_seed_rank=used.groupby([*conditions, "seed"], dropna=False)["auc"].rank())
    groups = used.groupby([*conditions, *compare, "treatment"], dropna=False)
    table = groups.agg(
        auc=("auc", "mean"), tolerated_sparsity=("tolerated_sparsity", "mean"),
        measure_seconds=("measure_seconds", "mean"), n_seeds=("seed", "nunique"), mean_rank=("_seed_rank", "mean"),
    )  # fmt: skip
    for metric in ("auc", "tolerated_sparsity"):
        low, high = mean_intervals([g.to_numpy() for _, g in groups[metric]], interval, BOUNDS[metric])
        table.insert(table.columns.get_loc(metric) + 1, f"{metric}_lo", low)
        table.insert(table.columns.get_loc(metric) + 2, f"{metric}_hi", high)
    table = table.reset_index()
    table["rank"] = table.groupby(conditions, dropna=False)["auc"].rank(method="average")
    return table.sort_values([*conditions, "mean_rank", "auc"], ignore_index=True)


def summary(table: pd.DataFrame, compare: Sequence[str] = ("measure",)) -> pd.DataFrame:
    """Best treatment (lowest mean rank over seeds, then mean AUC) per condition at the last epoch of each run."""
    conditions = condition_columns(table, compare)
    others = [c for c in conditions if c != "epoch"]
    last = table[table["epoch"] == table.groupby(others, dropna=False)["epoch"].transform("max")]
    best = last.sort_values(["mean_rank", "auc"]).groupby(conditions, dropna=False).head(1)
    columns = [*conditions, "treatment", "auc", "auc_lo", "auc_hi", "tolerated_sparsity", "mean_rank", "n_seeds"]
    return best[columns].sort_values(conditions, ignore_index=True)


def ranked_epochs(scores: pd.DataFrame, epoch="last", compare: Sequence[str] = ("measure",)) -> pd.Series:
    """Boolean mask of the rows at the ranked epochs: the last epoch of each condition, or the listed epochs.

    Raises:
        ValueError: a listed epoch is not in the data (the available epochs are named).
    """
    if epoch == "last":
        others = [c for c in condition_columns(scores, compare) if c != "epoch"]
        return scores["epoch"] == scores.groupby(others, dropna=False)["epoch"].transform("max")
    available = sorted(int(e) for e in scores["epoch"].unique())
    missing = sorted(set(epoch) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: epoch={epoch}")
    return scores["epoch"].isin(epoch)


# Tests --------------------------------------------------------------------------------------------------------


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


def mean_rank_matrix(table: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Mean rank over seeds of each treatment (rows) in each ranked condition (columns), best overall first.

    Columns are labelled by the condition values that differ between the ranked conditions; the last column,
    ``mean``, is the plain mean over conditions (descriptive: conditions of one run are not independent).
    """
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    ranked = table.merge(tests[conditions], on=conditions)
    varying = [c for c in conditions if ranked[c].nunique() > 1] or conditions[:1]
    ranked = ranked.assign(_column=[_label(r, varying) for _, r in ranked.iterrows()])
    matrix = ranked.pivot_table(index="treatment", columns="_column", values="mean_rank", sort=False)
    matrix.columns.name = None
    return matrix.assign(mean=matrix.mean(axis=1)).sort_values("mean").rename_axis("treatment")


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


def _label(row, columns) -> str:
    return ", ".join(f"{c}={row[c]}" for c in columns)


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


# Colours ------------------------------------------------------------------------------------------------------


def measure_colors(names: Iterable[str]) -> dict:
    """One colour per name, by sorted name: tab10 up to 10 names, tab20 up to 20, husl beyond."""
    names = sorted(set(map(str, names)))
    palette = "tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "husl"
    return dict(zip(names, sns.color_palette(palette, n_colors=len(names)), strict=True))


def treatment_colors(table: pd.DataFrame, compare: Sequence[str] = ("measure",), colors: dict | None = None) -> dict:
    """Colour of each treatment label: its measure's colour when the measure is compared, else one per label."""
    if "measure" not in compare:
        return measure_colors(table["treatment"])
    colors = colors or measure_colors(table["measure"])
    return dict(zip(table["treatment"], table["measure"].map(colors), strict=True))


# Figures ------------------------------------------------------------------------------------------------------


def select_epochs(df: pd.DataFrame, epochs: Iterable[int] | None = None) -> list[int]:
    """The requested epochs, checked against the data; by default the first, middle and last."""
    available = sorted(int(e) for e in df["epoch"].unique())
    if epochs is None:
        return sorted({available[0], available[(len(available) - 1) // 2], available[-1]})
    missing = sorted(set(epochs) - set(available))
    if missing:
        raise ValueError(f"Epochs {missing} are not in the results; available: {available}. Received: {list(epochs)}")
    return sorted(set(epochs))


def curve_stats(df: pd.DataFrame, metric: str = "val_loss", interval: str = "bootstrap") -> pd.DataFrame:
    """Per (condition, measure, threshold): mean sparsity, mean metric over seeds and its 95% interval.

    A point where any seed's value is not finite gets a NaN mean (a gap in the curve). Columns ``lo``/``hi`` are
    NaN for one seed; ``n`` counts the seeds.
    """
    values = df[metric].where(np.isfinite(df[metric]))
    groups = df.assign(_value=values).groupby([*condition_columns(df), "measure", "threshold"], dropna=False)
    out = groups.agg(sparsity=("sparsity", "mean"), mean=("_value", "mean"), n=("_value", "size"),
                     finite=("_value", "count"))  # fmt: skip
    low, high = mean_intervals([g.to_numpy() for _, g in groups["_value"]], interval, BOUNDS.get(metric, (-np.inf, np.inf)))
    out = out.assign(lo=low, hi=high).reset_index()
    out.loc[out["finite"] < out["n"], ["mean", "lo", "hi"]] = np.nan
    return out.drop(columns="finite")


def plot_curves(df, metric="val_loss", epochs=None, num_classes=None, colors=None, interval="bootstrap"):
    """Metric over sparsity, one line per measure; facets aggregation (columns) x epoch (rows).

    Args:
        df: rows of one figure combination (see ``panel_columns``).
        metric: "val_loss" or "val_accuracy".
        epochs: epochs to show; default first, middle, last.
        num_classes: class count for the chance line; default from the runs' JSON metadata.
        colors: measure -> colour; default ``measure_colors`` of the measures in ``df``.
        interval: band over seeds, "bootstrap" or "t"; no band for one seed.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(df)
    epochs, aggs = select_epochs(df, epochs), sorted(df["aggregation"].unique())
    data = curve_stats(df[df["epoch"].isin(epochs)], metric, interval)
    colors = colors or measure_colors(df["measure"])
    fig, axes = plt.subplots(len(epochs), len(aggs), figsize=(3.6 * len(aggs) + 2, 2.8 * len(epochs) + 0.8),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for (i, epoch), (j, agg) in itertools.product(enumerate(epochs), enumerate(aggs)):
        _draw_curves(axes[i, j], data[(data["epoch"] == epoch) & (data["aggregation"] == agg)], colors)
        axes[i, j].set_title(f"{agg}, epoch {epoch}", fontsize="medium")
    handles = [Line2D([], [], color=colors[m], label=m) for m in sorted(data["measure"].unique())]
    handles += _chance_lines(axes, metric, _classes(df, num_classes))
    fig.legend(handles=handles, loc="outside right upper", title="measure")
    fig.supxlabel(SPARSITY_LABEL)
    fig.supylabel(_metric_label(metric, _classes(df, num_classes)))
    caption = interval_caption(interval, int(data["n"].max()), BOUNDS.get(metric))
    fig.suptitle(f"{_title(key, per_line=3)}\n{caption}", fontsize="medium")
    return fig


def _draw_curves(ax, data: pd.DataFrame, colors: dict) -> None:
    for measure, g in data.sort_values("sparsity").groupby("measure"):
        ax.plot(g["sparsity"], g["mean"], color=colors[measure], lw=1.5)
        if g["lo"].notna().any():
            ax.fill_between(g["sparsity"], g["lo"], g["hi"], color=colors[measure], alpha=0.2, lw=0)
    ax.grid(alpha=0.3)


def _chance_lines(axes, metric: str, classes: float | None) -> list:
    """Draws chance level (ln C nats, or accuracy 1/C) on every axis; returns legend handles."""
    if classes is None:
        return []
    level = np.log(classes) if metric == "val_loss" else 1.0 / classes
    label = f"chance (ln {classes:g})" if metric == "val_loss" else f"chance (1/{classes:g})"
    for ax in axes.flat:
        ax.axhline(level, color="0.4", ls="--", lw=1)
    return [Line2D([], [], color="0.4", ls="--", lw=1, label=label)]


def _classes(df: pd.DataFrame, num_classes: int | None) -> float | None:
    """The explicit class count, else the one count the runs' metadata agree on, else None."""
    if num_classes is not None:
        return float(num_classes)
    known = df["num_classes"].dropna().unique() if "num_classes" in df else []
    return float(known[0]) if len(known) == 1 else None


def _metric_label(metric: str, classes: float | None) -> str:
    if metric == "val_loss" and classes is not None:
        return "validation loss (cross-entropy, nats)"
    return METRIC_LABELS.get(metric, metric)


def plot_rank_heatmap(table: pd.DataFrame, colors: dict | None = None, compare: Sequence[str] = ("measure",)):
    """Mean rank over seeds of each treatment (rows, best first) at each epoch (columns), one heatmap per aggregation.

    The epochs are a curve over training, not replicates.

    Args:
        table: ``rank_table`` rows of one figure combination (``panel_columns`` less the ``compare`` columns).
        colors: treatment -> colour for the row labels; default ``treatment_colors``.
        compare: the treatment columns of ``table``.

    Returns:
        The matplotlib Figure.
    """
    key = _single_panel(table, compare)
    aggs = sorted(table["aggregation"].unique()) if "aggregation" in condition_columns(table, compare) else [None]
    n_treatments, n_epochs = table["treatment"].nunique(), table["epoch"].nunique()
    fig, axes = plt.subplots(1, len(aggs), figsize=(min(0.5 * n_epochs, 12) * len(aggs) + 3,
                             0.45 * n_treatments + 1.6), squeeze=False, layout="constrained")  # fmt: skip
    order = table.groupby("treatment")["mean_rank"].mean().sort_values().index
    for ax, agg in zip(axes[0], aggs, strict=True):
        part = table if agg is None else table[table["aggregation"] == agg]
        grid = part.pivot_table(index="treatment", columns="epoch", values="mean_rank")
        sns.heatmap(grid.reindex([t for t in order if t in grid.index]), ax=ax, annot=n_epochs <= 20, fmt=".3g",
                    cmap="viridis_r", vmin=1, vmax=n_treatments,
                    cbar_kws={"label": f"mean rank by AUC over {_seed_range(part)} (1 = best)"})  # fmt: skip
        ax.set(title=agg or "", xlabel="epoch", ylabel="treatment")
        _color_ticks(ax, colors or treatment_colors(table, compare))
    fig.suptitle(_title(key, per_line=2), fontsize="medium")
    return fig


def _seed_range(table: pd.DataFrame) -> str:
    low, high = int(table["n_seeds"].min()), int(table["n_seeds"].max())
    return f"{low} seed{'s' * (high > 1)}" if low == high else f"{low}-{high} seeds"


def _color_ticks(ax, colors: dict) -> None:
    ax.tick_params(axis="y", rotation=0)
    for label in ax.get_yticklabels():
        label.set_color(colors.get(label.get_text(), "black"))


def plot_cd(mean_ranks: pd.Series, pvalues: pd.DataFrame, title: str = "", colors: dict | None = None, alpha=0.05):
    """Critical-difference diagram: mean ranks over seeds; bars join treatments Wilcoxon-Holm cannot separate.

    Args:
        mean_ranks: treatment -> mean rank over seeds (1 = best).
        pvalues: Holm-adjusted Wilcoxon p-values (``wilcoxon_holm``).
        title: first lines of the title (the condition).
        colors: treatment -> colour (the measure's colour in the curves).
        alpha: significance level.

    Returns:
        The matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(mean_ranks) + 2.2), layout="constrained")
    palette = {t: colors[t] for t in mean_ranks.index} if colors else None
    sp.critical_difference_diagram(mean_ranks, pvalues.loc[mean_ranks.index, mean_ranks.index], ax=ax, alpha=alpha,
                                   color_palette=palette)  # fmt: skip
    ax.set_title(f"{title}\nmean rank by AUC over seeds (1 = best); bars join treatments that pairwise Wilcoxon "
                 f"signed-rank tests,\nHolm-adjusted, cannot separate (alpha {alpha:g})", fontsize="medium")  # fmt: skip
    return fig


def plot_mean_ranks(matrix: pd.DataFrame, colors: dict | None = None):
    """Heatmap of ``mean_rank_matrix``: treatments (rows) x ranked conditions (columns)."""
    grid = matrix.drop(columns="mean")
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 4, 0.45 * len(grid) + 2), layout="constrained")
    sns.heatmap(grid, ax=ax, annot=grid.size <= 400, fmt=".3g", cmap="viridis_r", vmin=1, vmax=len(grid),
                cbar_kws={"label": "mean rank by AUC over seeds (1 = best)"})  # fmt: skip
    ax.set(xlabel="condition (at the ranked epoch)", ylabel="treatment", title="Mean rank per condition, best first")
    ax.tick_params(axis="x", rotation=30)
    _color_ticks(ax, colors or {})
    return fig


def _single_panel(df: pd.DataFrame, compare: Sequence[str] = ()) -> tuple:
    """The one figure combination (``panel_columns`` less ``compare``) of ``df``, as (column, value) pairs."""
    columns = [c for c in panel_columns(df) if c not in compare]
    combos = df[columns].drop_duplicates()
    if len(combos) != 1:
        raise ValueError(f"Expected one combination of {columns}; filter the rows first. Received: {len(combos)}")
    return tuple(zip(columns, combos.iloc[0], strict=True))


def _title(pairs: tuple, per_line: int = 6) -> str:
    texts = [f"{c}={v}" for c, v in pairs]
    return "\n".join(", ".join(texts[i : i + per_line]) for i in range(0, len(texts), per_line))


def _slug(values: Iterable) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(v)) for v in values)


# Forgetting ---------------------------------------------------------------------------------------------------


def _attach_forgetting(path: str, df: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Adds ``FORGETTING`` columns and ``forget_classes`` for the forgetting runs of one CSV (see the module docstring).

    Raises:
        ValueError: a forgetting run's per-class companion CSV is missing or lacks the run's rows.
    """
    forget = {r: (m.get("config") or {}).get("forget_classes") for r, m in meta.items()}
    forget = {r: [int(c) for c in classes] for r, classes in forget.items() if classes}
    if not forget:
        return df
    companion = Path(path).with_name(Path(path).stem + PER_CLASS_SUFFIX)
    if not companion.is_file():
        raise ValueError(f"{path} holds forgetting runs {sorted(forget)} but their per-class CSV {companion} is missing")
    per_class = _read_csv(str(companion))
    keys = list(per_class.columns[: list(per_class.columns).index("class")])
    metrics = forgetting_metrics(per_class[per_class["run_id"].isin(forget)], forget, keys)
    df = df.merge(metrics, on=keys, how="left", validate="many_to_one")
    missing = df["run_id"].isin(forget) & df["forget_accuracy"].isna() & df["retain_accuracy"].isna()
    if missing.any():
        raise ValueError(f"{companion} lacks the per-class rows of {int(missing.sum())} rows of {path}, e.g. run "
                         f"{df.loc[missing, 'run_id'].iloc[0]}")
    text = {r: ",".join(map(str, classes)) for r, classes in forget.items()}
    return df.assign(forget_classes=df["run_id"].map(text))


def forgetting_metrics(per_class: pd.DataFrame, forget: dict, keys: Sequence[str]) -> pd.DataFrame:
    """Accuracy and loss on the forget set and on the other classes per row key, from per-class rows.

    Args:
        per_class: rows of a per-class CSV: ``keys``, ``class``, ``val_loss``, ``val_accuracy``, ``n_examples``.
        forget: run id -> forget classes.
        keys: the columns that identify one main row (the sweep key and ``threshold``).

    Returns:
        One row per key: ``keys`` and ``FORGETTING``. Each value is a mean over the validation examples of the
        set: sum over its classes of n_c * metric_c, divided by the set's n (NaN when the set has none).
    """
    in_a = [c in forget[r] for r, c in zip(per_class["run_id"], per_class["class"], strict=True)]
    part = per_class.assign(_set=np.where(in_a, "forget", "retain"),
                            _correct=per_class["val_accuracy"] * per_class["n_examples"],
                            _loss=(per_class["val_loss"] * per_class["n_examples"]).where(per_class["n_examples"] > 0, 0))
    sums = part.groupby([*keys, "_set"], dropna=False)[["_correct", "_loss", "n_examples"]].sum()
    n = sums["n_examples"].where(sums["n_examples"] > 0)
    wide = pd.DataFrame({"accuracy": sums["_correct"] / n, "loss": sums["_loss"] / n}).unstack("_set")
    wide.columns = [f"{s}_{metric}" for metric, s in wide.columns]
    return wide.reindex(columns=FORGETTING).reset_index()


def forgetting_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of forgetting runs (those with accuracy on the forget set); empty when there are none."""
    return df[df["forget_accuracy"].notna()] if "forget_accuracy" in df else df.iloc[:0]


def forgetting_scores(df: pd.DataFrame, level: float = 0.10) -> pd.DataFrame:
    """Selectivity and the accuracy on R when A is forgotten, per (key columns, epoch, run); see the module docstring.

    Columns: the keys, ``epoch``, ``run_id``, ``seed``, ``selectivity``, ``forget_accuracy0``/``retain_accuracy0``
    (at the smallest threshold), ``retained_at_forgotten`` and ``sparsity_at_forgotten``.
    """
    keys = [*key_columns(df), "epoch", *RUN]
    rows = [(*key, *_forgetting_point(g.sort_values(["threshold", "sparsity"]), level))
            for key, g in forgetting_rows(df).groupby(keys, dropna=False, sort=False)]
    fields = ["selectivity", "forget_accuracy0", "retain_accuracy0", "retained_at_forgotten", "sparsity_at_forgotten"]
    return pd.DataFrame(rows, columns=[*keys, *fields])


def _forgetting_point(run: pd.DataFrame, level: float) -> tuple:
    gap = (run["retain_accuracy"] - run["forget_accuracy"]).to_numpy(float)
    area = auc(run["sparsity"], gap)
    below = run[run["forget_accuracy"] < level]
    at = below.iloc[0] if len(below) else None
    first = run.iloc[0]
    return (area, first["forget_accuracy"], first["retain_accuracy"],
            np.nan if at is None else at["retain_accuracy"], np.nan if at is None else at["sparsity"])


def forgetting_table(df: pd.DataFrame, level: float = 0.10) -> pd.DataFrame:
    """Per (condition, measure), the mean over seeds of ``forgetting_scores``, ranked by selectivity.

    Adds ``n_seeds``, ``over_random`` (selectivity minus that of measure ``random`` in the same condition; NaN
    without it) and ``rank`` (1 = most selective). Sorted by condition, then rank.
    """
    scores = forgetting_scores(df, level)
    if scores.empty:
        return scores
    conditions = condition_columns(scores)
    fields = ["selectivity", "forget_accuracy0", "retain_accuracy0", "retained_at_forgotten", "sparsity_at_forgotten"]
    table = scores.groupby([*conditions, "measure"], dropna=False).agg(
        **{f: (f, "mean") for f in fields}, n_seeds=("seed", "nunique")).reset_index()
    random = table[table["measure"] == "random"].set_index(conditions)["selectivity"]
    base = table.set_index(conditions).index.map(lambda k: random.get(k, np.nan))
    table["over_random"] = table["selectivity"] - np.asarray(base, float)
    table["rank"] = table.groupby(conditions, dropna=False)["selectivity"].rank(ascending=False, method="average")
    return table.sort_values([*conditions, "rank"], ignore_index=True)


def _forgetting_curves(df: pd.DataFrame, epoch, by: str = "aggregation") -> pd.DataFrame:
    """Mean over seeds of sparsity and both accuracies per (``by``, measure, threshold) at one epoch.

    Raises:
        ValueError: ``by`` is not a key column, or the rows hold several aggregations and ``by`` is another column.
    """
    part = forgetting_rows(df)
    if by not in key_columns(part) or (by != "aggregation" and part["aggregation"].nunique() > 1):
        raise ValueError(f"Panels by {by!r} need a key column and one aggregation; filter the rows first. "
                         f"Received: by={by!r}, aggregations={sorted(part['aggregation'].unique())}")
    part = part[part["epoch"] == (part["epoch"].max() if epoch is None else epoch)]
    return part.groupby([by, "measure", "threshold"], as_index=False)[
        ["sparsity", "forget_accuracy", "retain_accuracy"]].mean()


def plot_forgetting(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None):
    """Accuracy on the forget set A (dashed) and on the other classes R (solid) over sparsity, one panel per measure.

    Args:
        df: forgetting rows of one figure combination (see ``panel_columns``).
        epoch: the epoch drawn; default the last.
        colors: measure -> colour.

    Returns:
        The matplotlib Figure: rows aggregation, columns measure; means over seeds.
    """
    key, data = _single_panel(forgetting_rows(df)), _forgetting_curves(df, epoch)
    aggs, names = sorted(data["aggregation"].unique()), sorted(data["measure"].unique())
    colors = colors or measure_colors(names)
    fig, axes = plt.subplots(len(aggs), len(names), figsize=(2.8 * len(names) + 1.5, 2.6 * len(aggs) + 1),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for (i, agg), (j, name) in itertools.product(enumerate(aggs), enumerate(names)):
        g, ax = data[(data["aggregation"] == agg) & (data["measure"] == name)].sort_values("threshold"), axes[i, j]
        ax.plot(g["sparsity"], g["retain_accuracy"], color=colors[name], lw=1.5, label="other classes (R)")
        ax.plot(g["sparsity"], g["forget_accuracy"], color=colors[name], lw=1.5, ls="--", label="forget set (A)")
        ax.set_title(f"{name}, {agg}", fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    fig.supxlabel("sparsity (fraction of prunable weights replaced, most A-specific first)")
    fig.supylabel("validation accuracy (fraction correct)")
    fig.suptitle(f"{_title(key, per_line=3)}\n{_forget_caption(df, epoch)}", fontsize="medium")
    return fig


def plot_selectivity(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None, by: str = "aggregation"):
    """Selectivity curves: accuracy on the other classes R against accuracy on the forget set A, one line per measure.

    Each line runs over the thresholds from t = 0 (a circle); the ideal curve keeps R high while A falls to 0 (top
    left). Means over seeds.

    Args:
        df: forgetting rows of one figure combination, less ``by``.
        epoch: the epoch drawn; default the last.
        colors: measure -> colour.
        by: the key column whose values get one panel each (``aggregation``; ``prunable`` for rows of one aggregation).

    Returns:
        The matplotlib Figure.
    """
    key, data = _single_panel(forgetting_rows(df), (by,)), _forgetting_curves(df, epoch, by)
    aggs = sorted(data[by].unique())
    colors = colors or measure_colors(data["measure"])
    fig, axes = plt.subplots(1, len(aggs), figsize=(4.2 * len(aggs) + 1.8, 4.2), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, agg in zip(axes[0], aggs, strict=True):
        for name, g in data[data[by] == agg].groupby("measure"):
            g = g.sort_values("threshold")
            ax.plot(g["forget_accuracy"], g["retain_accuracy"], color=colors[name], lw=1.5, marker=".", label=name)
            ax.plot(g["forget_accuracy"].iloc[:1], g["retain_accuracy"].iloc[:1], "o", color=colors[name], mfc="none")
        ax.set(title=agg if by == "aggregation" else f"{by}={agg}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", title="measure")
    fig.supxlabel("accuracy on the forget set A")
    fig.supylabel("accuracy on the other classes R")
    fig.suptitle(f"{_title(key, per_line=3)}\n{_forget_caption(df, epoch)}", fontsize="medium")
    return fig


def _forget_caption(df: pd.DataFrame, epoch) -> str:
    part = forgetting_rows(df)
    shown = part["epoch"].max() if epoch is None else epoch
    classes = ", ".join(sorted(set(part["forget_classes"].astype(str))))
    return f"forget set A = class(es) {classes}; epoch {shown}; mean over {part['seed'].nunique()} seed(s)"


def format_forgetting(table: pd.DataFrame) -> str:
    """Terminal lines: per condition (last epoch), measures by selectivity, margin over random, R when A < 10%."""
    if table.empty:
        return ""
    conditions = condition_columns(table)
    others = [c for c in conditions if c != "epoch"]
    last = table[table["epoch"] == table.groupby(others, dropna=False)["epoch"].transform("max")]
    lines = ["Selective forgetting: selectivity = area between the accuracy on the other classes and on the forget "
             "set over sparsity (larger = more selective); R@A<10% = accuracy on the other classes when the forget "
             "set's accuracy first drops below 10% (sparsity there)"]
    for key, part in last.groupby(conditions, dropna=False, sort=False):
        lines.append("  " + _label(pd.Series(key, index=conditions), [c for c in conditions if part[c].notna().all()]))
        for _, r in part.iterrows():
            margin = f" ({r['over_random']:+.3f} over random)" if np.isfinite(r["over_random"]) else ""
            forgotten = "never" if not np.isfinite(r["retained_at_forgotten"]) else \
                f"{r['retained_at_forgotten']:.3f} (sparsity {r['sparsity_at_forgotten']:.3g})"
            lines.append(f"    {int(r['rank'])}. {r['measure']}: selectivity {r['selectivity']:.3f}{margin}; "
                         f"R@A<10%: {forgotten}")
    return "\n".join(lines)


# Protocol: removal order, matched controls, recovery ------------------------------------------------------------


def base_measure(name: str) -> str:
    """The measure of a row: ``fisher`` for ``fisher`` and for its controls ``fisher~random_matched``, ..."""
    return str(name).split(CONTROL_SEPARATOR, 1)[0]


def control_of(name: str) -> str:
    """The control of a row's measure (``random_matched``, ``shuffled``), or "" for a measure."""
    return str(name).partition(CONTROL_SEPARATOR)[2]


def _at_ranked_epochs(scores: pd.DataFrame, epoch) -> pd.DataFrame:
    """Score rows at the ranked epochs with a finite AUC."""
    return scores[ranked_epochs(scores, epoch) & np.isfinite(scores["auc"])]


def order_table(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Per condition (without ``order``) and measure: the AUC of both removal orders, their gap, and three ranks.

    ``auc_least`` (least important removed first, LeRF; lower is better) and ``auc_most`` (MoRF; higher is better)
    are means over the seeds that have both; ``gap = auc_most - auc_least`` (higher is better: the measure is right
    about which weights matter in both directions) is the mean of the per-seed gaps. ``rank_least``, ``rank_most``
    and ``rank_gap`` rank the measures (controls included) of each condition by each, 1 = best, ties averaged.

    Args:
        scores: ``run_scores`` rows.
        epoch: the ranked epochs, "last" or a list.

    Returns:
        One row per (condition, measure); empty when the scores do not hold both orders.
    """
    if "order" not in scores or not {"least", "most"} <= set(scores["order"]):
        return pd.DataFrame()
    ranked = _at_ranked_epochs(scores, epoch)
    conditions = [c for c in condition_columns(ranked) if c != "order"]
    wide = ranked.groupby([*conditions, "measure", "seed", "order"], dropna=False)["auc"].mean().unstack("order")
    wide = wide.dropna(subset=["least", "most"]).assign(gap=lambda w: w["most"] - w["least"])
    table = wide.groupby([*conditions, "measure"], dropna=False).agg(
        auc_least=("least", "mean"), auc_most=("most", "mean"), gap=("gap", "mean"), n_seeds=("gap", "size"),
    ).reset_index()  # fmt: skip
    groups = table.groupby(conditions, dropna=False)
    table["rank_least"] = groups["auc_least"].rank()
    table["rank_most"] = groups["auc_most"].rank(ascending=False)
    table["rank_gap"] = groups["gap"].rank(ascending=False)
    return table.sort_values([*conditions, "rank_gap"], ignore_index=True)


def control_table(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Per condition and measure with controls: its mean AUC over seeds, each control's, and whether it beats them.

    A measure beats a control when its mean AUC is lower (order ``least``, or no order column) or higher (order
    ``most``: removing its most important weights first must hurt more than the control's choice). ``n_seeds``
    counts the seeds with the measure and every control.

    Returns:
        Condition columns, ``measure``, ``auc``, ``auc_<control>`` and ``beats_<control>`` per control; empty
        without control rows.
    """
    ranked = _at_ranked_epochs(scores, epoch)
    controls = sorted({control_of(m) for m in ranked["measure"]} - {""})
    if not controls:
        return pd.DataFrame()
    conditions = condition_columns(ranked)
    ranked = ranked.assign(_base=ranked["measure"].map(base_measure), _control=ranked["measure"].map(control_of))
    wide = ranked.groupby([*conditions, "_base", "seed", "_control"], dropna=False)["auc"].mean().unstack("_control")
    wide = wide.rename(columns={"": "_measure"}).dropna(subset=["_measure", *controls]).reset_index()
    table = wide.groupby([*conditions, "_base"], dropna=False).agg(
        auc=("_measure", "mean"), n_seeds=("seed", "size"), **{f"auc_{c}": (c, "mean") for c in controls}
    ).reset_index().rename(columns={"_base": "measure"})  # fmt: skip
    sign = np.where(table["order"] == "most", -1.0, 1.0) if "order" in table else 1.0
    for control in controls:
        table[f"beats_{control}"] = sign * (table["auc"] - table[f"auc_{control}"]) < 0
    return table


def recovery_agreement(scores: pd.DataFrame, epoch="last") -> pd.DataFrame:
    """Spearman's rho between the measures' ranking without recovery and with each recovery, per condition.

    Per condition (without ``recovery``), recovery r other than ``none``, and seed: ``scipy.stats.spearmanr`` of the
    AUCs of the measures (controls excluded) with a finite AUC under both ``none`` and r. ``rho`` is the mean over
    seeds, ``rho_min``/``rho_max`` its range, ``n_seeds`` the seeds, ``n_measures`` the fewest measures of a seed.
    rho near 1 says a ranking without retraining is the ranking after recovery on this model; near 0 that it
    cannot be trusted.

    Returns:
        One row per (condition, recovery); empty unless ``none`` and another recovery are present.
    """
    if "recovery" not in scores or "none" not in set(scores["recovery"]) or scores["recovery"].nunique() < 2:
        return pd.DataFrame()
    ranked = _at_ranked_epochs(scores, epoch)
    ranked = ranked[ranked["measure"].map(control_of) == ""]
    conditions = [c for c in condition_columns(ranked) if c != "recovery"]
    wide = ranked.groupby([*conditions, "seed", "measure", "recovery"], dropna=False)["auc"].mean().unstack("recovery")
    rows = []
    for recovery in sorted(set(wide.columns) - {"none"}):
        for key, part in wide[["none", recovery]].dropna().groupby([*conditions, "seed"], dropna=False):
            rows.append((*key, recovery, _spearman(part["none"], part[recovery]), len(part)))
    per_seed = pd.DataFrame(rows, columns=[*conditions, "seed", "recovery", "rho", "n_measures"])
    return per_seed.groupby([*conditions, "recovery"], dropna=False).agg(
        rho=("rho", "mean"), rho_min=("rho", "min"), rho_max=("rho", "max"), n_seeds=("seed", "size"),
        n_measures=("n_measures", "min"),
    ).reset_index()  # fmt: skip


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho of two paired samples; NaN for fewer than three pairs or a constant sample."""
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def plot_order(table: pd.DataFrame, colors: dict | None = None):
    """AUC with the most important weights removed first (y) over AUC least important first (x), one point per measure.

    Args:
        table: ``order_table`` rows of one figure combination (``panel_columns`` less ``order``).
        colors: measure -> colour; controls are drawn hollow in their measure's colour.

    Returns:
        The matplotlib Figure; facets by aggregation. Up and left is better; the diagonal is no gap.
    """
    key = _single_panel(table)
    aggs = sorted(table["aggregation"].unique())
    colors = colors or measure_colors(table["measure"].map(base_measure))
    fig, axes = plt.subplots(1, len(aggs), figsize=(4.2 * len(aggs) + 2.5, 4.2), squeeze=False, layout="constrained")
    for ax, agg in zip(axes[0], aggs, strict=True):
        part = table[table["aggregation"] == agg]
        for _, row in part.iterrows():
            color, control = colors[base_measure(row["measure"])], control_of(row["measure"])
            ax.scatter(row["auc_least"], row["auc_most"], color=color if not control else "none", edgecolors=color,
                       marker=CONTROL_MARKERS.get(control, "o"), s=40)  # fmt: skip
        low, high = np.nanmin(part[["auc_least", "auc_most"]]), np.nanmax(part[["auc_least", "auc_most"]])
        ax.plot([low, high], [low, high], color="0.6", ls=":", lw=1)
        ax.set(title=agg, xlabel="AUC, least important first (lower is better)",
               ylabel="AUC, most important first (higher is better)")  # fmt: skip
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[m], marker="o", ls="", label=m) for m in sorted(colors)]
    handles += [Line2D([], [], color="0.3", marker=CONTROL_MARKERS[c], ls="", mfc="none", label=f"~{c}")
                for c in sorted({control_of(m) for m in table["measure"]} - {""})]  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", title="measure")
    fig.suptitle(f"{_title(key, per_line=3)}\nremoval order: area under validation loss over sparsity, mean over seeds",
                 fontsize="medium")  # fmt: skip
    return fig


def plot_controls(df: pd.DataFrame, epoch: int | None = None, colors: dict | None = None, interval="bootstrap"):
    """Validation loss over sparsity of each measure (solid) beside its matched controls (dashed, dotted).

    Args:
        df: rows of one figure combination (see ``panel_columns``), measures and their controls.
        epoch: the epoch shown; default the last.
        colors: measure -> colour; a measure's controls share its colour.
        interval: band over seeds, "bootstrap" or "t".

    Returns:
        The matplotlib Figure; rows aggregation, columns the measures that have controls.
    """
    key = _single_panel(df)
    epoch = int(df["epoch"].max()) if epoch is None else epoch
    data = curve_stats(df[df["epoch"] == epoch], "val_loss", interval)
    data = data.assign(_base=data["measure"].map(base_measure), _control=data["measure"].map(control_of))
    bases = sorted(set(data.loc[data["_control"] != "", "_base"]))
    aggs = sorted(data["aggregation"].unique())
    colors = colors or measure_colors(bases)
    fig, axes = plt.subplots(len(aggs), len(bases), figsize=(3.2 * len(bases) + 1.5, 2.8 * len(aggs) + 1),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for (i, agg), (j, base) in itertools.product(enumerate(aggs), enumerate(bases)):
        part = data[(data["aggregation"] == agg) & (data["_base"] == base)]
        for control, g in part.sort_values("sparsity").groupby("_control"):
            axes[i, j].plot(g["sparsity"], g["mean"], color=colors[base], ls=CONTROL_STYLES.get(control, "-"), lw=1.5)
        axes[i, j].set_title(f"{base}, {agg}", fontsize="medium")
        axes[i, j].grid(alpha=0.3)
    handles = [Line2D([], [], color="0.3", ls=CONTROL_STYLES.get(c, "-"), label=f"~{c}" if c else "the measure")
               for c in sorted(set(data["_control"]))]  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper")
    fig.supxlabel(SPARSITY_LABEL)
    fig.supylabel(METRIC_LABELS["val_loss"])
    caption = interval_caption(interval, int(data["n"].max()) if len(data) else 0)
    fig.suptitle(f"{_title(key, per_line=3)}, epoch {epoch}\nmeasures and their matched controls; {caption}",
                 fontsize="medium")  # fmt: skip
    return fig


# Report -------------------------------------------------------------------------------------------------------


def report(
    paths_or_df, out_dir, fmt="png", epochs=None, loss_tol=0.10, acc_tol=0.01, num_classes=None, *, epoch="last",
    compare=("measure",), interval="bootstrap", alpha=0.05,
) -> dict:  # fmt: skip
    """Writes every table and figure, and returns them.

    Args:
        paths_or_df: CSV paths, globs or study folders (see ``load``), or an already loaded DataFrame.
        out_dir: folder for the outputs; created when absent.
        fmt: figure format, "png", "svg" or "pdf".
        epochs: epochs shown in the curve figures; default first, middle, last.
        loss_tol: relative loss increase tolerated (0.10 = 10%).
        acc_tol: accuracy drop tolerated, as a fraction (0.01 = 1 percentage point).
        num_classes: class count for the chance lines; default from the runs' JSON metadata.
        epoch: epochs ranked and tested: "last" (default) or a list.
        compare: treatment columns, e.g. "measure,scope".
        interval: "bootstrap" (default) or "t", for every interval and band.
        alpha: significance level of the tests.

    Returns:
        ``analyze``'s tables plus ``files`` (written paths) and ``forgetting`` (``forgetting_table``; empty without
        forgetting runs, which otherwise add ``forgetting.csv`` and per figure combination ``forgetting_*`` and
        ``selectivity_*`` figures at the last epoch).

    Raises:
        ValueError: a bad option, an unwritable ``out_dir`` (both before reading any data), bad input files (see
            ``load``), or nothing to rank (see ``analyze``). Nothing is written then.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}. Received: fmt={fmt!r}")
    _check_tolerances(loss_tol, acc_tol)
    _check_options(compare, epoch, interval, alpha)
    out = check_out_dir(out_dir)
    df = paths_or_df if isinstance(paths_or_df, pd.DataFrame) else load(paths_or_df)
    if epochs is not None:
        select_epochs(df, epochs)
    result = analyze(df, loss_tol, acc_tol, epoch, compare, interval, alpha)
    out.mkdir(parents=True, exist_ok=True)
    colors = measure_colors(df["measure"])
    files = _write_tables(out, result) + _write_figures(out, df, result, fmt, epochs, num_classes, colors)
    forget = forgetting_table(df)
    return result | {"files": files + _write_forgetting(out, df, forget, fmt, colors), "forgetting": forget}


def _write_forgetting(out: Path, df: pd.DataFrame, table: pd.DataFrame, fmt: str, colors: dict) -> list[Path]:
    """``forgetting.csv``, and the A/R accuracy and selectivity figures per figure combination of forgetting rows."""
    if table.empty:
        return []
    table.to_csv(out / "forgetting.csv", index=False)
    files = [out / "forgetting.csv"]
    rows = forgetting_rows(df)
    for key, part in rows.groupby(panel_columns(rows), dropna=False):
        files.append(_save(plot_forgetting(part, colors=colors), out / f"forgetting_{_slug(key)}.{fmt}"))
        files.append(_save(plot_selectivity(part, colors=colors), out / f"selectivity_{_slug(key)}.{fmt}"))
    return files


def check_out_dir(out_dir) -> Path:
    """Checks that ``out_dir`` is a folder that can be written (or created), writing nothing.

    Raises:
        ValueError: it is a file, or its nearest existing folder cannot be written (names the folder).
    """
    out = Path(out_dir)
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ValueError(f"Output folder {out} cannot be created: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"Cannot write to folder {existing} (output folder {out}): {err.strerror}") from None
    return out


def _write_tables(out: Path, result: dict) -> list[Path]:
    """Writes ranking, tests, pvalues, mean_ranks (.csv), ranking.md, and excluded, order, controls, recovery if any."""
    tables = {"ranking": result["ranking"], "tests": result["tests"], "pvalues": _pvalue_rows(result),
              "mean_ranks": result["mean_ranks"].reset_index()}  # fmt: skip
    if not result["excluded"].empty:
        tables["excluded"] = result["excluded"]
    tables |= {name: result[name] for name in PROTOCOL_TABLES if not result.get(name, pd.DataFrame()).empty}
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "ranking.md").write_text(_markdown(result), encoding="utf-8")
    return [out / f"{name}.csv" for name in tables] + [out / "ranking.md"]


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


def _write_figures(out: Path, df, result: dict, fmt: str, epochs, num_classes, colors: dict) -> list[Path]:
    """Writes curves and rank heatmaps per figure combination, a CD diagram per tested condition, mean ranks."""
    interval, table, compare = result["options"]["interval"], result["ranking"], result["options"]["compare"]
    labels = treatment_colors(table, compare, colors)
    files = []
    for key, part in df.groupby(panel_columns(df), dropna=False):
        figures = {"loss": plot_curves(part, "val_loss", epochs, num_classes, colors, interval)}
        if part["val_accuracy"].notna().any():
            figures["accuracy"] = plot_curves(part, "val_accuracy", epochs, num_classes, colors, interval)
        files += [_save(fig, out / f"{kind}_{_slug(key)}.{fmt}") for kind, fig in figures.items()]
    for key, part in table.groupby([c for c in panel_columns(df) if c not in compare], dropna=False):
        files.append(_save(plot_rank_heatmap(part, labels, compare), out / f"rank_heatmap_{_slug(key)}.{fmt}"))
    files += _write_cd(out, result, fmt, labels) + _write_protocol_figures(out, df, result, fmt, colors)
    return files + [_save(plot_mean_ranks(result["mean_ranks"], labels), out / f"mean_ranks.{fmt}")]


def _write_protocol_figures(out: Path, df, result: dict, fmt: str, colors: dict) -> list[Path]:
    """The removal-order scatter per combination (without order), measures with their controls per combination."""
    files, order, base_colors = [], result.get("order", pd.DataFrame()), measure_colors(df["measure"].map(base_measure))
    if not order.empty:
        for key, part in order.groupby(panel_columns(order), dropna=False):
            files.append(_save(plot_order(part, base_colors), out / f"order_{_slug(key)}.{fmt}"))
    if not result.get("controls", pd.DataFrame()).empty:
        interval = result["options"]["interval"]
        for key, part in df.groupby(panel_columns(df), dropna=False):
            if (part["measure"].map(control_of) != "").any():
                fig = plot_controls(part, colors=base_colors, interval=interval)
                files.append(_save(fig, out / f"controls_{_slug(key)}.{fmt}"))
    return files


def _write_cd(out: Path, result: dict, fmt: str, colors: dict) -> list[Path]:
    tests, table, alpha = result["tests"], result["ranking"], result["options"]["alpha"]
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    files = []
    for key, pvalues in result["pvalues"].items():
        rows = table[(table[conditions] == pd.Series(key, index=conditions)).all(axis=1)]
        test = tests[(tests[conditions] == pd.Series(key, index=conditions)).all(axis=1)].iloc[0]
        title = f"{_title(tuple(zip(conditions, key, strict=True)), per_line=4)}\n{_test_line(test)}"
        fig = plot_cd(rows.set_index("treatment")["mean_rank"], pvalues, title, colors, alpha)
        files.append(_save(fig, out / f"cd_{_slug(key)}.{fmt}"))
    return files


def _test_line(test) -> str:
    friedman = f"Friedman p = {test['friedman_p']:.3g}" if np.isfinite(test["friedman_p"]) else "no Friedman test"
    return f"{int(test['n_seeds'])} seeds, {int(test['n_treatments'])} treatments; {friedman}"


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table, without the optional ``tabulate`` dependency."""
    cells = df.map(lambda v: format(v, floatfmt) if isinstance(v, float) else str(v).replace("|", r"\|"))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]) + "\n"


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


def _varying(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if frame[c].nunique(dropna=False) > 1]


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


# Command line -------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Figures, rankings and tests (seeds as blocks) from harness result CSVs or study folders.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", help="result CSVs, globs, or study folders (their trials/*.csv)")
    parser.add_argument("--out", default="figures", help="output folder")
    parser.add_argument("--format", default="png", choices=FORMATS, help="figure format")
    parser.add_argument("--epoch", nargs="+", default=["last"], help="epochs ranked and tested: 'last' or numbers")
    parser.add_argument("--epochs", type=int, nargs="+", help="epochs drawn in the curve figures (first, middle, last)")
    parser.add_argument("--compare", default="measure", help=f"treatment columns, comma-separated, among {COMPARABLE}")
    parser.add_argument("--interval", default="bootstrap", choices=INTERVALS, help="95%% interval over seeds")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument("--loss-tol", type=float, default=0.10, help="relative loss increase tolerated")
    parser.add_argument("--acc-tol", type=float, default=0.01, help="accuracy drop tolerated, fraction")
    parser.add_argument("--classes", type=int, help="class count for the chance line (default: run metadata)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (1 on bad input or nothing to rank)."""
    args = _parser().parse_args(argv)
    matplotlib.use("Agg")
    try:
        result = report(args.paths, args.out, args.format, args.epochs, args.loss_tol, args.acc_tol, args.classes,
                        epoch=args.epoch, compare=args.compare, interval=args.interval, alpha=args.alpha)  # fmt: skip
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
