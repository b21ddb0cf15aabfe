"""Per-epoch checkpoints: model, optimizer, training-time measures and random state.

Layout beside the CSV: ``<stem>.<run_id>.ckpt/epoch-<e>/ckpt.*`` (a TensorFlow
checkpoint) and ``<stem>.<run_id>.ckpt/latest.json`` naming the newest one.
A checkpoint is written into a temporary folder, renamed into place, and only
then named in ``latest.json`` (itself written to a temporary file and
renamed), so a crash leaves the previous checkpoint usable. Older epochs are
deleted afterwards; only the latest is kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from harness.results import write_metadata


def _backing(variables) -> list[tf.Variable]:
    """The ``tf.Variable`` behind each Keras variable (tf.Variables pass through)."""
    return [getattr(v, "value", v) if not isinstance(v, tf.Variable) else v for v in variables]


def tracked_state(model, optimizer, measures: dict) -> tf.train.Checkpoint:
    """A TF checkpoint object over every variable a run must restore.

    Args:
        model: The Keras model; all its variables, seed-generator states included.
        optimizer: The built Keras optimizer (iteration count, moments, ...).
        measures: Spec to measure; each measure's ``state()`` variables.
    """
    state = {f"measure_{i}": _backing(m.state()) for i, m in enumerate(measures.values())}
    return tf.train.Checkpoint(model=_backing(model.variables), optimizer=_backing(optimizer.variables), **state)


def save(folder: Path, checkpoint: tf.train.Checkpoint, epoch: int) -> None:
    """Write the checkpoint of ``epoch`` atomically and delete older ones.

    ``latest.json`` records the epoch (the data order of epoch e is a pure
    function of (seed, e), so the epoch is the data-order position) and the
    states of Python's and NumPy's global generators.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final, tmp = folder / f"epoch-{epoch}", folder / f"epoch-{epoch}.tmp"
    for stale in (tmp, final):
        shutil.rmtree(stale, ignore_errors=True)
    checkpoint.write(str(tmp / "ckpt"))
    os.replace(tmp, final)
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    write_metadata(folder / "latest.json", dict(
        epoch=epoch, path=f"epoch-{epoch}/ckpt", python_random=[version, list(internal), gauss],
        numpy_random=[numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]))
    for old in folder.glob("epoch-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def restore(folder: Path, checkpoint: tf.train.Checkpoint) -> int:
    """Restore the latest checkpoint into the live variables; return its epoch (0 if none)."""
    latest = folder / "latest.json"
    if not latest.exists():
        return 0
    info = json.loads(latest.read_text())
    checkpoint.read(str(folder / info["path"])).assert_consumed()
    version, internal, gauss = info["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = info["numpy_random"]
    np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
    return int(info["epoch"])
