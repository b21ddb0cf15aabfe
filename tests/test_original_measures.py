"""momentum, sign_flip and weight_change (seed 003) against numpy loops over the same SGD and Adam steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import compiled_step, random_data, run_steps, tiny_conv_model, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIMIZERS = {"sgd": lambda: keras.optimizers.SGD(0.5, momentum=0.9), "adam": lambda: keras.optimizers.Adam(0.2)}


def setup(spec, optimizer, model_fn=tiny_dense_model):
    model = model_fn(seed=3)
    x, y = random_data(model, n=12, seed=7)
    params = prunable_params(model, "all")
    measure = make_measure(spec)
    measure.build(params)
    step = compiled_step(model, measure, optimizer, [p.variable for p in params])
    return MeasureContext(model, params, x, y, LOSS), measure, step


def reference(spec, records, k):
    """The quantity by a plain loop over the recorded steps, from the very first step."""
    path = [records[0][1][k].astype(np.float64)] + [after[k].astype(np.float64) for _, _, after in records]
    if spec == "sign_flip":
        count = sum((a * b < 0).astype(float) for a, b in zip(path[:-1], path[1:]))
    elif spec == "momentum":
        updates = [b - a for a, b in zip(path[:-1], path[1:])]
        count = sum((u * v < 0).astype(float) for u, v in zip(updates[:-1], updates[1:]))
    else:
        count = sum(np.abs(b - a) for a, b in zip(path[:-1], path[1:]))
    return 1.0 / (1.0 + count)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("spec", ["sign_flip", "momentum", "weight_change"])
def test_matches_a_numpy_loop_across_epochs(spec, optimizer):
    ctx, measure, step = setup(spec, OPTIMIZERS[optimizer](), tiny_conv_model if spec == "weight_change" else
                               tiny_dense_model)
    records = run_steps(step, ctx.x, ctx.y, 4)
    first = measure.score(ctx)
    records += run_steps(step, ctx.x, ctx.y, 5)
    weights = [v.numpy().copy() for v in ctx.variables]
    scores = measure.score(ctx)
    for k, (score, p) in enumerate(zip(scores, ctx.params, strict=True)):
        assert score.dtype == np.float32 and score.shape == p.shape
        assert np.all((score > 0) & (score <= 1))
        np.testing.assert_allclose(first[k], reference(spec, records[:4], k), rtol=1e-5, err_msg=p.name)
        np.testing.assert_allclose(score, reference(spec, records, k), rtol=1e-5, err_msg=p.name)
    assert all(np.array_equal(w, v.numpy()) for w, v in zip(weights, ctx.variables, strict=True))
    counted = np.concatenate([s.ravel() for s in scores])
    assert np.any(counted < 1) and (spec == "weight_change" or np.any(counted == 1))  # the test is not vacuous


def observe_once(spec, before, after, measure=None):
    model = tiny_dense_model()
    params = prunable_params(model, "kernels")[:1]
    if measure is None:
        measure = make_measure(spec)
        measure.build(params)
    measure.observe([None], [tf.constant(before, tf.float32)], [tf.constant(after, tf.float32)])
    return measure, MeasureContext(model, params, np.zeros((1, 6), np.float32), np.zeros(1, int), LOSS)


def test_the_first_step_counts():
    """The original compared the first step against the live variable itself, so it never counted it."""
    before = np.full((6, 5), -0.5, np.float32)
    measure, ctx = observe_once("sign_flip", before, -before)
    np.testing.assert_array_equal(measure.score(ctx)[0], np.full((6, 5), 0.5, np.float32))
    measure, ctx = observe_once("momentum", before, -before)
    observe_once("momentum", -before, before, measure)  # second update reverses the first
    np.testing.assert_array_equal(measure.score(ctx)[0], np.full((6, 5), 0.5, np.float32))


def test_weight_change_uses_distance_not_signed_change():
    """Signed changes telescope and 1 / (1 + x) of them goes negative or infinite; distances do not."""
    start = np.zeros((6, 5), np.float32)
    measure, ctx = observe_once("weight_change", start, start - 3.0)
    observe_once("weight_change", start - 3.0, start - 1.0, measure)
    # the signed sum is -1, where the original's 1 / (1 + x) is infinite; the distance is |-3| + |2| = 5
    np.testing.assert_allclose(measure.score(ctx)[0], np.full((6, 5), 1 / 6), rtol=1e-6)


@pytest.mark.slow
def test_state_and_errors():
    ctx, measure, step = setup("momentum", OPTIMIZERS["adam"]())
    run_steps(step, ctx.x, ctx.y, 2)
    assert len(measure.state()) == 2 * len(ctx.params) and all(isinstance(v, tf.Variable) for v in measure.state())
    for spec in ("momentum", "sign_flip", "weight_change"):
        with pytest.raises(RuntimeError, match="build"):
            make_measure(spec).score(ctx)
        with pytest.raises(ValueError, match="takes no options|Unknown option"):
            make_measure(f"{spec}:every=2")
        built = make_measure(spec)
        built.build(ctx.params[:1])
        with pytest.raises(ValueError, match="build"):
            built.score(ctx)
