"""What a study is given, checked without TensorFlow or Ray.

How it runs (:class:`Engine`), its grid axes, seeds, name and record file
(``study.json``).
:mod:`harness.study.driver` runs studies, :mod:`harness.study.engine` executes them on Ray
and :mod:`harness.cli.inputs` refuses bad study options before anything heavy is
imported; all three read these definitions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.pipeline.config import MAX_SEED, NOT_RESULT_DEFINING, RunConfig

DEFAULT_STORAGE = "data/studies"
FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
AXES = [name for name in FIELDS if name not in NOT_RESULT_DEFINING]
ENGINE_KEYS = ["workers", "address", "gpus_per_trial", "max_retries", "dashboard"]
STUDY_KEYS = ["name", "storage", *ENGINE_KEYS]
MAX_TRIALS = 100_000


@dataclass
class Engine:
    """How a study runs on Ray (not what it computes); validated on construction.

    Attributes:
        workers: Trials at a time. Locally, the CPUs of the Ray instance
            started for the study (default: the core count); on a cluster,
            the most trials in flight (default: as many as it schedules).
        address: None starts a local Ray; ``"auto"`` or ``"ray://host:port"``
            joins a running cluster.
        gpus_per_trial: GPUs reserved per trial; fractions below 1 share a GPU.
        max_retries: Times a trial whose worker died runs again.
        dashboard: Start Ray's dashboard with a local Ray, on 127.0.0.1
            (needs ``ray[default]``); off by default. A cluster's head
            decides for itself.
        progress: Show the study's progress bar.

    Raises:
        ValueError: a value is invalid; the message quotes it.
    """

    workers: int | None = None
    address: str | None = None
    gpus_per_trial: float = 0.0
    max_retries: int = 2
    dashboard: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ValueError(f"workers must be a positive integer. Received: workers={self.workers!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0. Received: max_retries={self.max_retries!r}")
        if not isinstance(self.dashboard, bool):
            raise ValueError(f"dashboard must be true or false. Received: dashboard={self.dashboard!r}")
        gpus = self.gpus_per_trial
        if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not math.isfinite(gpus) or gpus < 0 \
                or (gpus > 1 and gpus % 1):
            raise ValueError("gpus_per_trial must be a fraction in [0, 1] or a whole number of GPUs. "
                             f"Received: gpus_per_trial={gpus!r}")


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` -> 0..9; ``"0,3,5"``; ``"0-4,10-14"``.

    Raises:
        ValueError: not written that way, or a seed repeats.
    """
    if not isinstance(text, str):
        raise ValueError(f"seeds must be text such as 0-9 or 0,3,5 or 0-4,10-14. Received: seeds={text!r}")
    ranges = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            if not (low.strip().isascii() and (high or low).strip().isascii()):
                raise ValueError
            ranges.append((int(low), int(high or low)))
    except ValueError:
        raise ValueError(f"seeds must look like 0-9 or 0,3,5 or 0-4,10-14. Received: seeds={text!r}") from None
    if any(not 0 <= low <= MAX_SEED or not 0 <= high <= MAX_SEED for low, high in ranges):
        raise ValueError(f"seeds must lie in [0, {MAX_SEED}]. Received: seeds={text!r}")
    if sum(max(0, high - low + 1) for low, high in ranges) > MAX_TRIALS:
        raise ValueError(f"seeds name more than {MAX_TRIALS} trials, the most a study may hold. Received: seeds={text!r}")
    seeds = [seed for low, high in ranges for seed in range(low, high + 1)]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be non-empty and distinct. Received: seeds={text!r}")
    return seeds


def check_name(name: str | None) -> str | None:
    """A study name is one folder name.

    Raises:
        ValueError: empty, ``.``/``..``, or holding a path separator.
    """
    if name is not None and (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or os.sep in name):
        raise ValueError(f"name must be one folder name (no '/'). Received: name={name!r}")
    return name


def read_record(path: Path) -> dict:
    """The study record (``study.json``) at ``path``.

    Raises:
        ValueError: it cannot be read or parsed, or it is not a study record; the message names the path.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is unreadable ({error}); remove it, or use another name.") from None
    problem = record_problem(record)
    if problem:
        raise ValueError(f"{path} is not a study record ({problem}); remove it, or use another name.")
    return record


def record_problem(record) -> str | None:
    """What makes ``record`` no study record (the shape :meth:`Study.record` writes), or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("study_id"), str):
        return "no study_id"
    trials = record.get("trials")
    if not isinstance(trials, list) or not trials:
        return "no list of trials"
    for trial in trials:
        if not isinstance(trial, dict) or not all(isinstance(trial.get(k), str) for k in ("run_id", "status", "csv")):
            return f"a trial without run_id, status and csv: {str(trial)[:80]}"
        if trial["csv"] != f"trials/{trial['run_id']}.csv" or not isinstance(trial.get("params", {}), dict):
            return f"trial {trial['run_id']!r} has csv {trial['csv']!r}, not trials/<run_id>.csv"
    for key in ("grid", "settings"):
        if not isinstance(record.get(key, {}), dict):
            return f"{key} is not an object"
    return None


ADDRESS_TIMEOUT = 3.0  # seconds to reach a Ray cluster's address before the study is refused


def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT) -> None:
    """That the Ray cluster at ``address`` answers within ``timeout`` seconds (None: Ray starts locally).

    ``auto`` is looked up as Ray does: ``$RAY_ADDRESS``, else the cluster started on this machine
    (``/tmp/ray/ray_current_cluster``).

    Raises:
        ValueError: not ``auto``, ``host:port`` or ``ray://host:port``, no cluster found, or no answer in time.
    """
    if address is None:
        return
    target = address
    if address == "auto":
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        target = os.environ.get("RAY_ADDRESS") or (current.read_text().strip() if current.is_file() else "")
        if not target:
            raise ValueError("address='auto' finds no running Ray cluster on this machine (no $RAY_ADDRESS, no "
                             f"{current}); start one with 'ray start --head', or leave address out to start Ray locally.")
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be 'auto', host:port or ray://host:port. Received: address={address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot reach the Ray cluster at {target} within {timeout:g} s ({error}). "
                         f"Received: address={address!r}") from None
