"""Reading result CSVs, study folders and each run's metadata JSON into one DataFrame."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from harness.pipeline.results import sidecar
from reports.forgetting import forgetting_metrics
from reports.keys import COLUMNS, NOT_SETTINGS, NUMERIC, PER_CLASS_SUFFIX, key_columns
from reports.options import expand_paths
from reports.validate import check_ranges, disagreeing_runs, incomplete_sweeps, read_whole_lines


def load(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Reads and concatenates result CSVs: files, globs, or study folders.

    Args:
        paths: one path, glob or folder, or several. A folder stands for its ``trials/*.csv`` (a study) or, without
            ``trials/``, its ``*.csv``. A file named twice (directly or through globs) is read once.

    Returns:
        All rows, with a ``num_classes`` column from each run's metadata JSON (``<csv stem>.<run_id>.json``, or
        ``<run_id>.json`` for a study's trial; NaN when absent or null), and one text column per run setting that
        differs between the runs (``learning_rate``, ...; "-" when
        unknown). Rows whose pooling is ``"none"`` (aggregations where pooling has no effect, such as ``weight``)
        stay ``pooling=none`` (``share_unpooled`` draws them beside ``unit`` and ``filter``).

        ``df.attrs["notices"]`` lists what was dropped (``reports.validate``): a cut-off last line, runs whose
        rows disagree with their metadata, incomplete sweeps.

    Raises:
        FileNotFoundError: a path, glob or folder matches no CSV.
        ValueError: a file is not a UTF-8 CSV, has no rows, lacks required columns, holds non-numeric values or
            a sparsity or threshold that is not finite in [0, 1], or a result key (run, epoch, key columns,
            threshold) appears twice; the message names the file.
    """
    files = expand_paths([paths] if isinstance(paths, str | Path) else list(paths))
    parts, settings, notices = zip(*(_read_one(f) for f in files), strict=True)
    df = pd.concat(parts, ignore_index=True)
    keys = key_columns(df)
    df[keys] = df[keys].fillna("-").astype(str)
    _refuse_duplicate_keys(df)
    df, incomplete = incomplete_sweeps(df, keys)
    df = _attach_settings(df.drop(columns="_file").reset_index(drop=True), {k: v for s in settings for k, v in s.items()})
    df.attrs["notices"] = [n for part in notices for n in part] + incomplete
    return df


def share_unpooled(df: pd.DataFrame) -> pd.DataFrame:
    """For figures: repeats ``pooling == "none"`` rows under every real pooling present, marked ``_unpooled``.

    Aggregations where pooling has no effect (``weight``) then share the curve figures of ``unit`` and ``filter``,
    and their panels read ``pooling=none``. Tables and tests keep the rows once, as ``pooling=none``.
    """
    unpooled = df["pooling"] == "none"
    poolings = sorted(set(df.loc[~unpooled, "pooling"]) - {"-"})
    if not poolings or not unpooled.any():
        return df
    copies = [df[unpooled].assign(pooling=p, _unpooled=True) for p in poolings]
    return pd.concat([df[~unpooled].assign(_unpooled=False), *copies], ignore_index=True)


def _read_one(path: str) -> tuple[pd.DataFrame, dict, list[str]]:
    """Reads one CSV, checks it, and attaches its runs' class counts; returns it, its runs' settings, notices."""
    df, notices = _read_csv(path, whole_lines=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is missing columns {missing}. Received columns: {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path} has no rows")
    _check_numeric(path, df)
    check_ranges(path, df)
    meta = {r: _metadata(path, r) for r in df["run_id"].unique()}
    df, refused = disagreeing_runs(path, df, meta)
    if df.empty:
        raise ValueError(f"{path} has no rows left: {refused[0]}")
    classes = {r: m.get("num_classes") for r, m in meta.items()}
    df = df.assign(num_classes=df["run_id"].map(classes).astype(float), _file=path)
    settings = {r: m.get("config") or {} for r, m in meta.items() if r in set(df["run_id"])}
    return _attach_forgetting(path, df, meta), settings, notices + refused


def _read_csv(path: str, whole_lines: bool = False):
    """The CSV as a DataFrame; with ``whole_lines``, a cut-off last line dropped and ``(df, notices)`` returned."""
    try:
        source, notices = read_whole_lines(path) if whole_lines else (path, [])
        df = pd.read_csv(source, low_memory=False, dtype={"run_id": str})
        return (df, notices) if whole_lines else df
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
    meta = sidecar(Path(csv_path), run_id, ".json")
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
