"""CIFAR-10 colour images, from a local ``cifar-10-batches-py`` folder or keras.datasets."""

from __future__ import annotations

import pickle
from pathlib import Path

import keras
import numpy as np

from tasks import Task, TaskData, register_task
from tasks._utils import CorruptDataFile, check_pair, download, labels, resolve_dir, scale_uint8, unavailable

ENV_VAR = "CIFAR10_DIR"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
EXPECTED = (
    f"the python-pickle CIFAR-10 files {', '.join(TRAIN_BATCHES)} and {TEST_BATCH} "
    f"(the {FOLDER} folder of cifar-10-python.tar.gz, or its parent)"
)
# Globals a genuine CIFAR-10 pickle may reference: numpy arrays, their dtypes and
# (protocol-2 pickles written by Python 3) bytes rebuilt with _codecs.encode.
SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def cifar_cnn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Conv32-Conv32-Pool-Conv64-Conv64-Pool-Flatten-Dense256-Dense(num_classes) logits, relu, 3x3 valid."""
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    for i, filters in enumerate((32, 32, 64, 64), start=1):
        h = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(h)
        if i % 2 == 0:
            h = keras.layers.MaxPooling2D(2, name=f"pool{i // 2}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(256, activation="relu", name="fc1")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="cifar10_cnn")


@register_task("cifar10")
class Cifar10(Task):
    """CIFAR-10: 32x32 RGB images, 10 classes, inputs ``(32, 32, 3)`` in [0, 1].

    The 50,000 training images train and the 10,000 test images validate.
    Data come from ``data_dir``, else ``$CIFAR10_DIR``, else
    ``keras.datasets.cifar10.load_data()``.
    """

    models = {"cnn": cifar_cnn}
    default_model = "cnn"
    num_classes = 10
    input_shape = (32, 32, 3)
    batch_size = 64
    epochs = 5

    def load(self, data_dir: str | None = None) -> TaskData:
        """Return CIFAR-10 as float32 ``(n, 32, 32, 3)`` in [0, 1] and int64 labels ``(n,)``.

        Args:
            data_dir: The ``cifar-10-batches-py`` folder or its parent.

        Raises:
            DatasetUnavailable: No usable files and no download; the message
                lists the expected files and how to point at them.
            CorruptDataFile: A batch file is damaged (a DatasetUnavailable).
        """
        folder, origin = resolve_dir(data_dir, ENV_VAR)
        if folder is None:
            return _download()
        for candidate in (folder, folder / FOLDER):
            if all((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
                return _from_folder(candidate)
        state = "does not exist" if not folder.is_dir() else "lacks them"
        raise unavailable("CIFAR-10", f"the folder {folder} (from {origin}) {state}", EXPECTED, ENV_VAR)


def _download() -> TaskData:
    """Load through ``keras.datasets.cifar10.load_data()``; a failure becomes DatasetUnavailable."""
    loader = keras.datasets.cifar10.load_data
    name = "keras.datasets.cifar10.load_data()"
    train, val = download("CIFAR-10", name, loader, EXPECTED, ENV_VAR)
    return _task_data(train, val, name)


def _from_folder(folder: Path) -> TaskData:
    """Read the five training batches and the test batch from ``folder``."""
    train = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train_xy = (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]))
    return _task_data(train_xy, read_batch(folder / TEST_BATCH), str(folder.resolve()))


def _task_data(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], source: str) -> TaskData:
    """Scale uint8 ``(n, 32, 32, 3)`` images to [0, 1] and wrap both splits."""
    (x_train, y_train), (x_val, y_val) = train, val
    y_train, y_val = labels(y_train, 10, "CIFAR-10 train"), labels(y_val, 10, "CIFAR-10 test")
    check_pair(x_train, y_train, (32, 32, 3), "CIFAR-10 train")
    check_pair(x_val, y_val, (32, 32, 3), "CIFAR-10 test")
    info = {
        "source": source,
        "split": "official: the five data batches train, the test batch validates",
        "n_train": len(y_train),
        "n_val": len(y_val),
    }
    return TaskData(scale_uint8(x_train), y_train, scale_uint8(x_val), y_val, info)


class _NumpyUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays, so a batch file cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        """Allow only :data:`SAFE_GLOBALS`.

        Raises:
            pickle.UnpicklingError: Any other global is referenced.
        """
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch file.

    The file is a pickled dict with byte-string keys: ``b"data"``, uint8 of
    shape ``(n, 3072)``, each row the red, then green, then blue 32x32 plane
    in row-major order; and ``b"labels"``, ``n`` ints 0..9.

    Returns:
        ``(images, labels)``: uint8 ``(n, 32, 32, 3)`` (channels last) and int64 ``(n,)``.

    Raises:
        CorruptDataFile: Not such a pickle, or the arrays have the wrong shape.
    """
    try:
        with path.open("rb") as handle:
            batch = _NumpyUnpickler(handle, encoding="bytes").load()
        data, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise CorruptDataFile(f"{path}: not a CIFAR-10 python batch ({type(error).__name__}: {error})") from None
    check_pair(data, y, (3072,), str(path))
    if data.dtype != np.uint8:
        raise CorruptDataFile(f"{path}: expected uint8 pixels, got {data.dtype}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels(y, 10, str(path))
