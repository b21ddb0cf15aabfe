"""SNIP against a per-example GradientTape loop: |g * w| with g the gradient of the mean loss."""

import numpy as np
import pytest

from measures import make_measure
from tests.helpers import LOSS_CASES, loss_case, mean_grads, per_example_grads


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_snip_matches_loop(name):
    ctx, loss_fn = loss_case(name)
    g = mean_grads(per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn))
    scores = make_measure("snip").score(ctx)
    for s, grad, v in zip(scores, g, ctx.variables, strict=True):
        assert s.dtype == np.float32 and s.shape == v.shape
        np.testing.assert_allclose(s, np.abs(grad * v.numpy()), rtol=1e-4, atol=1e-7)


def test_snip_is_the_gradient_of_the_mean_not_a_mean_of_magnitudes():
    ctx, loss_fn = loss_case("dense_ce")
    grads = per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn)
    mean_abs = np.abs(np.mean([g[0] for g in grads], axis=0) * ctx.variables[0].numpy())
    per_example_abs = np.mean([np.abs(g[0] * ctx.variables[0].numpy()) for g in grads], axis=0)
    scores = make_measure("snip").score(ctx)[0]
    np.testing.assert_allclose(scores, mean_abs, rtol=1e-4, atol=1e-7)
    assert np.linalg.norm(scores - per_example_abs) > 0.1 * np.linalg.norm(per_example_abs)


def test_takes_no_options():
    with pytest.raises(ValueError, match=r"^Measure 'snip' takes no options. Received: 'snip:batch=4'$"):
        make_measure("snip:batch=4")
