"""MNIST handwritten digits, from a local folder or the keras.datasets download."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np

from tasks import Task, TaskData, register_task
from tasks._utils import (
    SPLIT_SEED,
    CorruptDataFile,
    check_pair,
    download,
    find_file,
    labels,
    md5,
    read_idx,
    resolve_dir,
    scale_uint8,
    stratified_split,
    unavailable,
)

ENV_VAR = "MNIST_DIR"
NPZ = "mnist.npz"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED = (
    f"either {NPZ} (keras format: x_train, y_train, x_test, y_test) or the original IDX files "
    + ", ".join(f"{name}.gz" for pair in IDX_FILES.values() for name in pair)
    + " (gzipped or not; the two t10k files alone are enough)"
)
VAL_FRACTION = 0.2
SPLIT_NAMES = {"train": "train split", "t10k": "t10k test split"}


def mnist_mlp(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """LeNet-300-100: Flatten -> Dense(300, relu) -> Dense(100, relu) -> Dense(num_classes) logits."""
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = keras.layers.Dense(300, activation="relu", name="fc1")(h)
    h = keras.layers.Dense(100, activation="relu", name="fc2")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="lenet_300_100")


def mnist_cnn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Conv(32, 3x3) -> Pool -> Conv(64, 3x3) -> Pool -> Dense(128) -> Dense(num_classes) logits."""
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2, name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(128, activation="relu", name="fc1")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def seed003_augmentation(seed: int) -> keras.layers.Layer:
    """The original study's training augmentation (seed 003): random zoom in, then random rotation.

    ``RandomZoom(height_factor=(-0.05, -0.25), width_factor=(-0.05, -0.25))``
    zooms in by 5-25 %, height and width drawn independently, reflecting at
    the borders; ``RandomRotation(0.05, fill_mode="constant")`` rotates by up
    to +-0.05 of a turn (18 degrees), filling with 0. The original wrote the
    zoom bounds in decreasing order; both its TensorFlow 2 layer and Keras 3
    draw the zoom from the same interval.
    """
    return keras.Sequential([
        keras.layers.RandomZoom((-0.05, -0.25), (-0.05, -0.25), seed=seed % 2**31),
        keras.layers.RandomRotation(0.05, fill_mode="constant", seed=(seed + 1) % 2**31),
    ], name="seed003_augmentation")


@register_task("mnist")
class Mnist(Task):
    """MNIST: 28x28 grey digits, 10 classes, inputs ``(28, 28, 1)`` in [0, 1].

    Data come from ``data_dir``, else the folder in ``$MNIST_DIR``, else
    ``keras.datasets.mnist.load_data()``. Augmentations: ``none`` and
    ``seed003`` (see :func:`seed003_augmentation`). With both splits, the 60,000
    training images train and the 10,000 test images validate. With only one
    split (e.g. the t10k files alone), it is split 80/20, stratified, with a
    fixed seed, and ``info["split"]`` says so.
    """

    models = {"mlp": mnist_mlp, "cnn": mnist_cnn}
    augmentations = {"none": None, "seed003": seed003_augmentation}
    default_model = "mlp"
    num_classes = 10
    input_shape = (28, 28, 1)
    batch_size = 64
    epochs = 3

    def load(self, data_dir: str | None = None) -> TaskData:
        """Return MNIST as float32 ``(n, 28, 28, 1)`` in [0, 1] and int64 labels ``(n,)``.

        Args:
            data_dir: Folder holding the files (or a ``mnist`` subfolder of it).

        Raises:
            DatasetUnavailable: No usable files and no download; the message
                lists the expected files and how to point at them.
            CorruptDataFile: A file exists but is damaged (a DatasetUnavailable).
        """
        folder, origin = resolve_dir(data_dir, ENV_VAR)
        if folder is None:
            return _download()
        for candidate in (folder, folder / "mnist"):
            data = _from_folder(candidate)
            if data is not None:
                return data
        state = "does not exist" if not folder.is_dir() else "holds none of them"
        raise unavailable("MNIST", f"the folder {folder} (from {origin}) {state}", EXPECTED, ENV_VAR)


def _download() -> TaskData:
    """Load through ``keras.datasets.mnist.load_data()``; a failure becomes DatasetUnavailable."""
    loader = keras.datasets.mnist.load_data
    (x_train, y_train), (x_test, y_test) = download("MNIST", "keras.datasets.mnist.load_data()", loader, EXPECTED, ENV_VAR)
    splits = {"train": (x_train, y_train), "t10k": (x_test, y_test)}
    return _task_data(splits, {"source": "keras.datasets.mnist.load_data()"})


def _from_folder(folder: Path) -> TaskData | None:
    """Read ``mnist.npz`` or the IDX files from ``folder``; ``None`` when it holds neither."""
    if not folder.is_dir():
        return None
    if (folder / NPZ).is_file():
        return _from_npz(folder / NPZ)
    paths = {split: [find_file(folder, name) for name in names] for split, names in IDX_FILES.items()}
    present = {split: pair for split, pair in paths.items() if all(pair)}
    if not present:
        return None
    splits = {split: _read_idx_pair(*pair) for split, pair in present.items()}
    files = [path for pair in present.values() for path in pair]
    return _task_data(splits, {"source": str(folder.resolve()), "md5": {p.name: md5(p) for p in files}})


def _from_npz(path: Path) -> TaskData:
    """Read the keras-format ``mnist.npz`` (x_train, y_train, x_test, y_test).

    Raises:
        CorruptDataFile: Not a readable npz, or a key is missing.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            splits = {"train": (npz["x_train"], npz["y_train"]), "t10k": (npz["x_test"], npz["y_test"])}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise CorruptDataFile(f"{path}: not a keras-format mnist.npz ({type(error).__name__}: {error})") from None
    return _task_data(splits, {"source": str(path.resolve()), "md5": {path.name: md5(path)}})


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's image and label IDX files, checking they agree.

    Raises:
        CorruptDataFile: Bad IDX file, images not 28x28, or counts that differ.
    """
    x, y = read_idx(images_path), read_idx(labels_path)
    check_pair(x, y, (28, 28), f"{images_path} / {labels_path}")
    return x, labels(y, 10, str(labels_path))


def _task_data(splits: dict[str, tuple[np.ndarray, np.ndarray]], info: dict) -> TaskData:
    """Scale pixels, add the channel axis and choose train and validation.

    Args:
        splits: ``"train"`` and/or ``"t10k"`` to ``(uint8 images (n, 28, 28), labels (n,))``.
        info: Source facts; the split and sizes are added.
    """
    arrays = {}
    for split, (x, y) in splits.items():
        check_pair(np.asarray(x), np.asarray(y).reshape(-1), (28, 28), f"MNIST {split} split")
        arrays[split] = (scale_uint8(x)[..., None], labels(y, 10, f"MNIST {split} split"))
    if len(arrays) == 2:
        (x_train, y_train), (x_val, y_val) = arrays["train"], arrays["t10k"]
        info["split"] = "official: the train split trains, the t10k test split validates"
    else:
        [(only, (x, y))] = arrays.items()
        x_train, y_train, x_val, y_val = stratified_split(x, y, VAL_FRACTION)
        info["split"] = (
            f"only the {SPLIT_NAMES[only]} was found; split {len(y_train)}/{len(y_val)} (train/validation), "
            f"stratified, with the fixed seed {SPLIT_SEED}, independent of the run seed"
        )
    info.update(n_train=len(y_train), n_val=len(y_val))
    return TaskData(x_train, y_train, x_val, y_val, info)
