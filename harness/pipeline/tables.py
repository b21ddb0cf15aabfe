"""The CSV tables a run appends to: the main result CSV and its companions, and their safe writes.

A :class:`Table` checks its schema, appends rows in one fsynced write (cutting a
partial last line a dead writer left), reads every complete line as text and
rewrites itself atomically. :func:`reporting_full_disk` turns a full disk into
:class:`DiskFull`, naming the file and the bytes needed. The run that owns the
tables, its lock and its metadata is :class:`harness.pipeline.results.RunStore`.

This module imports no TensorFlow (pandas only when a table is read).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.common.columns import COLUMNS, PER_CLASS_COLUMNS, PER_CLASS_SUFFIX, SWEEP_KEY
from harness.common.files import reporting_full_disk

log = logging.getLogger("harness")


def read_header(path: Path) -> list[str] | None:
    """The header row of a CSV, or None when the file is missing or empty.

    Raises:
        ValueError: the file is not UTF-8 text (a PNG, random bytes) or holds NUL bytes; names the file.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a UTF-8 text CSV ({error}); choose another output path.") from None


def check_schema(path: Path, columns: list[str] = COLUMNS) -> None:
    """Refuse to append to a CSV whose columns differ from ``columns``.

    Raises:
        ValueError: the header differs (the message lists both column sets), or the file is not UTF-8 text.
    """
    header = read_header(path)
    if header is not None and header != list(columns):
        raise ValueError(
            f"{path} has other columns than this harness writes; appending would mix schemas. "
            f"Choose another output path. Found: {header}. Expected: {list(columns)}"
        )


def format_rows(rows: list[dict], header: bool, columns: list[str] = COLUMNS) -> str:
    """Render rows as CSV text in ``columns`` order (missing keys are errors)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="raise", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in columns})
    return buffer.getvalue()


def has_partial_line(path: Path) -> bool:
    """Whether the file's last line lacks its newline (a write cut short)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _cut_partial_line(path: Path) -> bool:
    """Cut a last line left without its newline by a writer that died; return whether one was cut."""
    if not has_partial_line(path):
        return False
    data = path.read_bytes()
    with path.open("r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())
    return True


@dataclass(frozen=True)
class Table:
    """One CSV a run appends to: the main result CSV, or a companion beside it.

    Every table starts with the sweep key columns (:data:`SWEEP_KEY`); a sweep
    is complete in a table when it holds ``rows_per_sweep`` distinct row keys.

    Attributes:
        name: Short name, used in the run's metadata (``"results"`` for the main CSV).
        path: The CSV file.
        columns: The header, in order.
        row_key: Columns that identify one row: the sweep key plus the row's own (``threshold``, ...).
        rows_per_sweep: Distinct row keys of a complete sweep; None where only rows are counted.
    """

    name: str
    path: Path
    columns: tuple[str, ...]
    row_key: tuple[str, ...]
    rows_per_sweep: int | None = None

    def check(self) -> None:
        """Refuse a path that is a folder, not UTF-8 text, or a CSV of another schema (see :func:`check_schema`)."""
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; the output must be a CSV file path.")
        check_schema(self.path, list(self.columns))

    def append(self, rows: list[dict]) -> None:
        """Append rows in one write, then flush and fsync; the caller holds the CSV lock."""
        if not rows:
            return
        self.check()
        if _cut_partial_line(self.path):
            log.warning("%s: cut a partial last line left by a writer that died", self.path)
        text = format_rows(rows, read_header(self.path) is None, list(self.columns))
        with reporting_full_disk(self.path, len(text.encode())), self.path.open("a", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def read(self):
        """Every complete line as text (a partial last line is ignored); an empty frame if there is none."""
        import pandas as pd

        if read_header(self.path) is None:
            return pd.DataFrame(columns=list(self.columns), dtype=str)
        data = self.path.read_bytes()
        try:
            frame = pd.read_csv(io.BytesIO(data[: data.rfind(b"\n") + 1]), dtype=str, keep_default_na=False)
        except (ValueError, csv.Error) as error:  # pandas' ParserError is a ValueError
            raise ValueError(f"{self.path} cannot be read as a CSV ({one_line(error)}); repair or move it.") from None
        bad = ~frame["epoch"].str.fullmatch(r"\d+") if "epoch" in frame else None
        if bad is not None and bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ValueError(f"{self.path} line {line} has epoch {frame['epoch'][bad].iloc[0]!r}, not a whole number; "
                             "repair or move it.")
        return frame

    def rewrite(self, frame) -> None:
        """Replace the file by ``frame``'s rows: a temporary file, fsynced, then renamed."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with reporting_full_disk(tmp, self.path.stat().st_size), tmp.open("w", newline="", encoding="utf-8") as f:
                frame.to_csv(f, index=False, lineterminator="\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)


def results_table(path: Path, rows_per_sweep: int | None = None) -> Table:
    """The main result CSV: :data:`COLUMNS`, one row per (sweep, threshold)."""
    return Table("results", Path(path), tuple(COLUMNS), (*SWEEP_KEY, "threshold"), rows_per_sweep)


def per_class_path(path: Path) -> Path:
    """The per-class companion of a result CSV: ``data/results.csv`` -> ``data/results.per_class.csv``."""
    return Path(path).with_name(f"{Path(path).stem}{PER_CLASS_SUFFIX}")


def per_class_table(path: Path, rows_per_sweep: int | None = None) -> Table:
    """The per-class companion of the result CSV at ``path``: one row per (sweep, threshold, class).

    Columns: :data:`SWEEP_KEY`, then :data:`PER_CLASS_COLUMNS`: the class id, the
    validation loss and accuracy over that class's validation examples, and their number.
    """
    columns = (*SWEEP_KEY, *PER_CLASS_COLUMNS)
    return Table("per_class", per_class_path(path), columns, (*SWEEP_KEY, "threshold", "class"), rows_per_sweep)


def per_class_rows(rows: list[dict]) -> list[dict]:
    """The per-class companion rows of a sweep's main rows (each holding ``per_class``).

    See :func:`harness.thresholding.sweep.sweep`.
    """
    return [{**{k: row[k] for k in (*SWEEP_KEY, "threshold")}, **metrics} for row in rows for metrics in row["per_class"]]


def sweep_key(row) -> tuple:
    """The identity of one sweep: its :data:`SWEEP_KEY` values after ``run_id``, epoch as int, the rest as text."""
    return tuple(int(row[k]) if k == "epoch" else str(row[k]) for k in SWEEP_KEY[1:])


def one_line(error: BaseException) -> str:
    """The first line of an error's message."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
