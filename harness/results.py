"""A run's files beside its result CSV, and the one object that owns them: :class:`RunStore`.

For ``--output data/results.csv`` and run ``<run_id>``:

- ``data/results.csv``: long format, one row per evaluation; many runs may append to it;
- ``data/results.<run_id>.json``: parameters, data facts, versions; ``complete`` once every sweep is written;
- ``data/results.<run_id>.log``: progress, notices and tracebacks;
- ``data/results.<run_id>.ckpt/``: per-epoch checkpoints (``harness/checkpoint.py``);
- ``data/results.per_class.csv``: with ``per_class``, per (sweep, threshold, class) validation loss and accuracy;
- ``data/.locks/``: the locks, out of sight: ``results.<run_id>.lock``, held for the life of the run (it
  names the holding process while held), and ``results.csv.lock``, held for each append to (or repair of)
  the CSV and its companion tables. A lock file stays after its release: removing it could let a second
  process lock a file the first one still holds open.

A study's trial writes ``trials/<run_id>.csv``; its files are ``trials/<run_id>.json``, ``.log``, ...

This module imports no TensorFlow (checkpoints are read and written through
``harness.checkpoint``, imported when first needed), so a study can ask
``RunStore(csv, run_id).is_complete()`` cheaply.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import filelock
import numpy as np

from harness.columns import COLUMNS, PER_CLASS_COLUMNS, PER_CLASS_SUFFIX, SWEEP_KEY

PACKAGES = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "matplotlib", "tqdm"]
CSV_LOCK_SECONDS = 300.0
log = logging.getLogger("harness")


class RunLocked(RuntimeError):
    """Another process holds the run's lock: the same run is already being written."""


class DiskFull(OSError):
    """The disk holding a run's files is full; the message names the file and the bytes needed."""


def disk_full(path: Path, needed: int) -> DiskFull:
    """A :class:`DiskFull` naming ``path``, the bytes the write needed and the bytes free."""
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free} free"
    except OSError:
        free = "free space unknown"
    return DiskFull(f"No space left on device writing {path}: {needed} bytes needed, {free}. "
                    "Free some space (or choose another output path), then continue with --resume.")


@contextlib.contextmanager
def reporting_full_disk(path: Path, needed: int):
    """Turn ENOSPC/EDQUOT while writing ``path`` into :class:`DiskFull` (other errors pass through)."""
    try:
        yield
    except OSError as error:
        if isinstance(error, DiskFull) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise disk_full(path, needed) from None


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


def _has_partial_line(path: Path) -> bool:
    """Whether the file's last line lacks its newline (a write cut short)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _cut_partial_line(path: Path) -> bool:
    """Cut a last line left without its newline by a writer that died; return whether one was cut."""
    if not _has_partial_line(path):
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
    """The per-class companion rows of a sweep's main rows (each holding ``per_class``, see ``harness.sweep.sweep``)."""
    return [{**{k: row[k] for k in (*SWEEP_KEY, "threshold")}, **metrics} for row in rows for metrics in row["per_class"]]


def sweep_key(row) -> tuple:
    """The identity of one sweep: its :data:`SWEEP_KEY` values after ``run_id``, epoch as int, the rest as text."""
    return tuple(int(row[k]) if k == "epoch" else str(row[k]) for k in SWEEP_KEY[1:])


@dataclass
class Scan:
    """What the tables hold of one run.

    Attributes:
        done: Sweep keys (see :func:`sweep_key`) complete in every table.
        incomplete: Sweep keys with rows in some table that are not complete in every table.
        rows: Per table name, the run's distinct rows.
        duplicates: Per table name, the run's rows that repeat a row key (a sweep written twice).
        partial_lines: Tables whose last line lacks its newline (a write cut short).
    """

    done: set[tuple] = field(default_factory=set)
    incomplete: set[tuple] = field(default_factory=set)
    rows: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    partial_lines: list[Path] = field(default_factory=list)

    @property
    def needs_repair(self) -> bool:
        """Whether :meth:`RunStore.repair` would change a file."""
        return bool(self.incomplete or any(self.duplicates.values()) or self.partial_lines)


class RunStore:
    """Everything one run keeps on disk: its rows, sidecars, lock and checkpoints.

    Answers which sweeps are done (:meth:`scan`), appends a sweep's rows to
    every table under the CSV lock (:meth:`append`), repairs what a crash or
    a second writer left (:meth:`repair`), saves and restores the newest
    intact checkpoint (:meth:`save_checkpoint`, :meth:`restore_checkpoint`)
    and says whether the run is complete (:meth:`is_complete`, cheap: the
    metadata's marker; :meth:`verify_complete`: the marker and the rows).
    Constructing one touches no file.

    Args:
        csv_path: The main result CSV.
        run_id: The run's id.
        tables: The tables a sweep writes, main CSV first; default: the main CSV alone,
            with unknown ``rows_per_sweep`` (enough for locks, metadata and :meth:`is_complete`).
        keep_checkpoints: Checkpoints kept (the newest epochs).
    """

    def __init__(self, csv_path, run_id: str, tables: list[Table] | None = None, keep_checkpoints: int = 1):
        self.csv, self.run_id = Path(csv_path), run_id
        self.tables = tables or [results_table(self.csv)]
        self.keep_checkpoints = keep_checkpoints
        self._run_lock: filelock.FileLock | None = None
        self._created: list[Path] = []  # the lock file and folders acquire() created, removed if the run is refused

    def sidecar(self, suffix: str) -> Path:
        """A file beside the CSV named after this run (``.json``, ``.log``, ``.ckpt``)."""
        return sidecar(self.csv, self.run_id, suffix)

    @property
    def metadata_path(self) -> Path:
        """``<stem>.<run_id>.json``."""
        return self.sidecar(".json")

    @property
    def log_path(self) -> Path:
        """``<stem>.<run_id>.log``."""
        return self.sidecar(".log")

    @property
    def lock_path(self) -> Path:
        """``.locks/<stem>.<run_id>.lock`` beside the CSV."""
        return lock_path(self.sidecar(""))

    @property
    def checkpoint_folder(self) -> Path:
        """``<stem>.<run_id>.ckpt/``."""
        return self.sidecar(".ckpt")

    def check_output(self) -> None:
        """Check every table can be appended to, before anything is loaded or written.

        Raises:
            ValueError: a table path is a folder, not UTF-8 text throughout, or a CSV of another schema.
        """
        for table in self.tables:
            table.check()
            if table.path.is_file():
                _check_text(table.path)

    # The run lock -------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the run's lock for the life of the run and write this process's id into it.

        Raises:
            RunLocked: another process holds it; the message names the run and the holder's PID.
            ValueError: the lock cannot be created beside the CSV (read-only folder, a file in the path).
        """
        path = self.lock_path
        created = [p for p in (path, *path.parents) if not p.exists()]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            holder = _read_text(path)  # before trying: a losing contender may empty it with older filelock versions
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))  # an unwritable folder is reported as such
            lock = filelock.FileLock(str(path), timeout=0, thread_local=False)
            lock.acquire()
        except filelock.Timeout:
            _remove_created(created)
            who = holder.strip() or "another process (its PID was not recorded)"
            raise RunLocked(f"run {self.run_id} is already being written to {self.csv} by {who}; "
                            f"this process stops. Lock: {path}") from None
        except OSError as error:
            _remove_created(created)
            raise ValueError(f"Cannot write beside {self.csv}: {error.strerror or error} ({path}). "
                             "Choose another output path.") from None
        self._run_lock, self._created = lock, created
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        path.write_text(f"PID {os.getpid()} on {socket.gethostname()} since {started}\n")

    def release(self, refused: bool = False) -> None:
        """Empty and release the run's lock (idempotent); the OS releases it too if the process dies.

        Args:
            refused: The run was refused before writing anything: the lock file and the folders
                :meth:`acquire` created are removed too, so a refusal leaves nothing behind.
        """
        if self._run_lock is not None:
            with contextlib.suppress(OSError):
                self.lock_path.write_text("")
            self._run_lock.release()
            self._run_lock = None
            if refused:
                _remove_created(self._created)

    def _csv_lock(self) -> filelock.FileLock:
        return _csv_lock(self.csv)

    # Rows ---------------------------------------------------------------------------------------

    def scan(self) -> Scan:
        """What the tables hold of this run; reads only.

        Raises:
            ValueError: a table's ``rows_per_sweep`` is unknown.
        """
        scan, complete, present = Scan(), [], set()
        for table in self.tables:
            if table.rows_per_sweep is None:
                raise ValueError(f"Table {table.name!r} has no rows_per_sweep; cannot tell complete sweeps.")
            mine = _rows_of(table.read(), self.run_id)
            duplicated = mine.duplicated(list(table.row_key))
            counts = mine[~duplicated].groupby(SWEEP_KEY[1:]).size()
            sweeps = {sweep_key(dict(zip(SWEEP_KEY[1:], key))): n for key, n in counts.items()}
            complete.append({k for k, n in sweeps.items() if n == table.rows_per_sweep})
            present |= set(sweeps)
            scan.rows[table.name], scan.duplicates[table.name] = int((~duplicated).sum()), int(duplicated.sum())
            if _has_partial_line(table.path):
                scan.partial_lines.append(table.path)
        scan.done = set.intersection(*complete)
        scan.incomplete = present - scan.done
        return scan

    def repair(self) -> Scan:
        """Keep one copy of each of this run's rows and drop only sweeps that are really incomplete.

        A sweep whose rows are all present, even twice, is complete and kept
        (one copy of each row key, the first). Rows of a sweep not complete
        in every table, and a partial last line, are removed. Other runs'
        rows and the header are kept as they are. Each changed table is
        rewritten (temporary file, then rename) under the CSV lock.

        Returns:
            The scan before the repair (what was removed); its ``done`` is what the tables now hold.
        """
        with self._csv_lock():
            scan = self.scan()
            if scan.needs_repair:
                for table in self.tables:
                    frame = table.read()
                    table.rewrite(frame[self._kept(frame, table, scan.done)])
        return scan

    def _kept(self, frame, table: Table, done: set[tuple]):
        """Rows to keep: other runs' rows, and the first copy of each row of this run's complete sweeps."""
        columns = [frame[k].astype(int) if k == "epoch" else frame[k] for k in SWEEP_KEY[1:]]
        complete = np.array([key in done for key in zip(*columns)], dtype=bool)
        first = ~frame.duplicated(list(table.row_key)).to_numpy()
        return (frame["run_id"] != self.run_id).to_numpy() | (complete & first)

    def append(self, rows: list[dict] | dict[str, list[dict]]) -> int:
        """Append one sweep's rows to every table, together, under the CSV lock.

        Args:
            rows: The main CSV's rows, or ``{table name: rows}`` for several tables.

        Returns:
            The number of rows written to the main CSV.

        Raises:
            ValueError: a table has another schema. TimeoutError: the CSV stayed locked
                for :data:`CSV_LOCK_SECONDS`.
        """
        rows = {self.tables[0].name: rows} if isinstance(rows, list) else rows
        unknown = set(rows) - {t.name for t in self.tables}
        if unknown:
            raise ValueError(f"Unknown table(s) {sorted(unknown)}; this run writes {[t.name for t in self.tables]}")
        try:
            with self._csv_lock():
                for table in reversed(self.tables):  # companions first: a sweep counts once the main rows exist
                    table.append(rows.get(table.name, []))
        except filelock.Timeout:
            raise TimeoutError(f"{self.csv} stayed locked by another process for {CSV_LOCK_SECONDS:.0f} s") from None
        return len(rows.get(self.tables[0].name, []))

    # Metadata and completion --------------------------------------------------------------------

    def write_metadata(self, content: dict) -> None:
        """Write the run's metadata JSON atomically."""
        write_metadata(self.metadata_path, content)

    def read_metadata(self) -> dict | None:
        """The run's metadata, or None when missing or unreadable (a damaged file is reported in the log)."""
        return _read_json(self.metadata_path)

    def update_metadata(self, **fields) -> None:
        """Add or replace top-level fields of the metadata JSON (atomically); None removes a field."""
        content = {**(self.read_metadata() or {}), **fields}
        self.write_metadata({k: v for k, v in content.items() if v is not None})

    def is_complete(self) -> bool:
        """Cheap: whether the metadata says every sweep of the run was written (no CSV is read)."""
        return bool((self.read_metadata() or {}).get("complete"))

    def verify_complete(self, scan: Scan | None = None) -> bool:
        """Whether the metadata says complete and every table still holds the rows it recorded."""
        marker = (self.read_metadata() or {}).get("complete")
        rows = marker.get("rows") if isinstance(marker, dict) else None
        if not isinstance(rows, dict) or not all(isinstance(n, int) for n in rows.values()):
            return False
        scan = scan or self._count_rows()
        return all(scan.rows.get(name, 0) >= n for name, n in rows.items())

    def mark_complete(self, scan: Scan, **info) -> None:
        """Record in the metadata that every sweep is written: rows per table, time, and ``info``."""
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.update_metadata(complete=dict(rows=dict(scan.rows), finished=finished), **info)

    def _count_rows(self) -> Scan:
        scan = Scan()
        for table in self.tables:
            mine = _rows_of(table.read(), self.run_id)
            scan.rows[table.name] = int((~mine.duplicated(list(table.row_key))).sum())
        return scan

    def other_run_metadata(self) -> dict | None:
        """The metadata of the newest other run beside this CSV, or None."""
        own = self.metadata_path
        others = [p for p in metadata_files(self.csv) if p != own]
        for path in sorted(others, key=lambda p: p.stat().st_mtime, reverse=True):
            content = _read_json(path)
            if content is not None:
                return content
        return None

    # Checkpoints --------------------------------------------------------------------------------

    def save_checkpoint(self, state, epoch: int, info: dict) -> None:
        """Write the checkpoint of ``epoch`` with ``info`` (JSON) and keep the newest ``keep_checkpoints``."""
        from harness import checkpoint

        checkpoint.save(self.checkpoint_folder, state, epoch, info, self.keep_checkpoints)

    def restore_checkpoint(self, state, at_most: int, say: Callable[[str], None]) -> tuple[int, dict] | None:
        """Restore the newest intact checkpoint of an epoch <= ``at_most``; damaged ones are reported and removed.

        Returns:
            ``(epoch, info)``, or None when there is none (the state is then as before the call).
        """
        from harness import checkpoint

        return checkpoint.restore(self.checkpoint_folder, state, at_most, say)

    def clear_checkpoints(self) -> None:
        """Remove every checkpoint of the run (a fresh start)."""
        from harness import checkpoint

        checkpoint.clear(self.checkpoint_folder)


def _remove_created(created: list[Path]) -> None:
    """Remove the lock file and the then-empty folders in ``created`` (a lock file first, then folders, innermost first)."""
    for path in created:
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()


def one_line(error: BaseException) -> str:
    """The first line of an error's message."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_text(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a UTF-8 text CSV ({error}); choose another output path.") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"{path} is not a UTF-8 text CSV (a NUL byte at {nul}); choose another output path.")


def _csv_lock(path: Path) -> filelock.FileLock:
    """The lock held for each append to (or rewrite of) the CSV at ``path``: ``.locks/<name>.lock`` beside it."""
    return filelock.FileLock(str(lock_path(path)), timeout=CSV_LOCK_SECONDS, thread_local=False)


def lock_path(path: Path) -> Path:
    """The lock of ``path``: ``<its folder>/.locks/<its name>.lock``, one hidden folder for the folder's locks."""
    path = Path(path)
    return path.parent / ".locks" / f"{path.name}.lock"


def _rows_of(frame, run_id: str):
    return frame[frame["run_id"] == run_id]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _read_json(path: Path) -> dict | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        _warn_once(f"{path} is unreadable ({error}); ignored", path)
        return None
    if not isinstance(content, dict):
        _warn_once(f"{path} holds a JSON {type(content).__name__}, not an object; ignored", path)
        return None
    return content


_WARNED: set = set()


def _warn_once(message: str, path: Path) -> None:
    """Logs ``message`` once per version of the file (a run reads its metadata several times)."""
    try:
        version = path.stat().st_mtime_ns
    except OSError:
        version = None
    if (message, version) not in _WARNED:
        _WARNED.add((message, version))
        log.warning(message)


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to the main CSV at ``path`` under its CSV lock (see :meth:`RunStore.append`).

    Raises:
        ValueError: the existing file has another schema.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _csv_lock(path):
        results_table(path).append(rows)


def sidecar(path: Path, run_id: str, suffix: str) -> Path:
    """``data/results.csv`` -> ``data/results.<run_id><suffix>``; ``trials/<run_id>.csv`` -> ``trials/<run_id><suffix>``.

    A CSV named after its run (a study's trial) has its files named after the
    run alone, unless it has one already under the long name
    ``<run_id>.<run_id><suffix>`` (trials written before this rule).
    """
    path = Path(path)
    long = path.with_name(f"{path.stem}.{run_id}{suffix}")
    return path.with_name(f"{run_id}{suffix}") if path.stem == run_id and not long.exists() else long


def metadata_files(path: Path) -> list[Path]:
    """Every run metadata JSON beside the result CSV at ``path`` (``<stem>.<run_id>.json``, or ``<run_id>.json``)."""
    path = Path(path)
    own = path.with_suffix(".json")
    return sorted(path.parent.glob(f"{path.stem}.*.json")) + ([own] if own.is_file() else [])


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
    text = json.dumps(content, indent=2, default=str)
    try:
        with reporting_full_disk(tmp, len(text.encode())), tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
