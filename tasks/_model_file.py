"""A trained model from a file: the Keras 3 ``.keras`` format, checked before anything runs.

``python -m harness --model-file PATH`` scores and sweeps (``--epochs 0``) or
fine-tunes first (``--epochs N``) a model trained elsewhere, on a task's
data. Everything here raises one-line ``ValueError``s that quote the value.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import zipfile
from pathlib import Path

import keras

SUFFIX = ".keras"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_path(path) -> Path:
    """Return ``path`` as a Path after checking it names an existing ``.keras`` zip archive.

    Raises:
        ValueError: not a string, no such file, another suffix, or not a zip archive.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"model_file must be the path of a {SUFFIX} file. Received: model_file={path!r}")
    path = Path(path).expanduser()
    if path.suffix != SUFFIX:
        raise ValueError(f"model_file must be a {SUFFIX} file (the format Keras 3 saves with model.save); "
                         f"convert others with keras.models.load_model(...).save('model.keras'). "
                         f"Received: model_file={os.fspath(path)!r}")
    if not path.is_file():
        raise ValueError(f"model_file does not exist or is not a file. Received: model_file={os.fspath(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model_file is not a Keras 3 {SUFFIX} archive (not a zip file). "
                         f"Received: model_file={os.fspath(path)!r}")
    return path


def _serialized_objects(node) -> list[dict]:
    """Every dict with a ``class_name`` in a saved config, depth first."""
    if isinstance(node, list):
        return [found for item in node for found in _serialized_objects(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if "class_name" in node else []
    return own + [found for value in node.values() for found in _serialized_objects(value)]


def _importable(entry: dict) -> bool:
    """Whether a serialized object outside Keras is registered or importable from its module."""
    if entry.get("registered_name") and keras.saving.get_registered_object(entry["registered_name"]) is not None:
        return True
    try:
        return hasattr(importlib.import_module(entry["module"]), entry["class_name"])
    except (ImportError, ValueError, TypeError):
        return False


def missing_custom_objects(path: Path) -> list[str]:
    """``module.ClassName`` of each custom object the archive's config names that cannot be found."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return []  # load_model reports it
    custom = [e for e in _serialized_objects(config)
              if isinstance(e.get("module"), str) and not e["module"].startswith("keras")]
    return sorted({f"{e['module']}.{e['class_name']}" for e in custom if not _importable(e)})


def load_model_file(path) -> keras.Model:
    """Load a ``.keras`` model, uncompiled, in Keras' safe mode (no arbitrary code from lambdas).

    Raises:
        ValueError: see :func:`check_model_path`; custom objects that cannot be
            imported (the message names them); or any other loading failure, in one line.
    """
    path = check_model_path(path)
    missing = missing_custom_objects(path)
    if missing:
        raise ValueError(f"model_file uses custom objects that cannot be imported: {missing}; import them (registered "
                         "with @keras.saving.register_keras_serializable) in a module under tasks/ so they load with "
                         f"the run. Received: model_file={os.fspath(path)!r}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any loading failure is one line naming the file
        detail = (str(error).strip().splitlines() or [""])[0][:300]
        raise ValueError(f"model_file could not be loaded ({type(error).__name__}: {detail}). "
                         f"Received: model_file={os.fspath(path)!r}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"model_file holds a {type(model).__name__}, not a model. Received: model_file={str(path)!r}")
    return model


def check_model_shapes(model: keras.Model, input_shape, num_classes: int | None, task: str, path) -> None:
    """Check one input of the task's example shape and one output of ``num_classes`` values.

    ``None`` (a free axis in the model, or a task whose shape is unknown
    before its data load) matches anything.

    Raises:
        ValueError: several inputs or outputs, or a shape that differs; quotes both.
    """
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"model_file must hold a model with one input and one output; it has {len(inputs)} and "
                         f"{len(outputs)}. Received: model_file={os.fspath(path)!r}")
    given, out = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    if input_shape is not None and not _matches(given, tuple(input_shape)):
        raise ValueError(f"model_file's input shape {given} does not match task {task!r}, whose examples have shape "
                         f"{tuple(input_shape)}. Received: model_file={os.fspath(path)!r}")
    if num_classes is not None and (len(out) != 1 or out[0] not in (None, num_classes)):
        raise ValueError(f"model_file's output shape {out} does not match task {task!r}, which has {num_classes} "
                         f"classes (expected ({num_classes},)). Received: model_file={os.fspath(path)!r}")


def _matches(given: tuple, expected: tuple) -> bool:
    return len(given) == len(expected) and all(g is None or g == e for g, e in zip(given, expected))
