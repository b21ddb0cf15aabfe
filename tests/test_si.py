"""Synaptic Intelligence against numpy from the same optimizer steps (Zenke et al. 2017)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from measures.si import SynapticIntelligence
from tests.helpers import compiled_step, random_data, run_steps, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
LR = 0.01



def setup(spec="si", optimizer=None):
    model = tiny_dense_model(seed=4)
    x, y = random_data(model, n=12, seed=6)
    params = prunable_params(model, "all")
    theta0 = [p.variable.numpy().copy() for p in params]
    measure = make_measure(spec)
    measure.build(params)
    step = compiled_step(model, measure, optimizer or keras.optimizers.Adam(LR), [p.variable for p in params])
    return MeasureContext(model, params, x, y, LOSS), measure, step, theta0


def omega_si(records, k):
    """The paper's path integral: -g * delta theta, with the real gradient g."""
    return sum(-g[k].astype(np.float64) * (a[k] - b[k]) for g, b, a in records)


def omega_wrong(records, k):
    """What one gets by recovering g from the update as delta theta / lr: right only for plain SGD."""
    return sum((a[k].astype(np.float64) - b[k]) ** 2 / LR for _, b, a in records)


def big_omega(omega, theta0, variable, xi):
    return np.maximum(omega, 0) / ((variable.numpy().astype(np.float64) - theta0) ** 2 + xi)


def check(scores, records, ctx, theta0, xi, omega=omega_si):
    for k, (score, p) in enumerate(zip(scores, ctx.params, strict=True)):
        assert score.dtype == np.float32 and score.shape == p.shape and np.all(np.isfinite(score))
        assert np.all(score >= 0)
        expected = big_omega(omega(records, k), theta0[k], p.variable, xi)
        np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-6, err_msg=p.name)


@pytest.mark.slow
def test_matches_numpy_across_epochs_and_leaves_weights():
    ctx, measure, step, theta0 = setup("si:xi=0.01")
    records = run_steps(step, ctx.x, ctx.y, 3)
    check(measure.score(ctx), records, ctx, theta0, 0.01)
    records += run_steps(step, ctx.x, ctx.y, 4)
    weights = [v.numpy().copy() for v in ctx.variables]
    check(measure.score(ctx), records, ctx, theta0, 0.01)
    for old, v in zip(weights, ctx.variables, strict=True):
        assert np.array_equal(old, v.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", [keras.optimizers.Adam, lambda lr: keras.optimizers.SGD(lr, momentum=0.9)])
def test_uses_the_real_gradient(optimizer):
    ctx, measure, step, theta0 = setup(optimizer=optimizer(LR))
    records = run_steps(step, ctx.x, ctx.y, 5)
    scores = measure.score(ctx)
    check(scores, records, ctx, theta0, 1e-3)
    with pytest.raises(AssertionError):
        check(scores, records, ctx, theta0, 1e-3, omega=omega_wrong)


def test_state_holds_omega_and_theta0():
    ctx, measure, step, theta0 = setup()
    records = run_steps(step, ctx.x, ctx.y, 2)
    state = measure.state()
    n = len(ctx.params)
    assert len(state) == 2 * n and all(isinstance(v, tf.Variable) for v in state)
    for k in range(n):
        np.testing.assert_allclose(state[k].numpy(), omega_si(records, k), rtol=1e-5, atol=1e-8)
        np.testing.assert_array_equal(state[n + k].numpy(), theta0[k])


@pytest.mark.parametrize("xi", [0, -1, -1e-3, math.nan, math.inf, "big", True, None])
def test_xi_validation(xi):
    with pytest.raises(ValueError, match="Received: xi="):
        SynapticIntelligence(xi=xi)


def test_spec_options():
    assert make_measure("si").xi == 1e-3 and make_measure("si:xi=1").xi == 1.0
    with pytest.raises(ValueError, match="Received: xi=-1"):
        make_measure("si:xi=-1")
    with pytest.raises(ValueError, match="Received"):
        make_measure("si:c=1")
    with pytest.raises(RuntimeError, match="build"):
        make_measure("si").score(None)
