"""Checks of result rows before anything is computed: value ranges, truncated files, metadata, complete sweeps.

- ``sparsity`` and ``threshold`` must be finite and in [0, 1]: otherwise the file is refused, naming the line.
- A last line without its newline and with fewer fields than the header was cut off mid-row (the harness writes
  whole lines): it is dropped, and a notice says so.
- A row whose task, model or seed differs from its run's metadata JSON is not that run's: the run is dropped,
  and a notice names the row.
- A sweep (run, epoch, key columns) that lacks a threshold its run's other sweeps have is incomplete: it is
  dropped, and a notice names it. Its AUC would be over another range of sparsities.
- A row whose ``val_loss`` is not finite, or whose ``val_accuracy`` is not finite in a run that records accuracy,
  makes its curve (run, epoch, key columns) unrankable: every metric of that curve is NaN, so its seed is excluded
  from every ranking (``excluded``), and a notice names the runs, measures and thresholds before anything is ranked.
  The harness never writes such rows (a sweep with a non-finite loss is a failed measure); other CSVs may hold them.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

RANGED = ("sparsity", "threshold")
AGREES = ("task", "model", "seed")
NAMED = ("run_id", "epoch", "measure", "aggregation", "pooling", "scope")


def read_whole_lines(path: str) -> tuple[io.StringIO | str, list[str]]:
    """The CSV text without a cut-off last line, and the notices (the path itself when nothing is cut).

    Raises:
        UnicodeDecodeError: the file is not UTF-8 text (the caller names the file).
    """
    with open(path, "rb") as file:
        data = file.read()
    if not data or data.endswith(b"\n"):
        return path, []
    whole, _, cut = data.rpartition(b"\n")
    header = data.split(b"\n", 1)[0]
    if not whole or cut.count(b",") >= header.count(b","):
        return path, []
    notice = f"{path}: the last line is cut off ({len(cut)} bytes without a newline: {cut[:40]!r}); dropped"
    return io.StringIO(whole.decode("utf-8") + "\n"), [notice]


def check_ranges(path: str, df: pd.DataFrame) -> None:
    """Refuses a file with a sparsity or threshold that is not finite or outside [0, 1], naming the line."""
    for column in RANGED:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(float)
        bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: column {column!r} must be finite and in [0, 1]; line {row + 2} holds "
                             f"{values[row]:g} ({int(bad.sum())} such rows)")  # fmt: skip


def disagreeing_runs(path: str, df: pd.DataFrame, meta: dict) -> tuple[pd.DataFrame, list[str]]:
    """Drops the runs with a row whose task, model or seed differs from the run's metadata; one notice each."""
    notices, refused = [], set()
    for run, m in meta.items():
        config = m.get("config") or {}
        rows = df[df["run_id"] == run]
        for column in (c for c in AGREES if config.get(c) is not None):
            wrong = rows[rows[column].astype(str) != str(config[column])]
            if len(wrong):
                line = int(wrong.index[0]) + 2
                notices.append(f"{path}: run {run} refused: line {line} has {column}={wrong[column].iloc[0]} but "
                               f"the run's metadata says {column}={config[column]} ({len(wrong)} such rows)")
                refused.add(run)
                break
    return df[~df["run_id"].isin(refused)], notices


def incomplete_sweeps(df: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Drops the sweeps that lack a threshold of their run's other sweeps; one notice per sweep (first 10 named)."""
    sweep = ["run_id", "epoch", *keys]
    expected = df.groupby("run_id")["threshold"].nunique()
    counts = df.groupby(sweep, dropna=False)["threshold"].transform("nunique")
    short = counts < df["run_id"].map(expected)
    if not short.any():
        return df, []
    dropped = df[short].drop_duplicates(sweep)
    names = [", ".join(f"{c}={r[c]}" for c in ("run_id", "epoch", "measure", "aggregation") if c in r)
             for _, r in dropped.head(10).iterrows()]  # fmt: skip
    more = f" and {len(dropped) - 10} more" if len(dropped) > 10 else ""
    return df[~short], [f"{len(dropped)} incomplete sweeps (missing thresholds) excluded: {'; '.join(names)}{more}"]


def nonfinite_rows(df: pd.DataFrame) -> pd.Series:
    """True for a row whose ``val_loss`` is not finite, or whose ``val_accuracy`` is not finite in a run with accuracy.

    A run whose ``val_accuracy`` is empty throughout records no accuracy (not an error).
    """
    loss = pd.to_numeric(df["val_loss"], errors="coerce").to_numpy(float)
    accuracy = pd.to_numeric(df["val_accuracy"], errors="coerce").astype(float)
    has_accuracy = df["run_id"].map(accuracy.notna().groupby(df["run_id"].to_numpy()).any()).to_numpy(bool)
    return pd.Series(~np.isfinite(loss) | (has_accuracy & ~np.isfinite(accuracy.to_numpy())), index=df.index)


def nonfinite_notices(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """One notice naming the curves with non-finite losses (first 10: run, epoch, measure, ..., thresholds), or []."""
    bad = df[nonfinite_rows(df).to_numpy()]
    if bad.empty:
        return []
    curves = list(bad.groupby(["run_id", "epoch", *keys], dropna=False, sort=False))
    names = [_curve_name(rows) for _, rows in curves[:10]]
    more = f"; and {len(curves) - 10} more curves" if len(curves) > 10 else ""
    return [f"{len(bad)} rows with a non-finite val_loss or val_accuracy: {len(curves)} curves not ranked by any "
            f"metric (excluded): {'; '.join(names)}{more}"]  # fmt: skip


def _curve_name(rows: pd.DataFrame) -> str:
    """``run_id=r1, epoch=2, measure=obd, ...: thresholds [0.5, 0.75] (val_loss inf, nan)``."""
    first = rows.iloc[0]
    where = ", ".join(f"{c}={first[c]}" for c in NAMED if c in rows.columns)
    thresholds = ", ".join(f"{t:g}" for t in sorted(pd.to_numeric(rows["threshold"]).unique()))
    values = {c: pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in ("val_loss", "val_accuracy")}
    held = "; ".join(f"{c} {', '.join(f'{x:g}' for x in np.unique(v[~np.isfinite(v)]))}"
                     for c, v in values.items() if not np.isfinite(v).all())  # fmt: skip
    return f"{where}: thresholds [{thresholds}] ({held})"
