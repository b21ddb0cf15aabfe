"""Studies: a grid of runs, executed in parallel on Ray, resumable, kept in one folder.

``python -m harness.study --config study.toml`` (or ``python -m harness --seeds 0-9 --workers 2 ...``).
The TOML holds the ordinary run settings at top level, grid axes under
``[grid]`` (any ``RunConfig`` field given a list of values) and how the study
runs under ``[study]`` (``name``, ``storage``, ``workers``, ``address``,
``gpus_per_trial``, ``max_retries``, ``dashboard``); options on the command line win. The
study is the Cartesian product of the axes; each point is a trial, an
ordinary run with its own ``run_id``. The study folder,
``<storage>/<name or study_id>/`` (storage defaults to ``data/studies``), holds:

- ``study.json`` (written by the driver only): study_id, grid, settings,
  package versions, and the trials, each with its ``run_id``, grid point
  (``params``), full ``config``, ``csv`` path (relative to the folder) and
  ``status`` (pending, complete or failed);
- ``trials/<run_id>.csv`` per trial, with that run's JSON, log and checkpoint
  beside it, exactly what ``python -m harness --output trials/<run_id>.csv``
  writes. No file is written by two processes.

Re-running the same command resumes: complete trials are skipped without
starting Ray, trials with files resume from their checkpoint, the rest start.
A folder holding another study (other grid or settings) is refused, naming
the differences.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout

from harness.cli.inputs import check_args, check_grid_table
from harness.cli.options import parser
from harness.common.run_id import differences, digest
from harness.common.validation import read_toml
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.study.spec import (
    AXES,
    DEFAULT_STORAGE,
    ENGINE_KEYS,
    FIELDS,
    STUDY_KEYS,
    Engine,
    check_address,
    check_name,
    parse_seeds,
    read_record,
)

STUDY_HELP = """Command line: python -m harness.study [options] runs a study: a grid of runs on Ray, one folder.

The options are those of python -m harness; the grid comes from --seeds (one
trial per seed) or from the [grid] table of a --config TOML, how it runs from
the study options or its [study] table. Re-running the same command resumes;
a finished study is reported at once. See harness/study/driver.py and the README,
section "Studies"."""


class StudyLocked(results.RunLocked):
    """Another process is running this study (its driver holds ``study.lock``)."""


def check_grid(grid: dict, settings: dict) -> dict:
    """Each axis a ``RunConfig`` field (not a setting too) with a non-empty list of distinct values.

    Raises:
        ValueError: the message quotes the axis and its values, or lists the valid axes.
    """
    for axis, values in grid.items():
        if axis not in AXES:
            raise ValueError(f"Unknown grid axis {axis!r}; available: {AXES}")
        if axis in settings:
            raise ValueError(f"{axis!r} is both a setting and a grid axis; give it once. "
                             f"Received: {axis}={settings[axis]!r} and grid {axis}={values!r}")
        if isinstance(values, (str, dict)) or not isinstance(values, (list, tuple, range)) or not len(values):
            raise ValueError(f"grid axis {axis!r} must be a non-empty list of values. Received: {axis}={values!r}")
        texts = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(texts)) != len(texts):
            raise ValueError(f"grid axis {axis!r} has duplicates. Received: {axis}={list(values)!r}")
    return {axis: list(values) for axis, values in grid.items()}


def point_text(point: dict) -> str:
    """``seed=3, task='mnist'``."""
    return ", ".join(f"{k}={v!r}" for k, v in point.items()) or "(no grid)"


class Study:
    """A grid of trials over shared settings, with its folder and record.

    Args:
        settings: ``RunConfig`` fields shared by every trial (not output, progress or resume).
        grid: Axis (a ``RunConfig`` field) to its list of values; the trials are the Cartesian product.
        name: The folder's name; None names it by the study_id.
        storage: The folder that holds studies; on a cluster, one every node sees at the same path.
        options: Default options of :meth:`run` (``workers``, ``address``, ``gpus_per_trial``, ``max_retries``).

    Raises:
        ValueError: a setting, axis or value is invalid, naming the value, the
            choices and the grid point; or two points give the same run.
    """

    def __init__(self, settings: dict | None = None, grid: dict | None = None, name: str | None = None,
                 storage: str | Path = DEFAULT_STORAGE, options: dict | None = None):
        self.options = dict(options or {})
        Engine(**self.options)
        self.settings = _check_settings(dict(settings or {}))
        self.grid = check_grid(dict(grid or {}), self.settings)
        self.name = check_name(name)
        self.points = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        self.configs = trial_configs(self.settings, self.points)
        self.run_ids = [config.run_id for config in self.configs]
        self.study_id = digest(sorted(self.run_ids))
        self.folder = _check_storage(storage) / (self.name or self.study_id)
        self.place(self.folder)

    def place(self, folder: Path) -> None:
        """Put the study (its ``study.json`` and trials) in ``folder``."""
        self.folder = folder
        for config in self.configs:
            config.output = str(self.folder / "trials" / f"{config.run_id}.csv")

    @classmethod
    def from_toml(cls, path: str | Path, settings: dict | None = None, grid: dict | None = None, **study) -> Study:
        """Read a study TOML; ``settings``, ``grid`` and ``[study]`` keys given here win over the file's.

        See :func:`toml_arguments`.

        Raises:
            ValueError: an unknown key (the message lists the valid ones), or any invalid value.
        """
        return cls(*toml_arguments(path, settings, grid, study))

    @property
    def label(self) -> str:
        """The study's name, or its id."""
        return self.name or self.study_id

    def record(self) -> dict:
        """A fresh ``study.json`` content: every trial pending (see :func:`fresh_record`)."""
        return fresh_record(self)

    def load_record(self) -> dict:
        """``study.json`` of this folder, or a fresh record when there is none.

        Raises:
            ValueError: the folder holds another study; the message names the differences.
        """
        path = self.folder / "study.json"
        if not path.exists():
            return self.record()
        old = read_record(path)
        check_same_study(self, old, path)
        return old

    def is_complete(self, trial: dict) -> bool:
        """A trial is complete when ``study.json`` says so and its CSV is there."""
        return trial["status"] == "complete" and (self.folder / trial["csv"]).exists()

    def run(self, **options) -> dict:
        """Run every trial not complete yet on Ray; return the ``study.json`` content.

        Args:
            **options: ``workers``, ``address``, ``gpus_per_trial``,
                ``max_retries``, ``dashboard``, ``progress`` (see :class:`Engine`);
                they win over the study's ``options``. Nothing of Ray is
                imported or started when every trial is complete.

        Raises:
            ValueError: bad options; or the folder holds another study; or
                another process is running this study.
            KeyboardInterrupt: interrupted; every ended trial is recorded.
        """
        engine = Engine(**(self.options | options))
        with study_lock(self.folder, self.label):
            return self._run(engine)

    def _run(self, engine: Engine) -> dict:
        record = self.load_record()
        todo = [i for i, trial in enumerate(record["trials"]) if not self.is_complete(trial)]
        if not todo:
            return record
        check_address(engine.address)
        self.save(record)
        from harness.study.engine import execute  # Ray is imported only when there is work to do

        fields = [dataclasses.asdict(self.configs[self.run_ids.index(record["trials"][i]["run_id"])]) for i in todo]

        def on_result(index: int, outcome: dict) -> None:
            record["trials"][todo[index]].update(outcome)
            self.save(record)

        execute(fields, engine, on_result, done=len(record["trials"]) - len(todo), total=len(record["trials"]),
                desc=f"study {self.label}")
        return record

    def save(self, record: dict) -> None:
        """Write ``study.json`` atomically (the driver is its only writer)."""
        record["updated"] = _now()
        results.write_metadata(self.folder / "study.json", record)


def toml_arguments(path: str | Path, settings: dict | None, grid: dict | None, study: dict) -> tuple:
    """The :class:`Study` arguments a study TOML gives, where ``settings``, ``grid`` and ``study`` win.

    An option given here replaces the file's setting or grid axis of the
    same name; ``study`` keys given as None are ignored.

    Returns:
        ``(settings, grid, name, storage, options)``.

    Raises:
        ValueError: an unknown key; the message lists the valid ones.
    """
    values = read_toml(path)
    file_grid, options = values.pop("grid", {}), values.pop("study", {})
    if not isinstance(options, dict):
        raise ValueError(f"study in {path} must be a table ([study] and its keys). Received: study={options!r}")
    check_grid_table(file_grid, str(path))
    for table, keys, label in [(values, FIELDS, "setting"), (options, STUDY_KEYS, "[study] key")]:
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ValueError(f"Unknown {label}(s) {unknown} in {path}; available: {keys}")
    settings, grid = dict(settings or {}), dict(grid or {})
    merged_settings = {k: v for k, v in values.items() if k not in grid} | settings
    merged_grid = {k: v for k, v in file_grid.items() if k not in settings} | grid
    options |= {k: v for k, v in study.items() if v is not None}
    return merged_settings, merged_grid, options.pop("name", None), options.pop("storage", DEFAULT_STORAGE), options


def trial_configs(settings: dict, points: list[dict]) -> list[RunConfig]:
    """One ``RunConfig`` per grid point: the settings and the point (progress off).

    Raises:
        ValueError: a value is invalid (the message names the grid point), or two points give the same run.
    """
    configs = [_config(settings, point) for point in points]
    seen = {}
    for point, config in zip(points, configs):
        if config.run_id in seen:
            raise ValueError(f"grid points {point_text(seen[config.run_id])} and {point_text(point)} give the same "
                             f"run {config.run_id}; remove one value.")
        seen[config.run_id] = point
    return configs


def _config(settings: dict, point: dict) -> RunConfig:
    try:
        return RunConfig(**settings, **point, progress=False)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{error} (grid point {point_text(point)})" if point else str(error)) from None


def _check_storage(storage) -> Path:
    """The study storage folder, resolved.

    Raises:
        ValueError: ``storage`` is not a (non-empty) path.
    """
    if not isinstance(storage, (str, os.PathLike)) or not os.fspath(storage):
        raise ValueError(f"storage must be a folder path. Received: storage={storage!r}")
    return Path(storage).resolve()


@contextlib.contextmanager
def study_lock(folder: Path, label: str):
    """Hold the study's lock (``.locks/study.lock`` in ``folder``) without waiting.

    After a refusal (a ``ValueError`` or ``OSError`` inside), the lock file and
    the then empty folders this call created are removed.

    Raises:
        StudyLocked: another process is running this study.
        ValueError: the folder cannot be written; or raised inside.
    """
    lock = results.lock_path(folder / "study")
    created = [p for p in (lock, *lock.parents) if not p.exists()]
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock, timeout=0):
            yield
    except Timeout:
        raise StudyLocked(f"study {label} is being run by another process (lock {lock}).") from None
    except OSError as error:
        _remove_created(created)
        raise ValueError(f"Cannot write the study folder {folder}: {error.strerror or error}") from None
    except ValueError:
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    """After a refusal: remove the lock file and the (then empty) folders this call created."""
    for path in created:
        with contextlib.suppress(OSError):
            path.unlink() if path.suffix == ".lock" else path.rmdir()


def fresh_record(study: Study) -> dict:
    """A fresh ``study.json`` content for ``study``: every trial pending."""
    now = _now()
    trials = [dict(run_id=c.run_id, params=p, config=c.result_defining(), csv=f"trials/{c.run_id}.csv",
                   status="pending") for p, c in zip(study.points, study.configs)]
    return dict(study_id=study.study_id, name=study.name, folder=str(study.folder), grid=study.grid,
                settings=_jsonable(study.settings), trials=trials, versions=versions(),
                git_commit=results.git_commit(), created=now, updated=now)


def check_same_study(study: Study, old: dict, path: Path) -> None:
    """Refuse a record ``old`` (read from ``path``) of another study, or of other trials.

    Raises:
        ValueError: the message names the differences (theirs, yours).
    """
    if old["study_id"] != study.study_id:
        raise ValueError(f"{study.folder} holds study {old['study_id']}, not this one ({study.study_id}); "
                         f"differences (theirs, yours): {_differences(study, old)}. "
                         "Use another name, or remove that folder.")
    if sorted(t["run_id"] for t in old["trials"]) != sorted(study.run_ids):
        raise ValueError(f"{path} lists other trials than study {study.study_id} has; remove it, or use another name.")


def _differences(study: Study, old: dict) -> dict:
    grid = {f"grid {k}": v for k, v in differences(old.get("grid", {}), _jsonable(study.grid)).items()}
    diff = grid | differences(old.get("settings", {}), _jsonable(study.settings))
    # equal as written, yet other runs (a default changed, e.g. a measure was registered since): show the configs
    first = old["trials"][0].get("config", {}) if old["trials"] else {}
    return diff or differences(first, _jsonable(study.configs[0].result_defining()))


def versions() -> dict:
    """The run's package versions plus Ray's (read from the installed metadata, without importing Ray)."""
    try:
        ray_version = metadata.version("ray")
    except metadata.PackageNotFoundError:
        ray_version = None
    return {**results.package_versions(), "ray": ray_version}


def _check_settings(settings: dict) -> dict:
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown}; available: {FIELDS}")
    if "output" in settings:
        raise ValueError(f"A study writes each trial to <study folder>/trials/<run_id>.csv; choose the folder "
                         f"with name and storage, not output. Received: output={settings['output']!r}")
    return {k: v for k, v in settings.items() if k not in ("progress", "resume")}


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report(label: str, folder: Path, record: dict, note: str = "") -> int:
    """Print where the results are (then ``note``) and how to rank them; name failed trials. Return 0 or 1."""
    trials = record["trials"]
    failed = [t for t in trials if t["status"] != "complete"]
    folder = _relative(folder)
    print(f"study {label}: {len(trials) - len(failed)} of {len(trials)} trials complete in {folder}{note}")
    print(f"rank them: python analysis.py {folder}")
    for t in failed:
        print(f"error: trial {t['run_id']} ({point_text(t['params'])}) failed: {t.get('error')}; "
              f"log: {t.get('log')}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(trials)} trials failed; re-run the same command to retry them",
              file=sys.stderr)
    return 1 if failed else 0


def from_args(args) -> Study:
    """The study that parsed ``python -m harness`` arguments describe.

    Raises:
        ValueError: ``--seed`` with ``--seeds``, or any invalid value.
    """
    given = {k: v for k, v in vars(args).items() if v is not None}
    if "seed" in given and "seeds" in given:
        raise ValueError(f"give --seed or --seeds, not both. Received: seed={given['seed']}, seeds={given['seeds']!r}")
    settings = {k: v for k, v in given.items() if k in FIELDS and k not in ("progress", "resume")}
    grid = {"seed": parse_seeds(given["seeds"])} if "seeds" in given else {}
    study = {k: given[k] for k in STUDY_KEYS if k in given}
    if args.config:
        return Study.from_toml(args.config, settings, grid, **study)
    options = {k: v for k, v in study.items() if k in ENGINE_KEYS}
    storage = study.get("storage", DEFAULT_STORAGE)
    made = Study(settings, grid, study.get("name"), storage, options)
    if made.name is None:
        made.name = short_name(made, given.get("seeds"))
        made.place(Path(storage).resolve() / made.name)
    return made


def short_name(study: Study, seeds: str | None) -> str:
    """A readable folder name for a study given by options alone: ``digits-mlp-seeds0-4-97e849``.

    Task, model and seeds, then the study id's first 6 hex digits, so that two
    studies that differ in another setting get two folders.
    """
    config = study.configs[0]
    return "-".join([config.task, config.model, *([f"seeds{''.join(seeds.split())}"] if seeds else []), study.study_id[:6]])


def _request(args) -> tuple[dict, str | None]:
    """The options given (``--seeds`` included) and the key of this request (see :mod:`harness.cli.instant`)."""
    from harness.cli import instant

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "list")}
    return given, instant.request_key("study", given, args.config)


def _already_complete(args) -> int | None:
    """Report a study this same command finished before (on this code), without TensorFlow or Ray; else None."""
    from harness.cli import instant

    found = instant.complete_study(_request(args)[0], args.config, DEFAULT_STORAGE)
    if found is None:
        return None
    folder, record = found
    return report(folder.name, folder, record, " (already complete; nothing was recomputed)")


def run_from_args(args) -> int:
    """Run the study parsed ``python -m harness`` arguments describe; return the exit status.

    0: every trial complete. 1: some trials failed (named, with their logs).
    2: bad input, reported before Ray starts. 3: another process is running this study.
    130: interrupted; re-running resumes.
    """
    from harness.cli import instant
    from harness.common import quiet

    done = _already_complete(args)
    if done is not None:
        return done
    study = None
    try:
        quiet.load_tensorflow()  # the configs' validation imports it; the trials name their own device
        study = from_args(args)
        named = f" (id {study.study_id})" if study.label != study.study_id else ""
        print(f"study {study.label}{named}: {len(study.configs)} trials -> {_relative(study.folder)}")
        record = study.run(progress=args.progress is not False)
        if all(study.is_complete(trial) for trial in record["trials"]):
            instant.remember(study.folder / "study.json", _request(args)[1])
    except StudyLocked as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = _relative(study.folder) if study else "the study folder"
        print(f"interrupted: ended trials are recorded in {where}; re-run the same command to resume", file=sys.stderr)
        return 130
    return report(study.label, study.folder, record)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.study``: the options of ``python -m harness``, always as a study."""
    args = parser("python -m harness.study", STUDY_HELP).parse_args(argv)
    if args.list:
        from harness.cli import catalog

        print(catalog.listing())
        return 0
    try:
        check_args(args, study=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
