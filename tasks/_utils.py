"""Helpers shared by the dataset loaders: folders, IDX files, splits and errors.

Nothing here is a task; the leading underscore keeps :func:`harness.common.registry.import_all`
from importing it as a plugin.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from tasks._task import DatasetUnavailable

# IDX type code (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

SPLIT_SEED = 0
"""Seed of every split made by a loader; fixed, independent of the run seed."""


class CorruptDataFile(DatasetUnavailable):
    """A data file exists but cannot be parsed; the message names the file."""


def resolve_dir(data_dir: str | os.PathLike | None, env_var: str) -> tuple[Path | None, str]:
    """Pick the folder to read a dataset from.

    Args:
        data_dir: Folder given by the caller; wins when not ``None``.
        env_var: Environment variable consulted when ``data_dir`` is ``None``.

    Returns:
        ``(folder, origin)``: the folder, or ``None`` when neither is set, and
        a phrase saying where it came from (for error messages).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir argument"
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"the {env_var} environment variable"
    return None, ""


def unavailable(dataset: str, reason: str, expected: str, env_var: str) -> DatasetUnavailable:
    """Build the one error raised when a dataset cannot be had.

    Args:
        dataset: Display name, e.g. ``"MNIST"``.
        reason: What went wrong, one sentence without a final period.
        expected: Which files a folder must hold.
        env_var: Environment variable that names the folder.

    Returns:
        The exception, for the caller to raise (``raise ... from None``).
    """
    return DatasetUnavailable(
        f"{dataset} is unavailable: {reason}. Expected a folder holding {expected}. "
        f"Point at it with `python -m harness --data-dir DIR` or the {env_var} environment variable."
    )


def find_file(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` or ``folder/name.gz``, whichever exists, else ``None``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def first_folder(folders: Iterable[Path], required: Sequence[str]) -> Path | None:
    """Return the first existing folder holding every file in ``required`` (``.gz`` allowed)."""
    for folder in folders:
        if folder.is_dir() and all(find_file(folder, name) for name in required):
            return folder
    return None


def read_bytes(path: Path) -> bytes:
    """Read a file, gunzipping it when its name ends in ``.gz``.

    Raises:
        CorruptDataFile: The gzip stream is damaged or truncated.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as error:
        raise CorruptDataFile(f"{path}: cannot read ({error})") from None


def parse_idx(raw: bytes, label: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an IDX file (the MNIST format).

    Layout: two zero bytes, a type code, the number of dimensions ``d``, ``d``
    big-endian uint32 sizes, then the values in C order, big-endian.

    Args:
        raw: The whole (uncompressed) file.
        label: Name used in error messages, typically the path.

    Returns:
        The array with the header's shape, in native byte order.

    Raises:
        CorruptDataFile: Bad magic number, unknown type code, or a data length
            that does not match the header's sizes.
    """
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise CorruptDataFile(f"{label}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataFile(f"{label}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise CorruptDataFile(
            f"{label}: IDX header says shape {shape} ({expected} data bytes) but {len(raw) - header} follow"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped (``.gz``) or not; see :func:`parse_idx`.

    Raises:
        CorruptDataFile: The file is damaged; the message names it.
    """
    path = Path(path)
    return parse_idx(read_bytes(path), str(path))


def md5(path: Path) -> str:
    """Hex md5 of a file's bytes as stored (compressed, if gzipped)."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def scale_uint8(x: np.ndarray) -> np.ndarray:
    """Map uint8 pixels 0..255 to float32 in [0, 1]."""
    return (np.asarray(x, np.float32) / 255.0).astype(np.float32)


def stratified_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into train and validation, stratified by label, with :data:`SPLIT_SEED`.

    Args:
        x: Inputs, shape ``(n, ...)``.
        y: Integer labels, shape ``(n,)``.
        val_fraction: Share of the examples kept for validation.

    Returns:
        ``(x_train, y_train, x_val, y_val)``.
    """
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=val_fraction, stratify=y, random_state=SPLIT_SEED)
    return x_train, y_train, x_val, y_val


def labels(y: np.ndarray, num_classes: int, label: str) -> np.ndarray:
    """Return ``y`` flattened to int64, checking every value is a class id.

    Raises:
        CorruptDataFile: A label lies outside ``0 .. num_classes - 1``.
    """
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise CorruptDataFile(f"{label}: labels outside 0..{num_classes - 1} (min {y.min()}, max {y.max()})")
    return y


def check_pair(x: np.ndarray, y: np.ndarray, sample_shape: tuple[int, ...], label: str) -> None:
    """Check inputs have ``sample_shape`` and as many rows as ``y``.

    Raises:
        CorruptDataFile: Shapes disagree; the message names ``label``.
    """
    if x.shape[1:] != sample_shape or len(x) != len(y):
        raise CorruptDataFile(
            f"{label}: expected inputs (n, {', '.join(map(str, sample_shape))}) and n labels, "
            f"got inputs {x.shape} and {len(y)} labels"
        )


def download(dataset: str, name: str, loader: Callable, expected: str, env_var: str):
    """Call a ``keras.datasets`` loader; any failure becomes one DatasetUnavailable.

    Args:
        dataset: Name used in the message ("MNIST").
        name: How the loader is called, for the message ("keras.datasets.mnist.load_data()").
        loader: The loader itself.
        expected: The files a local folder must hold.
        env_var: The environment variable naming such a folder.

    Raises:
        DatasetUnavailable: the loader failed (offline, for example); the
            message names the files to provide and how; no chained traceback.
    """
    try:
        return loader()
    except Exception as error:  # any download failure means "unavailable"
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        reason = f"no folder was given and {name} failed ({type(error).__name__}: {detail})"
        raise unavailable(dataset, reason, expected, env_var) from None
