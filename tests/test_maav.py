"""MAAV against the seed's literal per-datapoint loop (seeds 000/001)."""

import keras
import numpy as np
import pytest

from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def context(model, n=10, batch_size=4, prunable="all", seed=3):
    x, y = random_data(model, n=n, seed=seed)
    return MeasureContext(model, prunable_params(model, prunable), x, y, LOSS, batch_size=batch_size)


def inputs_one_by_one(model, x):
    """Seed step 4: pass each datapoint through the layers one at a time, recording each layer's input."""
    records = {}
    for example in x:
        h = example[None]
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                records.setdefault(layer.name, []).append(np.asarray(h)[0])
                h = layer(h)
    return {name: np.stack(values) for name, values in records.items()}


def dense_reference(inputs, w):
    """Steps 1-3 and 9: for every datapoint (and position), add |a_i * W_ij| to a stats matrix; divide by the count."""
    rows = inputs.reshape(len(inputs), -1, w.shape[0])
    stats = np.zeros(w.shape)
    for example in rows:
        for a in example:
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    stats[i, j] += abs(a[i] * w[i, j])
    return stats / (rows.shape[0] * rows.shape[1])


def geometry(size, k, stride, rate, padding):
    """Output length and leading zero padding, as TensorFlow defines 'valid' and 'same'."""
    span = (k - 1) * rate + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def conv2d_reference(inputs, w, strides, rates, padding, groups):
    """Mean over datapoints and output positions of |input under tap (p, q, c) * W[p, q, c, o]|."""
    kh, kw, cin, cout = w.shape
    (oh, top), (ow, left) = (geometry(inputs.shape[1 + ax], w.shape[ax], strides[ax], rates[ax], padding)
                             for ax in (0, 1))
    stats = np.zeros(w.shape)
    for a in inputs:
        for i in range(oh):
            for j in range(ow):
                for p in range(kh):
                    for q in range(kw):
                        r, s = i * strides[0] + p * rates[0] - top, j * strides[1] + q * rates[1] - left
                        inside = 0 <= r < a.shape[0] and 0 <= s < a.shape[1]
                        for c in range(cin):
                            for o in range(cout):
                                value = a[r, s, (o // (cout // groups)) * cin + c] if inside else 0.0  # zero padding
                                stats[p, q, c, o] += abs(value * w[p, q, c, o])
    return stats / (len(inputs) * oh * ow)


def conv_reference(layer, inputs):
    w, cfg = layer.kernel.numpy(), layer.get_config()
    if cfg["data_format"] == "channels_first":
        inputs = np.moveaxis(inputs, 1, -1)
    if isinstance(layer, keras.layers.Conv2D):
        return conv2d_reference(inputs, w, cfg["strides"], cfg["dilation_rate"], cfg["padding"], cfg["groups"])
    padding, (k,), (rate,) = cfg["padding"], cfg["kernel_size"], cfg["dilation_rate"]
    if padding == "causal":
        inputs, padding = np.pad(inputs, [(0, 0), ((k - 1) * rate, 0), (0, 0)]), "valid"
    stats = conv2d_reference(inputs[:, None], w[None], (1, *cfg["strides"]), (1, rate), padding, cfg["groups"])
    return stats[0]


def reference(ctx):
    recorded = inputs_one_by_one(ctx.model, ctx.x)
    expected = []
    for p in ctx.params:
        value = np.abs(p.variable.numpy())
        if p.role == "kernel" and p.kind == "dense":
            value = dense_reference(recorded[p.layer.name], value)
        elif p.role == "kernel" and p.kind == "conv":
            value = conv_reference(p.layer, recorded[p.layer.name])
        expected.append(value)
    return expected


def head(shape, layer):
    return keras.Sequential([keras.Input(shape), layer, keras.layers.Flatten(), keras.layers.Dense(3)])


CONVS = {
    "valid": lambda: head((7, 6, 2), keras.layers.Conv2D(3, 3, padding="valid")),
    "same": lambda: head((7, 6, 2), keras.layers.Conv2D(3, 3, padding="same")),
    "stride2-valid": lambda: head((7, 6, 2), keras.layers.Conv2D(3, 3, strides=2, padding="valid")),
    "stride2-same": lambda: head((7, 6, 2), keras.layers.Conv2D(3, (2, 3), strides=2, padding="same")),
    "dilation2-same": lambda: head((7, 6, 2), keras.layers.Conv2D(3, (3, 2), dilation_rate=2, padding="same")),
    "dilation2-valid": lambda: head((7, 6, 2), keras.layers.Conv2D(2, 2, dilation_rate=2, padding="valid")),
    "groups2": lambda: head((7, 6, 4), keras.layers.Conv2D(4, 3, padding="same", groups=2)),
    "channels_first": lambda: head((2, 7, 6), keras.layers.Conv2D(3, 3, 2, "same", "channels_first")),
    "conv1d-valid": lambda: head((9, 2), keras.layers.Conv1D(3, 3, padding="valid")),
    "conv1d-same-stride2": lambda: head((9, 2), keras.layers.Conv1D(3, 3, strides=2, padding="same")),
    "conv1d-causal-dilation2": lambda: head((9, 2), keras.layers.Conv1D(3, 3, dilation_rate=2, padding="causal")),
    "tiny_conv": tiny_conv_model,
    "tiny_dense": tiny_dense_model,
    "dense-on-sequence": lambda: head((4, 3), keras.layers.Dense(2)),
    "batchnorm-other": lambda: head((5,), keras.layers.BatchNormalization()),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONVS))
def test_matches_seed_loop(name):
    keras.utils.set_random_seed(7)
    ctx = context(CONVS[name]())
    scores = make_measure("maav").score(ctx)
    for score, expected, p in zip(scores, reference(ctx), ctx.params, strict=True):
        assert score.dtype == np.float32 and score.shape == p.shape
        np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-7, err_msg=p.name)


@pytest.mark.slow
def test_batch_size_does_not_matter_and_weights_untouched():
    ctx = context(tiny_conv_model(), n=11, batch_size=3)
    before = [v.numpy().copy() for v in ctx.variables]
    chunked = make_measure("maav").score(ctx)
    ctx.batch_size = 256
    whole = make_measure("maav").score(ctx)
    for a, b in zip(chunked, whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert np.all(np.isfinite(a)) and np.all(a >= 0)
    for old, v in zip(before, ctx.variables, strict=True):
        assert np.array_equal(old, v.numpy())


def test_subclassed_model_is_refused():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.zeros((1, 4), np.float32))
    ctx = MeasureContext(model, prunable_params(model), np.ones((2, 4), np.float32), np.zeros(2), LOSS)
    with pytest.raises(ValueError, match="functional or Sequential"):
        make_measure("maav").score(ctx)


def test_unsupported_conv_and_shared_layers_are_refused():
    with pytest.raises(ValueError, match="Conv1D and Conv2D"):
        make_measure("maav").score(context(head((3, 3, 3, 1), keras.layers.Conv3D(2, 2)), n=2))
    shared = keras.layers.Dense(4)
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="more than once"):
        make_measure("maav").score(context(keras.Model(inputs, shared(shared(inputs))), n=2))


def test_takes_no_options():
    with pytest.raises(ValueError, match="Received"):
        make_measure("maav:xi=1")
