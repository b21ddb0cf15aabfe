"""Answers that need no TensorFlow or Ray: a finished run, study or localisation reported at once.

A run's id needs the validated config, and validation reads the plugin
registries, which import TensorFlow (seconds). A finished run instead
remembers the request that produced it: its record (the run's metadata JSON,
``study.json``, localize's ``result.json``) holds ``request``, the SHA-256 of

- the settings as given (the TOML file's values, then the command line's,
  less those that change no result: progress bars, ``--resume`` and how a
  study is executed), and
- the project's code (every ``.py`` file of ``tasks/``, ``measures/``,
  ``aggregations/`` and ``harness/``), whose defaults complete those settings.

The same command on the same code finds its record by that key before
anything heavy is imported; it is reported complete when the record says so
and the rows it counted are still in the CSV. Any other case (another
spelling of the same settings, an edited file, a record written before this
key existed) falls through to the ordinary path, which validates, finds the
run complete all the same, and records the key for the next time.
"""

from __future__ import annotations

import csv as _csv
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
CODE = ("tasks", "measures", "aggregations", "harness")
IGNORED = ("config", "list", "progress", "resume", "workers", "address", "gpus_per_trial", "max_retries")
_fingerprint: str | None = None


def code_fingerprint() -> str:
    """SHA-256 over the path and content of every ``.py`` file of the packages in :data:`CODE`."""
    global _fingerprint
    if _fingerprint is None:
        digest = hashlib.sha256()
        for path in sorted(p for package in CODE for p in (ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
        _fingerprint = digest.hexdigest()
    return _fingerprint


def _toml(config_file: str | None) -> dict | None:
    """The TOML file's values; {} without a file; None when it cannot be read (the ordinary path reports it)."""
    if not config_file:
        return {}
    try:
        with open(config_file, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):
        return None


def request_key(kind: str, given: dict, config_file: str | None = None) -> str | None:
    """The key of a request: ``kind`` (run, study, localize), the TOML file's values and ``given`` (options set).

    Returns None when the TOML file cannot be read.
    """
    values = _toml(config_file)
    if values is None:
        return None
    study = values.pop("study", None)
    if isinstance(study, dict):
        study = {k: v for k, v in study.items() if k not in IGNORED}
    settings = {k: v for k, v in {**values, **given}.items() if k not in IGNORED and v is not None}
    text = json.dumps(dict(kind=kind, settings=settings, study=study, code=code_fingerprint()), sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read(path: Path) -> dict | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def find(records: Iterable[Path], key: str | None) -> tuple[Path, dict] | None:
    """The first record (a JSON file) whose ``request`` is ``key``."""
    if key is None:
        return None
    for path in records:
        content = _read(path)
        if content is not None and content.get("request") == key:
            return path, content
    return None


def remember(path: Path, key: str | None) -> None:
    """Write ``request = key`` into the record at ``path`` (atomically) if it holds none; else leave it as it is.

    Only the command that wrote a record marks it, so reporting a complete run
    changes no file; the same result reached by another command (other
    options, a TOML) is found through the ordinary path. Nothing happens when
    the record is unreadable or read-only.

    Best effort: a record that cannot be rewritten (a read-only folder) only
    means the next identical command takes the ordinary path.
    """
    from harness.pipeline import results

    content = _read(Path(path))
    if key is not None and content is not None and content.get("request") is None:  # the first command that wrote it
        try:
            results.write_metadata(Path(path), {**content, "request": key})
        except OSError:
            pass


def run_records(output: str | Path) -> list[Path]:
    """The run metadata files beside a result CSV (``<stem>.<run_id>.json``; a study trial's ``<run_id>.json``)."""
    from harness.pipeline import results

    return results.metadata_files(Path(output))


def complete_run(given: dict, config_file: str | None, default_output: str) -> str | None:
    """The "already complete" report of the run ``given`` describes, or None when it must be checked the long way."""
    from harness.pipeline import results

    key = request_key("run", given, config_file)
    output = given.get("output") or toml_value(config_file, "output") or default_output
    found = find(run_records(output), key)
    if found is None or not (found[1].get("complete") and found[1].get("run_id")):
        return None
    run_id, csv = found[1]["run_id"], Path(output)
    tables = {"results": results.results_table(csv), "per_class": results.per_class_table(csv)}
    counted = found[1]["complete"].get("rows", {})
    try:
        if not all(count_rows(tables[name], run_id) >= n for name, n in counted.items()):
            return None
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        return None
    return complete_text(run_id, csv)


def count_rows(table, run_id: str) -> int:
    """Distinct row keys of ``run_id`` in ``table``'s complete lines (a cut last line is not counted).

    What :meth:`harness.pipeline.results.RunStore.verify_complete` counts, read with :mod:`csv` instead of pandas.
    """
    data = table.path.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].decode("utf-8").splitlines()
    rows = _csv.DictReader(lines)
    return len({tuple(row[k] for k in table.row_key) for row in rows if row.get("run_id") == run_id})


def complete_text(run_id: str, csv: Path | str) -> str:
    """What a complete run prints (the ordinary path prints the same)."""
    return (f"run {run_id} is already complete in {csv}; nothing was recomputed.\n"
            f"next: python analysis.py {csv}")


def toml_value(config_file: str | None, name: str):
    """The TOML file's top-level value ``name``, or None (no file, unreadable, absent)."""
    values = _toml(config_file)
    return values.get(name) if isinstance(values, dict) else None


def study_records(storage: str | Path, name: str | None) -> list[Path]:
    """``study.json`` of the named study, or of every study under ``storage``."""
    storage = Path(storage)
    if name:
        return [storage / name / "study.json"]
    return sorted(storage.glob("*/study.json"))


def complete_study(given: dict, config_file: str | None, default_storage: str) -> tuple[Path, dict] | None:
    """``(folder, study.json content)`` of the finished study ``given`` describes, or None to check the long way."""
    key = request_key("study", given, config_file)
    study = toml_value(config_file, "study")
    study = study if isinstance(study, dict) else {}
    storage = given.get("storage") or study.get("storage") or default_storage
    found = find(study_records(storage, given.get("name") or study.get("name")), key)
    if found is None:
        return None
    folder, record = found[0].parent, found[1]
    trials = record.get("trials")
    if not isinstance(trials, list) or not trials:
        return None
    if all(isinstance(t, dict) and t.get("status") == "complete" and (folder / str(t.get("csv"))).exists()
           for t in trials):
        return folder, record
    return None
