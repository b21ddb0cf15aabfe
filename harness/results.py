"""The long-format result CSV and the run's metadata JSON beside it."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

COLUMNS = [
    "run_id", "task", "model", "seed", "epoch", "measure", "aggregation", "pooling", "scope",
    "normalization", "replacement", "threshold", "sparsity", "n_replaced", "params_remaining", "flops", "val_loss",
    "val_accuracy", "measure_seconds", "sweep_seconds",
]
SWEEP_KEY = ["run_id", "epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement"]
PACKAGES = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "matplotlib", "tqdm"]


def read_header(path: Path) -> list[str] | None:
    """The header row of a CSV, or None when the file is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        return next(csv.reader(f), None)


def check_schema(path: Path) -> None:
    """Refuse to append to a CSV whose columns differ from :data:`COLUMNS`.

    Raises:
        ValueError: the header differs; the message lists both column sets.
    """
    header = read_header(path)
    if header is not None and header != COLUMNS:
        raise ValueError(
            f"{path} has other columns than this harness writes; appending would mix schemas. "
            f"Choose another output path. Found: {header}. Expected: {COLUMNS}"
        )


def format_rows(rows: list[dict], header: bool) -> str:
    """Render rows as CSV text in :data:`COLUMNS` order (missing keys are errors)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="raise", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in COLUMNS})
    return buffer.getvalue()


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append one sweep's rows in a single write, then flush and fsync.

    Raises:
        ValueError: the existing file has another schema.
    """
    check_schema(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = format_rows(rows, header=read_header(path) is None)
    with path.open("a", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def sidecar(path: Path, run_id: str, suffix: str) -> Path:
    """``data/results.csv`` -> ``data/results.<run_id><suffix>``."""
    return path.with_name(f"{path.stem}.{run_id}{suffix}")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages results depend on, and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The project's git commit, or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_metadata(path: Path, content: dict) -> None:
    """Write ``content`` as JSON atomically: a temporary file, flushed and fsynced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(content, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def drop_truncated_line(path: Path) -> bool:
    """Cut a last line left without its newline (a write cut short); return whether one was cut."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    with path.open("r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())
    return True


def read_keys(path: Path):
    """The CSV's rows with key columns as text (``epoch`` as int); an empty frame if there is none."""
    import pandas as pd

    if read_header(path) is None:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["epoch"] = frame["epoch"].astype(int)
    return frame


def sweep_key(row) -> tuple:
    """The identity of one sweep: (epoch, measure, aggregation, pooling, scope, normalization, replacement)."""
    return tuple(int(row[k]) if k == "epoch" else str(row[k]) for k in SWEEP_KEY[1:])


def completed_sweeps(path: Path, run_id: str, n_thresholds: int) -> set[tuple]:
    """Keys of this run's complete sweeps; rows of its partial sweeps are removed from the file.

    A sweep is complete when it has ``n_thresholds`` rows. The file is
    rewritten (temporary file, then rename) only when partial rows exist;
    its header and other runs' rows are kept as they are.
    """
    frame = read_keys(path)
    mine = frame[frame["run_id"] == run_id]
    counts = mine.groupby(SWEEP_KEY[1:]).size()
    partial = {key for key, n in counts.items() if n != n_thresholds}
    if partial:
        keep = [r.run_id != run_id or sweep_key(r._asdict()) not in partial for r in frame.itertuples(index=False)]
        tmp = path.with_name(path.name + ".tmp")
        frame[keep].to_csv(tmp, index=False)
        os.replace(tmp, path)
    return {key for key, n in counts.items() if n == n_thresholds}
