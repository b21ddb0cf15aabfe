"""First-order Taylor (g * w)^2 against per-example GradientTape loops, per example and per minibatch."""

import numpy as np
import pytest

from measures import make_measure
from measures.taylor import Taylor
from tests.helpers import LOSS_CASES, loss_case, mean_grads, per_example_grads

TOL = dict(rtol=1e-4, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_per_example_matches_loop(name):
    ctx, loss_fn = loss_case(name)
    grads = per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn)
    scores = make_measure("taylor:accumulation=example").score(ctx)
    for k, (s, v) in enumerate(zip(scores, ctx.variables, strict=True)):
        expected = np.mean([(g[k] * v.numpy()) ** 2 for g in grads], axis=0)
        assert s.dtype == np.float32 and s.shape == v.shape
        np.testing.assert_allclose(s, expected, **TOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dense_ce", "conv_ce"])
def test_per_batch_matches_loop_over_seeded_batches(name):
    ctx, loss_fn = loss_case(name, n=20)
    grads = per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn)
    order = np.random.default_rng(ctx.seed).permutation(20)
    blocks = [order[i:i + 6] for i in range(0, 20, 6)]  # 6, 6, 6 and a last batch of 2, weighted by its share
    scores = make_measure("taylor:batch_size=6").score(ctx)
    for k, (s, v) in enumerate(zip(scores, ctx.variables, strict=True)):
        expected = sum(len(b) / 20 * (mean_grads([grads[n] for n in b])[k] * v.numpy()) ** 2 for b in blocks)
        np.testing.assert_allclose(s, expected, **TOL)


@pytest.mark.slow
def test_batch_size_interpolates_between_example_and_snip_squared():
    ctx, _ = loss_case("dense_ce", n=12)
    one = make_measure("taylor:batch_size=1").score(ctx)
    example = make_measure("taylor:accumulation=example").score(ctx)
    whole = make_measure("taylor:batch_size=64").score(ctx)
    snip = make_measure("snip").score(ctx)
    for a, b, c, d in zip(one, example, whole, snip, strict=True):
        np.testing.assert_allclose(a, b, **TOL)
        np.testing.assert_allclose(c, d.astype(np.float64) ** 2, rtol=1e-4, atol=1e-9)
        assert np.all(b >= c - 1e-7)  # mean of squares >= square of the mean


@pytest.mark.parametrize("options, message", [
    ({"accumulation": "epoch"}, r"accumulation must be one of \['batch', 'example'\]. Received: accumulation='epoch'"),
    ({"batch_size": 0}, r"batch_size must be a positive integer. Received: batch_size=0"),
    ({"batch_size": 2.5}, r"Received: batch_size=2.5"),
])
def test_invalid_options_are_quoted(options, message):
    with pytest.raises(ValueError, match=message):
        Taylor(**options)
