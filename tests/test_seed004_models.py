"""Seed 004's fully connected MNIST models (seed004_fc, seed004_fc_dropout) as plugins."""

import keras
import numpy as np
import pytest

from harness.cli import catalog
from measures import prunable_params
from tasks import get_task
from tasks._dense import dense_stack


def build(name):
    keras.utils.set_random_seed(0)
    return get_task("mnist").build_model(name, (28, 28, 1))


def test_listed_with_the_mnist_task():
    models = {p.name: p for p in catalog.plugins("task")}["mnist"].attributes["models"]
    assert [m for m in models if m.startswith("seed004")] == ["seed004_fc", "seed004_fc_dropout"]
    assert models == list(get_task("mnist").models)  # the source-read catalogue is the live registry


def test_seed004_fc_is_784_60_32_32_10_with_about_50k_weights():
    model = build("seed004_fc")
    kernels = [p.variable for p in prunable_params(model, "kernels")]
    assert [tuple(v.shape) for v in kernels] == [(784, 60), (60, 32), (32, 32), (32, 10)]
    assert sum(int(np.prod(v.shape)) for v in kernels) == 784 * 60 + 60 * 32 + 32 * 32 + 32 * 10 == 50_304
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.get_config()["activation"] for layer in model.layers if isinstance(layer, keras.layers.Dense)] == \
        ["relu", "relu", "relu", "linear"]


def test_dropout_model_prunes_the_same_variables_and_drops_only_in_training():
    plain, dropout = build("seed004_fc"), build("seed004_fc_dropout")
    assert [d.rate for d in dropout.layers if isinstance(d, keras.layers.Dropout)] == [0.2, 0.2, 0.2]
    names = [[(p.layer.name, tuple(p.variable.shape)) for p in prunable_params(m, "kernels")] for m in (plain, dropout)]
    assert names[0] == names[1]
    dropout.set_weights(plain.get_weights())
    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(dropout(x, training=False), plain(x, training=False), rtol=1e-6, atol=1e-6)
    assert not np.allclose(dropout(x, training=True), plain(x, training=False), atol=1e-4)


@pytest.mark.parametrize("rate", [1.0, -0.1])
def test_dense_stack_refuses_a_dropout_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=f"Received: dropout={rate}"):
        dense_stack((4,), 2, (3,), dropout=rate, name="bad")
