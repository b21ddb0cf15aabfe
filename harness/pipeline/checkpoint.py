"""Per-epoch checkpoints: model, optimizer, training-time measures and random state, verified when read.

Layout beside the CSV: ``<stem>.<run_id>.ckpt/epoch-<e>/`` holds a TensorFlow
checkpoint (``ckpt.index``, ``ckpt.data-*``) and ``manifest.json``: the epoch,
the states of Python's and NumPy's global generators, the run's notes
(``info``: losses so far) and the size and SHA-256 of every checkpoint file.
``latest.json`` names the newest epoch, for people and tools; restoring does
not depend on it.

Writing: into ``epoch-<e>.tmp/``, the manifest last, renamed into place, then
``latest.json`` is replaced atomically, then checkpoints of earlier epochs
beyond the ``keep`` newest are deleted, so a crash leaves the earlier ones
usable. Reading: epochs newest first; each is verified against its manifest
before TensorFlow reads it; a damaged one is reported in one line, deleted,
and the next older one is tried.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from harness.common.files import DiskFull, disk_full, write_metadata

MANIFEST = "manifest.json"
EPOCH_FOLDER = re.compile(r"epoch-(\d+)")


def _backing(variables) -> list[tf.Variable]:
    """The ``tf.Variable`` behind each Keras variable (tf.Variables pass through)."""
    return [getattr(v, "value", v) if not isinstance(v, tf.Variable) else v for v in variables]


class TrackedState:
    """Every variable a run must restore, as one TensorFlow checkpoint object.

    Args:
        model: The Keras model; all its variables, seed-generator states included.
        optimizer: The built Keras optimizer (iteration count, moments, ...).
        measures: Spec to measure; each measure's ``state()`` variables.
    """

    def __init__(self, model, optimizer, measures: dict):
        groups = dict(model=_backing(model.variables), optimizer=_backing(optimizer.variables),
                      **{f"measure_{i}": _backing(m.state()) for i, m in enumerate(measures.values())})
        self.variables = [v for group in groups.values() for v in group]
        self.checkpoint = tf.train.Checkpoint(**groups)

    def snapshot(self) -> tuple[list[np.ndarray], object, tuple]:
        """Copies of every variable and of Python's and NumPy's global generator states."""
        return [v.numpy() for v in self.variables], random.getstate(), np.random.get_state()

    def put_back(self, snapshot) -> None:
        """Assign a :meth:`snapshot` back."""
        values, python_state, numpy_state = snapshot
        for variable, value in zip(self.variables, values):
            variable.assign(value)
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def tracked_state(model, optimizer, measures: dict) -> TrackedState:
    """The :class:`TrackedState` of a run."""
    return TrackedState(model, optimizer, measures)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _random_states() -> dict:
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    return dict(python_random=[version, list(internal), gauss],
                numpy_random=[numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]])


def save(folder: Path, state: TrackedState, epoch: int, info: dict | None = None, keep: int = 1) -> None:
    """Write the checkpoint of ``epoch`` atomically, then delete earlier ones beyond the ``keep`` newest.

    The data order of epoch e is a pure function of (seed, e), so the epoch
    is the data-order position. Checkpoints of later epochs (left by an
    earlier pass of the same run) are kept until overwritten.
    """
    if folder.exists() and not folder.is_dir():
        remove(folder)  # a file where the checkpoint folder belongs: damaged, replaced
    folder.mkdir(parents=True, exist_ok=True)
    final, tmp = folder / f"epoch-{epoch}", folder / f"epoch-{epoch}.tmp"
    remove(tmp)
    try:
        _write(tmp, state, epoch, info)
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError) as error:
        remove(tmp)
        if isinstance(error, DiskFull) or not _disk_is_full(error):
            raise
        raise disk_full(tmp, _bytes_needed(state)) from None
    remove(final)
    os.replace(tmp, final)
    remove(folder / "latest.json") if (folder / "latest.json").is_dir() else None
    write_metadata(folder / "latest.json", dict(epoch=epoch, path=f"epoch-{epoch}/ckpt"))
    for old in [e for e in epochs(folder) if e < epoch][keep - 1:]:
        remove(folder / f"epoch-{old}")


def _write(tmp: Path, state: TrackedState, epoch: int, info: dict | None) -> None:
    """The TensorFlow checkpoint and its manifest, into the temporary folder ``tmp``."""
    state.checkpoint.write(str(tmp / "ckpt"))
    files = {p.name: dict(size=p.stat().st_size, sha256=_sha256(p)) for p in sorted(tmp.iterdir())}
    info = {"history": [], **(info or {})}  # every manifest has a history list: one without is damaged
    write_metadata(tmp / MANIFEST, dict(epoch=epoch, files=files, info=info, **_random_states()))


def _disk_is_full(error: Exception) -> bool:
    """Whether a write failed for want of space (TensorFlow reports it as ResourceExhausted or in its message)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, tf.errors.ResourceExhaustedError) or "No space left on device" in str(error)


def _bytes_needed(state: TrackedState) -> int:
    """About the bytes a checkpoint of ``state`` takes: its variables' values."""
    return int(sum(np.prod(v.shape) * v.dtype.size for v in state.variables))


def remove(path: Path) -> None:
    """Remove a file or folder at ``path``, whichever it is (nothing if absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def epochs(folder: Path) -> list[int]:
    """Epochs with a checkpoint (intact or not; a file in its folder's place counts, as damaged), newest first."""
    if not folder.is_dir():
        return []
    found = [EPOCH_FOLDER.fullmatch(p.name) for p in folder.iterdir()]
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def damage(path: Path) -> str | None:
    """What is wrong with the checkpoint folder ``path`` compared to its manifest, or None if intact."""
    if not path.is_dir():
        return "a file, not a folder"
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{MANIFEST} is missing"
    except (OSError, ValueError) as error:
        return f"{MANIFEST} is unreadable: {error}"
    problem = manifest_problem(manifest)
    if problem:
        return f"{MANIFEST} {problem}"
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected["size"]:
            return f"{name} has {file.stat().st_size} of its {expected['size']} bytes"
        if _sha256(file) != expected["sha256"]:
            return f"{name} does not match its SHA-256"
    return None


def manifest_problem(manifest) -> str | None:
    """What makes ``manifest`` unlike the manifests :func:`save` writes, or None."""
    if not isinstance(manifest, dict):
        return f"holds a JSON {type(manifest).__name__}, not an object"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f"has files={str(files)[:60]}, not an object of file names"
    if not any(name.startswith("ckpt.index") for name in files):
        return "lists no ckpt.index"
    for name, expected in files.items():
        if not name or "/" in name or name in (".", "..", MANIFEST):
            return f"lists a file named {name!r}"
        if not isinstance(expected, dict) or not isinstance(expected.get("size"), int) \
                or isinstance(expected.get("size"), bool) or not isinstance(expected.get("sha256"), str):
            return f"has no size and SHA-256 for {name}"
    if not isinstance(manifest.get("info"), dict) or not isinstance(manifest["info"].get("history"), list):
        return "has no info.history"
    python_random, numpy_random = manifest.get("python_random"), manifest.get("numpy_random")
    if not isinstance(python_random, list) or len(python_random) != 3 or not isinstance(python_random[1], list):
        return "has no python_random state"
    if not isinstance(numpy_random, list) or len(numpy_random) != 5 or not isinstance(numpy_random[1], list):
        return "has no numpy_random state"
    return None


def read(path: Path, state: TrackedState) -> dict:
    """Read a verified checkpoint into the live variables and the global generators; return its ``info``."""
    manifest = json.loads((path / MANIFEST).read_text())
    state.checkpoint.read(str(path / "ckpt")).assert_consumed()
    version, internal, gauss = manifest["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = manifest["numpy_random"]
    np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
    return manifest["info"]


def _check_pointer(folder: Path, say: Callable[[str], None]) -> None:
    latest = folder / "latest.json"
    try:
        json.loads(latest.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        say(f"{latest} is unreadable ({error}); looking for intact checkpoints in {folder} instead")


def restore(folder: Path, state: TrackedState, at_most: int, say: Callable[[str], None]) -> tuple[int, dict] | None:
    """Restore the newest intact checkpoint of an epoch <= ``at_most``.

    Each candidate is verified (:func:`damage`) before TensorFlow reads it. A
    damaged one is reported through ``say`` in one line and deleted.

    Returns:
        ``(epoch, info)``, or None when no intact checkpoint exists; then the
        variables and generators are as they were before the call.
    """
    if folder.exists() and not folder.is_dir():
        say(f"checkpoint folder {folder} is a file; deleted, starting without a checkpoint")
        remove(folder)
        return None
    _check_pointer(folder, say)
    before = None
    for epoch in epochs(folder):
        if epoch > at_most:
            continue
        path = folder / f"epoch-{epoch}"
        problem = damage(path)
        if problem is None:
            before = before or state.snapshot()
            try:
                return epoch, read(path, state)
            except (tf.errors.OpError, AssertionError, ValueError, KeyError, TypeError, IndexError, OverflowError) as error:
                problem = f"TensorFlow cannot read it: {type(error).__name__}: {str(error).splitlines()[0]}"
        say(f"checkpoint {path} is damaged ({problem}); deleted, trying an earlier one")
        remove(path)
    if before is not None:
        state.put_back(before)
    return None


def clear(folder: Path) -> None:
    """Delete every checkpoint in ``folder`` (or a file in its place)."""
    remove(folder)
