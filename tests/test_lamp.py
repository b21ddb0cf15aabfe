"""LAMP normalisation: the paper's formula on hand-made arrays, its tie rule, and global LAMP pruning on magnitude."""

import numpy as np
import pytest

from aggregations import get_aggregation
from harness.pipeline.config import RunConfig
from harness.thresholding.threshold import Thresholder, lamp_scores, normalize_per_layer
from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import tiny_conv_model


def paper_lamp(w):
    """Lee et al. 2021: sort ascending by |w|; score(u) = w_u^2 / sum_{v >= u} w_v^2, a literal double loop."""
    order = np.argsort(np.abs(w), kind="stable")
    sorted_w = np.abs(w)[order]
    scores = np.empty(len(w))
    for u in range(len(w)):
        scores[order[u]] = sorted_w[u] ** 2 / sum(sorted_w[v] ** 2 for v in range(u, len(w)))
    return scores


def test_hand_made_known_answers_and_ties():
    scores = np.array([2.0, 1.0, 3.0, 0.5, 0.5, 2.0, 0.0, 0.0])
    layers = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    expected = [4 / 13, 1 / 14, 1.0, 0.25 / 4.5, 0.25 / 4.5, 1.0, 0.0, 0.0]  # tied 0.5s share sum_{s >= 0.5} = 4.5
    np.testing.assert_allclose(lamp_scores(scores, layers), expected, rtol=1e-12)
    np.testing.assert_allclose(normalize_per_layer(scores, layers, "lamp"), expected, rtol=1e-12)


def test_matches_the_papers_loop_on_random_untied_arrays():
    rng = np.random.default_rng(0)
    scores = [rng.random(n) * scale for n, scale in [(7, 1.0), (30, 100.0), (1, 3.0)]]
    layers = np.repeat(np.arange(3), [len(s) for s in scores])
    result = lamp_scores(np.concatenate(scores), layers)
    np.testing.assert_allclose(result, np.concatenate([paper_lamp(s) for s in scores]), rtol=1e-12)
    for layer, s in enumerate(scores):  # increasing within a layer: the within-layer order is the measure's
        assert np.array_equal(np.argsort(result[layers == layer]), np.argsort(s))


def test_negative_scores_are_refused_here_and_signed_measures_in_the_config():
    with pytest.raises(ValueError, match=r"needs non-negative item scores. Received: min score=-1.0"):
        lamp_scores(np.array([1.0, -1.0]), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"measures \['grasp'\] give signed scores"):
        RunConfig(measures=["magnitude", "grasp"], scopes=["global"], normalizations=["lamp"])


def test_global_lamp_on_magnitude_is_lamp_pruning():
    model = tiny_conv_model(seed=4)
    params = prunable_params(model, "kernels")
    magnitude = make_measure("magnitude").score(MeasureContext(model, params, None, None, None))
    thr = Thresholder(get_aggregation("weight")(params, magnitude), "global", "lamp", seed=0)
    weights = [p.variable.numpy().ravel() for p in params]
    lamp = np.concatenate([paper_lamp(w) for w in weights])  # LAMP: layer-wise scores, then one global cut
    for t in [0.1, 0.3, 0.5, 0.8, 0.95]:
        k = int(np.floor(t * lamp.size + 0.5))
        expected = np.zeros(lamp.size, bool)
        expected[np.argsort(lamp, kind="stable")[:k]] = True
        np.testing.assert_array_equal(np.concatenate([m.ravel() for m in thr.masks(t)]), expected)
    assert all(m.sum() < m.size for m in thr.masks(0.95))  # every layer keeps its largest weight
