"""The harness's caches: identical keys hit, a change of any key component misses (counted, not timed).

- ``harness.thresholding.threshold._RANKINGS`` (:func:`harness.thresholding.threshold.recent_rank_order`):
  key = scores, segments, seed.
- ``Evaluator.recent`` (:func:`harness.thresholding.sweep.sweep`): key = method, prunable
  parameters, thresholds, masks, replacement values, model weights.
"""

import keras
import numpy as np
import pytest

import harness.thresholding.threshold
from aggregations import get_aggregation
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder, rank_order, recent_rank_order
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data

THRESHOLDS = [0.0, 0.3, 0.6, 1.0]


@pytest.fixture
def builds(monkeypatch):
    """An empty ranking cache; the returned list grows by one per ranking computed (not copied)."""
    calls = []
    build = harness.thresholding.threshold._rank_order

    def counted(*args):
        calls.append(1)
        return build(*args)

    monkeypatch.setattr(harness.thresholding.threshold, "_RANKINGS", {})
    monkeypatch.setattr(harness.thresholding.threshold, "_rank_order", counted)
    return calls


def ranking_inputs():
    """Float32 item scores with ties, two segments, a seed."""
    scores = np.random.default_rng(0).integers(0, 5, 40).astype(np.float32)
    return scores, np.repeat(np.arange(2), 20), 7


def changed(component: str, scores, segments, seed):
    """The inputs with one key component changed."""
    if component == "scores":
        scores = scores.copy()
        scores[3] += 1
    elif component == "scores_not_float32":  # the same ordering, but not float32 values: compared as float64
        scores = scores.astype(np.float64) + 1e-9
    elif component == "segments":
        segments = segments.copy()
        segments[19] = 1
    else:
        seed += 1
    return scores, segments, seed


@pytest.mark.parametrize("component", ["scores", "scores_not_float32", "segments", "seed"])
def test_rankings_hit_on_equal_inputs_and_miss_on_any_changed_component(builds, component):
    scores, segments, seed = ranking_inputs()
    other = changed(component, scores, segments, seed)
    want = rank_order(*other)
    builds.clear()
    first = recent_rank_order(scores, segments, seed)
    assert recent_rank_order(scores.copy(), segments.copy(), seed) is first and len(builds) == 1  # equal: a hit
    got = recent_rank_order(*other)
    assert len(builds) == 2 and len(harness.thresholding.threshold._RANKINGS) == 2  # changed: a miss, a new entry
    np.testing.assert_array_equal(got, want)
    assert recent_rank_order(*other) is got and len(builds) == 2


def twin_model():
    """Input(4) -> Dense(4, tanh) "a" -> Dense(4, tanh) "b" -> Dense(3): two kernels of one shape."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4, activation="tanh", name="a")(inputs)
    h = keras.layers.Dense(4, activation="tanh", name="b")(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(h))


def setup():
    model = twin_model()
    x, y = random_data(model, n=24, seed=2)
    return model, prunable_params(model, "kernels"), Evaluator(model, CE_LOGITS, x, y, batch_size=8)


def sweep_of(params, evaluate, method="masked", thresholds=THRESHOLDS, score_seed=0, replacement_seed=None):
    """Rows of a unit-items sweep with scores from ``score_seed`` and zeros (or seeded random values) as replacement.

    The zeros are made here: ``replacement_values``' zeros carry signs drawn per parameter name.
    """
    scores = [np.random.default_rng([score_seed, i]).random(p.shape).astype(np.float32) for i, p in enumerate(params)]
    thresholder = Thresholder(get_aggregation("unit")(params, scores), "layer")
    replacement = [np.zeros(p.shape, np.float32) for p in params] if replacement_seed is None else \
        replacement_values(params, "random", replacement_seed)
    return sweep(params, thresholder, replacement, thresholds, evaluate, method)


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "sweep_seconds"} for row in rows]


CHANGES = {
    "method": lambda params, evaluate: sweep_of(params, evaluate, method="shrunk"),
    "params": lambda params, evaluate: sweep_of(params[1:2], evaluate),  # kernel b instead of a: same shape, masks
    "thresholds": lambda params, evaluate: sweep_of(params, evaluate, thresholds=[0.0, 0.3, 0.7, 1.0]),
    "masks": lambda params, evaluate: sweep_of(params, evaluate, score_seed=1),
    "replacement": lambda params, evaluate: sweep_of(params, evaluate, replacement_seed=3),
}


@pytest.mark.parametrize("component", [*CHANGES, "weights"])
def test_sweeps_hit_on_equal_inputs_and_miss_on_any_changed_component(component):
    model, params, evaluate = setup()
    base = params[:1] if component == "params" else params
    first = sweep_of(base, evaluate)
    assert evaluate.evaluations == len(THRESHOLDS) and len(evaluate.recent) == 1
    assert without_time(sweep_of(base, evaluate)) == without_time(first)  # equal inputs, new objects: a hit
    assert evaluate.evaluations == len(THRESHOLDS) and len(evaluate.recent) == 1
    bias = model.get_layer("out").bias
    if component == "weights":  # a weight outside the prunable parameters
        bias.assign(bias + 0.5)
    rows = sweep_of(base, evaluate) if component == "weights" else CHANGES[component](params, evaluate)
    assert evaluate.evaluations == 2 * len(THRESHOLDS) and len(evaluate.recent) == 2  # a miss, a new entry
    fresh = Evaluator(model, CE_LOGITS, evaluate.x.numpy(), evaluate.y.numpy(), batch_size=8)
    redo = sweep_of(base, fresh) if component == "weights" else CHANGES[component](params, fresh)
    assert without_time(rows) == without_time(redo)  # what the changed sweep evaluates, no copy
    if component == "method":  # the methods agree to rtol 1e-5
        np.testing.assert_allclose([r["val_loss"] for r in rows], [r["val_loss"] for r in first], rtol=1e-5)
    else:
        assert without_time(rows) != without_time(first)
