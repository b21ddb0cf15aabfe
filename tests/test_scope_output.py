"""Scope ``output``: each output unit of a layer is thresholded on its own (Wanda's comparison group)."""

import keras
import numpy as np
import pytest

from aggregations import Items, get_aggregation
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import conditions
from harness.thresholding.threshold import Thresholder, segment_ids
from measures import prunable_params


def dense_bn_model():
    """Input(3) -> Dense(2) -> BatchNormalization: kernel (3, 2), bias (2,), gamma (2,), beta (2,)."""
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(2)(inputs)))


KERNEL = np.array([[1.0, 6.0], [2.0, 5.0], [3.0, 4.0]])
SCORES = [KERNEL, np.array([10.0, 0.0]), np.array([0.3, 0.1]), np.array([0.2, 0.4])]


@pytest.mark.slow
def test_items_carry_output_units():
    params = prunable_params(dense_bn_model(), "all")
    weight = get_aggregation("weight")(params, SCORES)
    assert weight.units.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, -1, -1, -1, -1]  # kernel (i, j) -> j; bias; BN: none
    unit = get_aggregation("unit", structured_bn="keep")(params, SCORES)
    assert unit.units.tolist() == [0, 1, -1, -1, -1, -1] and unit.sizes.tolist() == [4, 4, 1, 1, 1, 1]
    unit = get_aggregation("unit")(params, SCORES)  # structured_bn zero: a unit owns its BatchNorm scale and shift
    assert unit.units.tolist() == [0, 1] and unit.sizes.tolist() == [6, 6]


def test_each_output_unit_and_each_unitless_layer_is_its_own_segment():
    params = prunable_params(dense_bn_model(), "all")
    thr = Thresholder(get_aggregation("weight")(params, SCORES), "output", seed=0)
    # unit 0: kernel column [1, 2, 3] + bias 10 -> 2 of 4 replaced: 1, 2; unit 1: [6, 5, 4] + bias 0 -> bias 0 and 4;
    # BatchNorm (one segment): gamma [0.3, 0.1], beta [0.2, 0.4] -> 0.1 and 0.2.
    kernel, bias, gamma, beta = thr.masks(0.5)
    assert kernel.tolist() == [[True, False], [True, False], [False, True]]
    assert bias.tolist() == [False, True] and gamma.tolist() == [False, True] and beta.tolist() == [True, False]
    assert thr.counts(0.25).tolist() == [1, 1, 1]  # round(0.25 * 4) = 1 per segment
    layer = Thresholder(get_aggregation("weight")(params, SCORES), "layer", seed=0).masks(0.5)[0]
    assert layer.tolist() == [[True, False], [True, False], [True, False]]  # layer scope: the 4 lowest of 8


def test_whole_unit_items_and_items_without_units_are_refused():
    params = prunable_params(dense_bn_model(), "all")
    for structured_bn in ("zero", "keep"):
        with pytest.raises(ValueError, match=r"2 items are whole units .*use aggregation 'weight'"):
            Thresholder(get_aggregation("unit", structured_bn=structured_bn)(params, SCORES), "output")
    bare = Items(np.ones(3), np.ones(3, np.int64), np.zeros(3, np.int64), [np.arange(3)])
    with pytest.raises(ValueError, match="scope 'output' needs the output unit of every item"):
        segment_ids(bare, "output")
    with pytest.raises(ValueError, match="global scope only. Received: normalization='max'"):
        Thresholder(get_aggregation("weight")(params, SCORES), "output", "max")


def test_config_needs_a_per_weight_aggregation_and_the_grid_skips_pooled_ones():
    with pytest.raises(ValueError, match=r"applies to per-weight aggregations only .*Received: aggregations=\['unit'\]"):
        RunConfig(scopes=["output"], aggregations=["unit"])
    config = RunConfig(scopes=["layer", "output"], aggregations=["unit", "weight"], measures=["magnitude"])
    pairs = {(c["aggregation"], c["scope"]) for c in conditions(config)}
    assert pairs == {("unit", "layer"), ("weight", "layer"), ("weight", "output")}
