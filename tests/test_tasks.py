"""Tests of the tasks package: registry, loaders (on real and hand-made files) and models."""

import gzip
import pickle
import struct
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import tasks
from tasks import TASKS, DatasetUnavailable, get_task
from tasks._utils import CorruptDataFile, parse_idx, read_idx
from tasks.cifar10 import read_batch

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist"
MNIST_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    """Tests decide themselves where data come from; a user's env vars must not leak in."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.delenv("CIFAR10_DIR", raising=False)


def _fail_download(*args, **kwargs):
    raise Exception("URL fetch failure: no network in tests")


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


# --------------------------------------------------------------------------- registry


def test_all_tasks_registered():
    assert {"digits", "mnist", "cifar10"} <= set(TASKS.names())
    for name in ("digits", "mnist", "cifar10"):
        task = get_task(name)
        assert isinstance(task, tasks.Task)
        assert task.name == name
        assert task.default_model in task.models


def test_unknown_task_lists_available():
    with pytest.raises(ValueError, match="Unknown task 'nope'") as error:
        get_task("nope")
    for name in ("digits", "mnist", "cifar10"):
        assert name in str(error.value)


def test_unknown_model_lists_models():
    with pytest.raises(ValueError, match="Unknown model 'resnet'") as error:
        get_task("mnist").build_model("resnet", (28, 28, 1))
    assert "'cnn'" in str(error.value) and "'mlp'" in str(error.value)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return get_task("digits").load()


def test_digits_shapes_and_dtypes(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_val.shape == (360, 64)
    assert digits.y_train.shape == (1437,) and digits.y_val.shape == (360,)
    assert digits.x_train.dtype == np.float32 and digits.x_val.dtype == np.float32
    assert np.issubdtype(digits.y_train.dtype, np.integer)
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() == 1.0
    assert set(np.unique(digits.y_val)) == set(range(10))
    assert digits.info["n_train"] == 1437 and digits.info["n_val"] == 360
    assert "random_state=0" in digits.info["split"] and "source" in digits.info


def test_digits_deterministic_and_disjoint(digits):
    again = get_task("digits").load()
    np.testing.assert_array_equal(digits.x_train, again.x_train)
    np.testing.assert_array_equal(digits.y_val, again.y_val)
    train, val = _rows(digits.x_train), _rows(digits.x_val)
    assert not train & val
    assert train | val == _rows((load_digits().data / 16).astype(np.float32))


# --------------------------------------------------------------------------- IDX parser


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = False) -> Path:
    raw = _idx_bytes(array, code)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_uint8(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    path = _write_idx(tmp_path / "imgs-idx3-ubyte", images, gz=gz)
    out = read_idx(path)
    assert out.shape == (5, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_idx_big_endian_int32():
    values = np.array([1, 256, -5, 2**30], dtype=np.int32)
    out = parse_idx(_idx_bytes(values, code=0x0C))
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


def test_idx_bad_magic_is_clear(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + bytes(3))
    with pytest.raises(CorruptDataFile, match="bad magic number") as error:
        read_idx(path)
    assert str(path) in str(error.value)
    with pytest.raises(CorruptDataFile, match="bad magic number"):
        parse_idx(b"\x00\x00\x42\x01" + struct.pack(">I", 3) + bytes(3))  # unknown type code


def test_idx_count_mismatch_is_clear():
    raw = _idx_bytes(np.zeros((4, 2), np.uint8))
    with pytest.raises(CorruptDataFile, match=r"header says shape \(4, 2\)"):
        parse_idx(raw[:-1])
    with pytest.raises(CorruptDataFile, match="truncated IDX header"):
        parse_idx(raw[:6])


def test_truncated_gzip_is_clear(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(100, dtype=np.uint8)))[:-12])
    with pytest.raises(CorruptDataFile, match="cannot read"):
        read_idx(path)


# --------------------------------------------------------------------------- MNIST on the real t10k files


@pytest.fixture(scope="module")
def real_mnist():
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test split not found: put t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                    f"(MNIST's official test files, md5 in MNIST_MD5 of this file) in {SHARED_MNIST}")
    return get_task("mnist").load(str(SHARED_MNIST))


def test_real_mnist_t10k_is_split(real_mnist):
    data = real_mnist
    assert data.x_train.shape == (8000, 28, 28, 1) and data.x_val.shape == (2000, 28, 28, 1)
    assert data.y_train.shape == (8000,) and data.y_val.shape == (2000,)
    assert "only the t10k test split was found" in data.info["split"]
    assert "8000/2000" in data.info["split"] and "fixed seed" in data.info["split"]
    assert data.info["md5"] == MNIST_MD5
    assert data.info["source"] == str(SHARED_MNIST.resolve())


def test_real_mnist_values(real_mnist):
    data = real_mnist
    assert data.x_train.dtype == np.float32
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert set(np.unique(data.y_train)) == set(range(10)) == set(np.unique(data.y_val))
    train_share = np.bincount(data.y_train, minlength=10) / 8000
    val_share = np.bincount(data.y_val, minlength=10) / 2000
    np.testing.assert_allclose(train_share, val_share, atol=0.002)  # stratified
    assert not _rows(data.x_train) & _rows(data.x_val)  # disjoint


@pytest.mark.slow
def test_real_mnist_deterministic(real_mnist, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(SHARED_MNIST))  # same files through the env var
    again = get_task("mnist").load()
    np.testing.assert_array_equal(real_mnist.x_train, again.x_train)
    np.testing.assert_array_equal(real_mnist.y_val, again.y_val)


# --------------------------------------------------------------------------- MNIST on hand-made folders


def _tiny_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


def test_mnist_full_idx_folder_uses_official_split(tmp_path):
    (xtr, ytr), (xte, yte) = _tiny_mnist(30, 1), _tiny_mnist(20, 2)
    for name, array in zip(IDX_NAMES, (xtr, ytr, xte, yte), strict=True):
        _write_idx(tmp_path / name, array, gz=name.startswith("train"))  # a mix of .gz and plain
    data = get_task("mnist").load(str(tmp_path))
    assert data.x_train.shape == (30, 28, 28, 1) and data.x_val.shape == (20, 28, 28, 1)
    np.testing.assert_allclose(data.x_val[..., 0], xte / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, ytr)
    assert data.info["split"].startswith("official")


def test_mnist_npz_folder(tmp_path):
    (xtr, ytr), (xte, yte) = _tiny_mnist(30, 1), _tiny_mnist(20, 2)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    data = get_task("mnist").load(str(tmp_path))
    assert data.x_train.shape == (30, 28, 28, 1) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train[..., 0], xtr / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_val, yte)
    assert data.info["source"].endswith("mnist.npz")


@pytest.mark.parametrize("content", [b"not a zip", None])
def test_mnist_bad_npz_is_corrupt(tmp_path, content):
    if content is None:  # a valid npz lacking the keys
        np.savez(tmp_path / "mnist.npz", images=np.zeros(3))
    else:
        (tmp_path / "mnist.npz").write_bytes(content)
    with pytest.raises(CorruptDataFile, match="mnist.npz"):
        get_task("mnist").load(str(tmp_path))


def test_mnist_subfolder_of_data_dir(tmp_path):
    (xtr, ytr), (xte, yte) = _tiny_mnist(30, 1), _tiny_mnist(20, 2)
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert get_task("mnist").load(str(tmp_path)).x_val.shape == (20, 28, 28, 1)


def test_mnist_mismatched_counts_are_corrupt(tmp_path):
    _write_idx(tmp_path / IDX_NAMES[2], _tiny_mnist(20, 2)[0])
    _write_idx(tmp_path / IDX_NAMES[3], np.zeros(19, np.uint8))
    with pytest.raises(CorruptDataFile, match="20, 28, 28.*19 labels"):
        get_task("mnist").load(str(tmp_path))


def _assert_mnist_message(message: str) -> None:
    for expected in ("mnist.npz", *IDX_NAMES, "MNIST_DIR", "--data-dir"):
        assert expected in message


def test_mnist_empty_folder_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailable) as error:
        get_task("mnist").load(str(tmp_path))
    _assert_mnist_message(str(error.value))
    assert "holds none of them" in str(error.value)


def test_mnist_missing_folder_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _fail_download)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DatasetUnavailable, match="does not exist") as error:
        get_task("mnist").load()
    assert "MNIST_DIR environment variable" in str(error.value)


def test_mnist_failed_download_unavailable(monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _fail_download)
    with pytest.raises(DatasetUnavailable, match="load_data\\(\\) failed") as error:
        get_task("mnist").load()
    _assert_mnist_message(str(error.value))
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_mnist_download_path_is_used(monkeypatch):
    fake = _tiny_mnist(30, 1), _tiny_mnist(20, 2)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: fake)
    data = get_task("mnist").load()
    assert data.x_train.shape == (30, 28, 28, 1) and data.info["source"].startswith("keras.datasets")


# --------------------------------------------------------------------------- CIFAR-10 in the original format

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _write_cifar(parent: Path, n: int = 3) -> Path:
    """Write a tiny cifar-10-batches-py folder; image k of batch b has label (b + k) % 10."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for b, name in enumerate(CIFAR_BATCHES):
        batch = {
            b"batch_label": f"batch {b}".encode(),
            b"labels": [(b + k) % 10 for k in range(n)],
            b"data": rng.integers(0, 250, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{b}_{k}.png".encode() for k in range(n)],
        }
        batch[b"data"][0, 0 * 1024 + 5 * 32 + 7] = 255  # red at row 5, column 7 of image 0
        batch[b"data"][0, 2 * 1024 + 31 * 32 + 0] = 251  # blue at row 31, column 0
        batch[b"data"][1, 1 * 1024 + 0 * 32 + 30] = 252  # green at row 0, column 30 of image 1
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_cifar_loads_real_format(tmp_path):
    folder = _write_cifar(tmp_path)
    data = get_task("cifar10").load(str(folder))
    assert data.x_train.shape == (15, 32, 32, 3) and data.x_val.shape == (3, 32, 32, 3)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    np.testing.assert_array_equal(data.y_train, [(b + k) % 10 for b in range(5) for k in range(3)])
    np.testing.assert_array_equal(data.y_val, [5, 6, 7])
    assert data.info["n_train"] == 15 and data.info["source"] == str(folder.resolve())


def test_cifar_transpose_puts_pixels_in_place(tmp_path):
    x, y = read_batch(_write_cifar(tmp_path) / "test_batch")
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    assert x[0, 5, 7, 0] == 255 and x[0, 31, 0, 2] == 251 and x[1, 0, 30, 1] == 252
    data = get_task("cifar10").load(str(tmp_path))  # the parent folder works too
    for k in range(5):  # every data batch has the marks; batches are concatenated in order
        assert data.x_train[3 * k, 5, 7, 0] == 1.0
        assert data.x_train[3 * k + 1, 0, 30, 1] == pytest.approx(252 / 255)
    assert data.x_val[0, 31, 0, 2] == pytest.approx(251 / 255)


def test_cifar_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(_write_cifar(tmp_path)))
    assert get_task("cifar10").load().x_val.shape == (3, 32, 32, 3)


def test_cifar_empty_folder_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailable) as error:
        get_task("cifar10").load(str(tmp_path))
    for expected in ("data_batch_1", "data_batch_5", "test_batch", "cifar-10-batches-py", "CIFAR10_DIR", "--data-dir"):
        assert expected in str(error.value)


def test_cifar_failed_download_unavailable(monkeypatch):
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", _fail_download)
    with pytest.raises(DatasetUnavailable, match="CIFAR10_DIR") as error:
        get_task("cifar10").load()
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_cifar_refuses_code_in_pickle(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(CorruptDataFile, match="refusing to load global"):
        read_batch(path)


def test_cifar_wrong_row_length_is_corrupt(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(CorruptDataFile, match="3072"):
        read_batch(path)


# --------------------------------------------------------------------------- models

MODELS = [
    ("digits", "mlp", (64,)),
    ("mnist", "mlp", (28, 28, 1)),
    ("mnist", "cnn", (28, 28, 1)),
    ("cifar10", "cnn", (32, 32, 3)),
]


@pytest.mark.parametrize(("task_name", "model_name", "input_shape"), MODELS)
def test_models_build_and_run(task_name, model_name, input_shape):
    task = get_task(task_name)
    model = task.build_model(model_name, input_shape)
    assert model.built and model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, 10)
    assert model.layers[-1].get_config()["activation"] == "linear"  # logits, no softmax
    x = np.random.default_rng(0).random((4, *input_shape), dtype=np.float32)
    logits = model(x, training=False)
    assert tuple(logits.shape) == (4, 10) and np.all(np.isfinite(np.asarray(logits)))
    loss = task.loss()(np.arange(4), logits)
    assert np.isfinite(float(loss))
