"""A run's files beside its result CSV, and the one object that owns them: :class:`RunStore`.

For ``--output data/results.csv`` and run ``<run_id>``:

- ``data/results.csv``: long format, one row per evaluation; many runs may append to it;
- ``data/results.<run_id>.json``: parameters, data facts, versions; ``complete`` once every sweep is written;
- ``data/results.<run_id>.log``: progress, notices and tracebacks;
- ``data/results.<run_id>.ckpt/``: per-epoch checkpoints (``harness/pipeline/checkpoint.py``);
- ``data/results.per_class.csv``: with ``per_class``, per (sweep, threshold, class) validation loss and accuracy;
- ``data/.locks/``: the locks, out of sight: ``results.<run_id>.lock``, held for the life of the run (it
  names the holding process while held), and ``results.csv.lock``, held for each append to (or repair of)
  the CSV and its companion tables. A lock file stays after its release: removing it could let a second
  process lock a file the first one still holds open.

A study's trial writes ``trials/<run_id>.csv``; its files are ``trials/<run_id>.json``, ``.log``, ...

:class:`RunStore` is what a run talks to. It knows where the files lie (it is
a :class:`RunFiles`) and delegates the rest to one part per job:
:class:`RunLock` (the run's lock), :class:`SweepLedger` (which sweeps the
tables hold; append and repair under the CSV lock) and :class:`RunMetadata`
(the metadata JSON and its completion marker). The tables themselves are :class:`harness.pipeline.tables.Table`; their names
are importable from here too.

This module imports no TensorFlow (checkpoints are read and written through
``harness.pipeline.checkpoint``, imported when first needed), so a study can ask
``RunStore(csv, run_id).is_complete()`` cheaply.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import filelock
import numpy as np

from harness.common.columns import COLUMNS as COLUMNS
from harness.common.columns import PER_CLASS_COLUMNS as PER_CLASS_COLUMNS
from harness.common.columns import SWEEP_KEY
from harness.common.files import DiskFull as DiskFull
from harness.common.files import disk_full as disk_full
from harness.common.files import write_metadata
from harness.pipeline.tables import Table, has_partial_line, results_table, sweep_key
from harness.pipeline.tables import check_schema as check_schema
from harness.pipeline.tables import format_rows as format_rows
from harness.pipeline.tables import one_line as one_line
from harness.pipeline.tables import per_class_path as per_class_path
from harness.pipeline.tables import per_class_rows as per_class_rows
from harness.pipeline.tables import per_class_table as per_class_table
from harness.pipeline.tables import read_header as read_header

PACKAGES = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "matplotlib", "tqdm"]
CSV_LOCK_SECONDS = 300.0
log = logging.getLogger("harness")


class RunLocked(RuntimeError):
    """Another process holds the run's lock: the same run is already being written."""



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

class RunFiles:
    """Where one run's files lie beside its result CSV (see the module docstring); touches no file.

    Args:
        csv_path: The main result CSV.
        run_id: The run's id.
    """

    def __init__(self, csv_path, run_id: str):
        self.csv, self.run_id = Path(csv_path), run_id

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


class RunLock:
    """The run's lock, held for the life of the run; while held it names the holding process.

    Args:
        files: The run's files; the lock is ``files.lock_path``.
    """

    def __init__(self, files: RunFiles):
        self.files = files
        self.held: filelock.FileLock | None = None
        self.created: list[Path] = []  # the lock file and folders acquire() created, removed if the run is refused

    def acquire(self) -> None:
        """Take the run's lock for the life of the run and write this process's id into it.

        Raises:
            RunLocked: another process holds it; the message names the run and the holder's PID.
            ValueError: the lock cannot be created beside the CSV (read-only folder, a file in the path).
        """
        path, csv, run_id = self.files.lock_path, self.files.csv, self.files.run_id
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
            raise RunLocked(f"run {run_id} is already being written to {csv} by {who}; "
                            f"this process stops. Lock: {path}") from None
        except OSError as error:
            _remove_created(created)
            raise ValueError(f"Cannot write beside {csv}: {error.strerror or error} ({path}). "
                             "Choose another output path.") from None
        self.held, self.created = lock, created
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        path.write_text(f"PID {os.getpid()} on {socket.gethostname()} since {started}\n")

    def release(self, refused: bool = False) -> None:
        """Empty and release the run's lock (idempotent); the OS releases it too if the process dies.

        Args:
            refused: The run was refused before writing anything: the lock file and the folders
                :meth:`acquire` created are removed too, so a refusal leaves nothing behind.
        """
        if self.held is not None:
            with contextlib.suppress(OSError):
                self.files.lock_path.write_text("")
            self.held.release()
            self.held = None
            if refused:
                _remove_created(self.created)


class SweepLedger:
    """Which sweeps of one run the tables hold, and the writes that keep each sweep whole.

    Args:
        files: The run's files (its CSV and run id).
        tables: The tables a sweep writes, main CSV first.
    """

    def __init__(self, files: RunFiles, tables: list[Table]):
        self.files, self.tables = files, tables

    def check_output(self) -> None:
        """Check every table can be appended to, before anything is loaded or written.

        Raises:
            ValueError: a table path is a folder, not UTF-8 text throughout, or a CSV of another schema.
        """
        for table in self.tables:
            table.check()
            if table.path.is_file():
                _check_text(table.path)

    def scan(self) -> Scan:
        """What the tables hold of this run; reads only.

        Raises:
            ValueError: a table's ``rows_per_sweep`` is unknown.
        """
        scan, complete, present = Scan(), [], set()
        for table in self.tables:
            sweeps = self._sweeps(table, scan)
            complete.append({k for k, n in sweeps.items() if n == table.rows_per_sweep})
            present |= set(sweeps)
        scan.done = set.intersection(*complete)
        scan.incomplete = present - scan.done
        return scan

    def _sweeps(self, table: Table, scan: Scan) -> dict[tuple, int]:
        """This run's distinct rows in ``table`` per sweep key; notes its rows, duplicates and partial line in ``scan``."""
        if table.rows_per_sweep is None:
            raise ValueError(f"Table {table.name!r} has no rows_per_sweep; cannot tell complete sweeps.")
        mine = _rows_of(table.read(), self.files.run_id)
        duplicated = mine.duplicated(list(table.row_key))
        counts = mine[~duplicated].groupby(SWEEP_KEY[1:]).size()
        scan.rows[table.name], scan.duplicates[table.name] = int((~duplicated).sum()), int(duplicated.sum())
        if has_partial_line(table.path):
            scan.partial_lines.append(table.path)
        return {sweep_key(dict(zip(SWEEP_KEY[1:], key))): n for key, n in counts.items()}

    def count_rows(self) -> Scan:
        """A scan holding only ``rows``: this run's distinct rows per table (any ``rows_per_sweep``)."""
        scan = Scan()
        for table in self.tables:
            mine = _rows_of(table.read(), self.files.run_id)
            scan.rows[table.name] = int((~mine.duplicated(list(table.row_key))).sum())
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
        with _csv_lock(self.files.csv):
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
        return (frame["run_id"] != self.files.run_id).to_numpy() | (complete & first)

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
            with _csv_lock(self.files.csv):
                for table in reversed(self.tables):  # companions first: a sweep counts once the main rows exist
                    table.append(rows.get(table.name, []))
        except filelock.Timeout:
            raise TimeoutError(f"{self.files.csv} stayed locked by another process for {CSV_LOCK_SECONDS:.0f} s") from None
        return len(rows.get(self.tables[0].name, []))


class RunMetadata:
    """The run's metadata JSON: parameters, data facts, versions, and the marker that the run is complete.

    Args:
        files: The run's files; the JSON is ``files.metadata_path``.
    """

    def __init__(self, files: RunFiles):
        self.files = files

    def write(self, content: dict) -> None:
        """Write the run's metadata JSON atomically."""
        write_metadata(self.files.metadata_path, content)

    def read(self) -> dict | None:
        """The run's metadata, or None when missing or unreadable (a damaged file is reported in the log)."""
        return _read_json(self.files.metadata_path)

    def update(self, **fields) -> None:
        """Add or replace top-level fields of the metadata JSON (atomically); None removes a field."""
        content = {**(self.read() or {}), **fields}
        self.write({k: v for k, v in content.items() if v is not None})

    def is_complete(self) -> bool:
        """Cheap: whether the metadata says every sweep of the run was written (no CSV is read)."""
        return bool((self.read() or {}).get("complete"))

    def recorded_rows(self) -> dict[str, int] | None:
        """Rows per table the completion marker recorded, or None when there is no valid marker."""
        marker = (self.read() or {}).get("complete")
        rows = marker.get("rows") if isinstance(marker, dict) else None
        if not isinstance(rows, dict) or not all(isinstance(n, int) for n in rows.values()):
            return None
        return rows

    def mark_complete(self, scan: Scan, **info) -> None:
        """Record in the metadata that every sweep is written: rows per table, time, and ``info``."""
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.update(complete=dict(rows=dict(scan.rows), finished=finished), **info)

    def other_run(self) -> dict | None:
        """The metadata of the newest other run beside this CSV, or None."""
        own = self.files.metadata_path
        others = [p for p in metadata_files(self.files.csv) if p != own]
        for path in sorted(others, key=lambda p: p.stat().st_mtime, reverse=True):
            content = _read_json(path)
            if content is not None:
                return content
        return None


class RunStore(RunFiles):
    """Everything one run keeps on disk: its rows, sidecars, lock and checkpoints.

    Answers which sweeps are done (:meth:`scan`), appends a sweep's rows to
    every table under the CSV lock (:meth:`append`), repairs what a crash or
    a second writer left (:meth:`repair`), saves and restores the newest
    intact checkpoint (:meth:`save_checkpoint`, :meth:`restore_checkpoint`)
    and says whether the run is complete (:meth:`is_complete`, cheap: the
    metadata's marker; :meth:`verify_complete`: the marker and the rows).
    Constructing one touches no file. Its paths are those of :class:`RunFiles`;
    the work is done by its parts: ``lock`` (:class:`RunLock`), ``ledger``
    (:class:`SweepLedger`) and ``metadata`` (:class:`RunMetadata`).

    Args:
        csv_path: The main result CSV.
        run_id: The run's id.
        tables: The tables a sweep writes, main CSV first; default: the main CSV alone,
            with unknown ``rows_per_sweep`` (enough for locks, metadata and :meth:`is_complete`).
        keep_checkpoints: Checkpoints kept (the newest epochs).
    """

    def __init__(self, csv_path, run_id: str, tables: list[Table] | None = None, keep_checkpoints: int = 1):
        super().__init__(csv_path, run_id)
        self.tables = tables or [results_table(self.csv)]
        self.keep_checkpoints = keep_checkpoints
        self.lock = RunLock(self)
        self.ledger = SweepLedger(self, self.tables)
        self.metadata = RunMetadata(self)

    def check_output(self) -> None:
        """See :meth:`SweepLedger.check_output`."""
        self.ledger.check_output()

    def acquire(self) -> None:
        """See :meth:`RunLock.acquire`."""
        self.lock.acquire()

    def release(self, refused: bool = False) -> None:
        """See :meth:`RunLock.release`."""
        self.lock.release(refused)

    def scan(self) -> Scan:
        """See :meth:`SweepLedger.scan`."""
        return self.ledger.scan()

    def repair(self) -> Scan:
        """See :meth:`SweepLedger.repair`."""
        return self.ledger.repair()

    def append(self, rows: list[dict] | dict[str, list[dict]]) -> int:
        """See :meth:`SweepLedger.append`."""
        return self.ledger.append(rows)

    def write_metadata(self, content: dict) -> None:
        """See :meth:`RunMetadata.write`."""
        self.metadata.write(content)

    def read_metadata(self) -> dict | None:
        """See :meth:`RunMetadata.read`."""
        return self.metadata.read()

    def update_metadata(self, **fields) -> None:
        """See :meth:`RunMetadata.update`."""
        self.metadata.update(**fields)

    def is_complete(self) -> bool:
        """See :meth:`RunMetadata.is_complete`."""
        return self.metadata.is_complete()

    def verify_complete(self, scan: Scan | None = None) -> bool:
        """Whether the metadata says complete and every table still holds the rows it recorded."""
        rows = self.metadata.recorded_rows()
        if rows is None:
            return False
        scan = scan or self.ledger.count_rows()
        return all(scan.rows.get(name, 0) >= n for name, n in rows.items())

    def mark_complete(self, scan: Scan, **info) -> None:
        """See :meth:`RunMetadata.mark_complete`."""
        self.metadata.mark_complete(scan, **info)

    def other_run_metadata(self) -> dict | None:
        """See :meth:`RunMetadata.other_run`."""
        return self.metadata.other_run()

    def save_checkpoint(self, state, epoch: int, info: dict) -> None:
        """Write the checkpoint of ``epoch`` with ``info`` (JSON) and keep the newest ``keep_checkpoints``."""
        from harness.pipeline import checkpoint

        checkpoint.save(self.checkpoint_folder, state, epoch, info, self.keep_checkpoints)

    def restore_checkpoint(self, state, at_most: int, say: Callable[[str], None]) -> tuple[int, dict] | None:
        """Restore the newest intact checkpoint of an epoch <= ``at_most``; damaged ones are reported and removed.

        Returns:
            ``(epoch, info)``, or None when there is none (the state is then as before the call).
        """
        from harness.pipeline import checkpoint

        return checkpoint.restore(self.checkpoint_folder, state, at_most, say)

    def clear_checkpoints(self) -> None:
        """Remove every checkpoint of the run (a fresh start)."""
        from harness.pipeline import checkpoint

        checkpoint.clear(self.checkpoint_folder)


def _remove_created(created: list[Path]) -> None:
    """Remove the lock file and the then-empty folders in ``created`` (a lock file first, then folders, innermost first)."""
    for path in created:
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()



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
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
