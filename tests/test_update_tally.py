"""update_tally against a numpy tally of the same optimizer steps (seed 002)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import compiled_step, random_data, run_steps, tiny_conv_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)




def setup(optimizer):
    model = tiny_conv_model(seed=2)
    x, y = random_data(model, n=12, seed=5)
    params = prunable_params(model, "all")
    measure = make_measure("update_tally")
    measure.build(params)
    step = compiled_step(model, measure, optimizer, [p.variable for p in params])
    return MeasureContext(model, params, x, y, LOSS), measure, step


def manual_tally(records):
    return [sum(np.abs(a[k].astype(np.float64) - b[k]) for _, b, a in records) for k in range(len(records[0][1]))]


@pytest.mark.slow
def test_matches_numpy_tally_across_epochs():
    ctx, measure, step = setup(keras.optimizers.SGD(0.1, momentum=0.9))
    records = run_steps(step, ctx.x, ctx.y, 3)
    first = measure.score(ctx)
    records += run_steps(step, ctx.x, ctx.y, 4)
    weights = [v.numpy().copy() for v in ctx.variables]
    second = measure.score(ctx)
    for score, expected, p in zip(first, manual_tally(records[:3]), ctx.params, strict=True):
        assert score.dtype == np.float32 and score.shape == p.shape
        np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-8)
    for score, expected, old in zip(second, manual_tally(records), first, strict=True):
        np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-8)
        assert np.all(score >= old) and np.all(np.isfinite(score))
    assert sum(float((s - o).sum()) for s, o in zip(second, first, strict=True)) > 0
    for old, v in zip(weights, ctx.variables, strict=True):
        assert np.array_equal(old, v.numpy())


@pytest.mark.slow
def test_state_holds_the_tallies():
    ctx, measure, step = setup(keras.optimizers.Adam(0.01))
    run_steps(step, ctx.x, ctx.y, 2)
    state = measure.state()
    assert len(state) == len(ctx.params) and all(isinstance(v, tf.Variable) for v in state)
    for variable, score in zip(state, measure.score(ctx), strict=True):
        np.testing.assert_array_equal(variable.numpy(), score)


def test_score_needs_build_and_matching_params():
    model = tiny_conv_model()
    x, y = random_data(model, n=4)
    ctx = MeasureContext(model, prunable_params(model), x, y, LOSS)
    measure = make_measure("update_tally")
    with pytest.raises(RuntimeError, match="build"):
        measure.score(ctx)
    measure.build(prunable_params(model, "all"))
    with pytest.raises(ValueError, match="build"):
        measure.score(ctx)
    with pytest.raises(ValueError, match="Received"):
        make_measure("update_tally:groups=2")
