"""Checks of result rows before anything is computed: value ranges, truncated files, metadata, complete sweeps.

- ``sparsity`` and ``threshold`` must be finite and in [0, 1]: otherwise the file is refused, naming the line.
- A last line without its newline and with fewer fields than the header was cut off mid-row (the harness writes
  whole lines): it is dropped, and a notice says so.
- A row that its run's metadata JSON does not describe (another task, model or seed; a measure, aggregation,
  pooling, scope, normalization, replacement, order, recovery, threshold or epoch the run did not sweep) is not
  that run's: the run is dropped, and a notice names the row.
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

from harness.common.columns import CONTROL_SEPARATOR

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
    """Drops the runs with a row that disagrees with the run's metadata (``disagreement``); one notice each."""
    notices, refused = [], set()
    for run, m in meta.items():
        found = disagreement(df[df["run_id"] == run], m.get("config") or {})
        if found:
            column, value, expected, line, count = found
            notices.append(f"{path}: run {run} refused: line {line} has {column}={value} but the run's metadata says "
                           f"{column}={expected} ({count} such rows)")  # fmt: skip
            refused.add(run)
    return df[~df["run_id"].isin(refused)], notices


def disagreement(rows: pd.DataFrame, config: dict) -> tuple | None:
    """The first column where a run's rows leave its config: ``(column, value, expected, line, count)`` or None.

    ``task``, ``model`` and ``seed`` must equal the config's; ``measure`` (before any ``~control``),
    ``aggregation``, ``pooling`` (or ``none``), ``scope``, ``normalization``, ``replacement``, ``order`` and
    ``recovery`` must be among the config's lists, ``threshold`` among its thresholds, ``epoch`` at most its epochs.
    Keys absent from the config (older runs) are not checked.
    """
    checks = [(c, rows[c].astype(str), [str(config[c])]) for c in AGREES if config.get(c) is not None]
    checks += [(c, _listed(rows, c), [*map(str, config[k]), *extra]) for c, (k, extra) in MEMBERS.items()
               if c in rows and isinstance(config.get(k), list)]  # fmt: skip
    for column, values, allowed in checks:
        wrong = ~values.isin(allowed)
        if wrong.any():
            return column, rows[column][wrong].iloc[0], _shown(allowed), int(rows.index[wrong][0]) + 2, int(wrong.sum())
    return _numeric_disagreement(rows, config)


MEMBERS = {"measure": ("measures", []), "aggregation": ("aggregations", []), "pooling": ("poolings", ["none"]),
           "scope": ("scopes", []), "normalization": ("normalizations", []), "replacement": ("replacements", []),
           "order": ("orders", []), "recovery": ("recoveries", [])}  # fmt: skip


def _listed(rows: pd.DataFrame, column: str) -> pd.Series:
    values = rows[column].astype(str)
    return values.str.split(CONTROL_SEPARATOR, n=1).str[0] if column == "measure" else values


def _shown(allowed: list[str]) -> str:
    return allowed[0] if len(allowed) == 1 else f"one of {allowed}"


def _numeric_disagreement(rows: pd.DataFrame, config: dict) -> tuple | None:
    """A threshold outside the config's thresholds, or an epoch beyond its epochs."""
    threshold = pd.to_numeric(rows["threshold"], errors="coerce").to_numpy(float)
    checks = []
    if isinstance(config.get("thresholds"), list) and config["thresholds"]:
        listed = np.asarray(config["thresholds"], float)
        checks.append(("threshold", ~np.isclose(threshold[:, None], listed[None, :], atol=1e-12).any(axis=1),
                       f"one of {config['thresholds']}"))  # fmt: skip
    if isinstance(config.get("epochs"), int) and not isinstance(config["epochs"], bool):
        epoch = pd.to_numeric(rows["epoch"], errors="coerce").to_numpy(float)
        checks.append(("epoch", ~(epoch <= max(config["epochs"], 0)), f"at most {config['epochs']}"))
    for column, wrong, expected in checks:
        if wrong.any():
            first = int(np.flatnonzero(wrong)[0])
            return column, rows[column].iloc[first], expected, int(rows.index[first]) + 2, int(wrong.sum())
    return None


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
