"""Tiny models and data shared by the tests."""

import keras
import numpy as np
import tensorflow as tf

CE_LOGITS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def tiny_dense_model(seed: int = 0, n_in: int = 6, n_hidden: int = 5, n_out: int = 3) -> keras.Model:
    """Input(n_in) -> Dense(n_hidden, tanh) -> Dense(n_out) logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_in,))
    hidden = keras.layers.Dense(n_hidden, activation="tanh", bias_initializer="random_normal")(inputs)
    outputs = keras.layers.Dense(n_out, bias_initializer="random_normal")(hidden)
    return keras.Model(inputs, outputs, name="tiny_dense")


def tiny_conv_model(seed: int = 0, n_out: int = 3) -> keras.Model:
    """Input(7, 7, 2) -> Conv(3, 3x3, same) -> Conv(2, 2x2, stride 2, valid) -> Flatten -> Dense(n_out)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((7, 7, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", bias_initializer="random_normal")(inputs)
    h = keras.layers.Conv2D(2, 2, strides=2, padding="valid", activation="tanh")(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(n_out)(h)
    return keras.Model(inputs, outputs, name="tiny_conv")


def random_data(model: keras.Model, n: int = 16, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fresh standard-normal inputs and uniform class labels for ``model``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_shape[1:])).astype(np.float32)
    y = rng.integers(0, model.output_shape[-1], size=n)
    return x, y


def shared_mnist_dir():
    """The shared real MNIST test split (../shared/data/mnist beside the repo), or None."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    return folder if (folder / "t10k-images-idx3-ubyte.gz").exists() else None


def compiled_step(model, measure, optimizer, variables):
    """One training step as the harness runs it: observe() inside tf.function."""
    optimizer.build(variables)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = CE_LOGITS(yb, model(xb, training=True))
        grads = tape.gradient(loss, variables)
        before = [tf.identity(v.value) for v in variables]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        after = [tf.identity(v.value) for v in variables]
        measure.observe(grads, before, after)
        return grads, before, after

    return step


def run_steps(step, x, y, steps, batch=4):
    """Run ``steps`` steps; return numpy (grads, before, after) per step."""
    records = []
    for t in range(steps):
        rows = np.arange(t * batch, (t + 1) * batch) % len(x)
        records.append([[v.numpy() for v in values] for values in step(x[rows], y[rows])])
    return records


class Subclassed(keras.Model):
    """Dense(5, tanh) -> Dense(3) without a Keras graph: measures take their generic per-example path."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def per_example_grads(model, variables, x, y, loss_fn):
    """Brute force: one GradientTape per example; float64 gradients of ``loss_fn(y_n, f(x_n))``, [n][variable]."""
    grads = []
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            value = loss_fn(y[n:n + 1], model(x[n:n + 1], training=False))
        grads.append([g.numpy().astype(np.float64) for g in tape.gradient(value, variables)])
    return grads


def mean_grads(grads):
    """Mean over examples of per-example gradients ``[n][variable]``."""
    return [np.mean(list(g), axis=0) for g in zip(*grads)]


LOSS_CASES = {"dense_ce": (tiny_dense_model, "ce"), "conv_ce": (tiny_conv_model, "ce"),
              "dense_mse": (tiny_dense_model, "mse")}


def loss_case(name: str, n: int = 20, seed: int = 1, batch_size: int = 8):
    """A measure context on a tiny model with fresh data, and the per-example Keras loss ``loss_fn(y, out)``."""
    from measures import MeasureContext, prunable_params

    model_fn, kind = LOSS_CASES[name]
    model = model_fn(seed=0)
    x, y = random_data(model, n=n, seed=seed)
    if kind == "mse":
        y = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
        loss, loss_fn = keras.losses.MeanSquaredError(), keras.losses.mean_squared_error
    else:
        loss = CE_LOGITS
        loss_fn = lambda t, out: keras.losses.sparse_categorical_crossentropy(t, out, from_logits=True)  # noqa: E731
    ctx = MeasureContext(model, prunable_params(model, "kernels+biases"), x, y, loss, seed=0, batch_size=batch_size)
    return ctx, loss_fn


def digits_model_file(path, softmax: bool = True, n_in: int = 64, seed: int = 0, custom_module: str | None = None):
    """Save a small digits-shaped MLP (optionally ending in a softmax) as a ``.keras`` file at ``path``; return path.

    ``custom_module``: rewrite the archive so its hidden layer names a class of that (missing) module, as a model
    saved with a custom layer does.
    """
    import json
    import zipfile
    from pathlib import Path

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_in,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax" if softmax else None, name="out")(h)
    path = Path(path)
    keras.Model(inputs, outputs, name="saved_mlp").save(path)
    if custom_module is not None:
        with zipfile.ZipFile(path) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        config = json.loads(files["config.json"])
        layer = next(lay for lay in config["config"]["layers"] if lay["name"] == "fc1")
        layer.update(module=custom_module, class_name="GatedDense", registered_name="Custom>GatedDense")
        files["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in files.items():
                archive.writestr(name, content)
    return path


def model_file_bytes(**options) -> bytes:
    """The bytes of :func:`digits_model_file`, for the bad-input table."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return digits_model_file(Path(folder) / "m.keras", **options).read_bytes()
