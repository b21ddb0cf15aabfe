"""GraSP against an explicit Hessian: w * (H g), the negative of the paper's score S(-w) = -w * Hg."""

import numpy as np
import pytest
import tensorflow as tf

from aggregations import get_aggregation
from harness.thresholding.threshold import Thresholder
from measures import make_measure
from tests.helpers import LOSS_CASES, loss_case, mean_grads, per_example_grads


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def explicit_hessian(ctx):
    """Hessian (P, P) of the mean Keras loss over all concatenated prunable variables."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = ctx.loss(ctx.y, ctx.model(ctx.x, training=False))
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(value, ctx.variables)], 0)
    blocks = outer.jacobian(grad, ctx.variables)
    return tf.concat([tf.reshape(b, [grad.shape[0], -1]) for b in blocks], 1).numpy().astype(np.float64)


def reference(ctx, loss_fn):
    g = flat(mean_grads(per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn)))
    return flat([v.numpy() for v in ctx.variables]) * (explicit_hessian(ctx) @ g)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_grasp_matches_explicit_hessian_times_gradient(name):
    ctx, loss_fn = loss_case(name)
    scores = make_measure("grasp").score(ctx)
    assert all(s.dtype == np.float32 and s.shape == v.shape for s, v in zip(scores, ctx.variables, strict=True))
    expected = reference(ctx, loss_fn)
    np.testing.assert_allclose(flat(scores), expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert (expected < 0).any() and (expected > 0).any()  # signed: the sign carries the criterion


def test_least_important_first_is_the_papers_removal_of_the_highest_s():
    ctx, loss_fn = loss_case("dense_ce")
    paper_score = -reference(ctx, loss_fn)  # S(-w) = -w * Hg; GraSP removes the highest
    items = get_aggregation("weight")(ctx.params, make_measure("grasp").score(ctx))
    removed = flat(Thresholder(items, "global").masks(0.3))
    k = int(round(0.3 * removed.size))
    assert removed.sum() == k
    assert set(np.flatnonzero(removed)) == set(np.argsort(-paper_score)[:k])
