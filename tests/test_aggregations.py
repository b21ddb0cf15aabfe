"""Pooling axes with hand-built scores: units pool incoming weights, filters stay within a filter."""

import keras
import numpy as np
import pytest

from aggregations import AGGREGATIONS, get_aggregation, pool
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import tiny_conv_model, tiny_dense_model


def dense_params(prunable="kernels+biases"):
    return prunable_params(tiny_dense_model(), prunable)  # kernels (6,5),(5,3); biases (5,),(3,)


def test_registry():
    assert AGGREGATIONS.names() == ["filter", "head", "unit", "weight"]
    with pytest.raises(ValueError, match=r"Unknown aggregation 'units'; available: \['filter', 'head', 'unit', 'weight'\]"):
        get_aggregation("units")


def test_unit_pools_a_dense_column_with_its_bias():
    params = dense_params()
    kernel = np.arange(30, dtype=float).reshape(6, 5)
    scores = [kernel, np.full(5, 100.0), np.zeros((5, 3)), np.zeros(3)]
    items = get_aggregation("unit")(params, scores, "mean")
    # unit j of layer 0 = column j (6 weights) + bias j
    expected = (kernel.sum(axis=0) + 100.0) / 7
    np.testing.assert_allclose(items.scores[:5], expected)
    assert items.sizes[:5].tolist() == [7] * 5
    assert items.layers.tolist() == [0] * 5 + [1] * 3
    # Pooling over the wrong axis (rows, outgoing weights) would give 6 items for layer 0.
    assert np.array_equal(items.element_items[0][:, 2], np.full(6, 2))
    assert np.array_equal(items.element_items[1], np.arange(5))


def test_unit_with_zero_incoming_scores_is_replaced_first():
    params = dense_params("kernels")
    kernel = np.ones((6, 5))
    kernel[:, 3] = 0.0  # every incoming weight of unit 3 scores 0
    kernel[0, 1] = 0.0  # one weight of unit 1 scores 0 too: it must not drag unit 1 down
    items = get_aggregation("unit")(params, [kernel, np.ones((5, 3))], "mean")
    mask = Thresholder(items, "layer").masks(0.2)[0]
    assert mask[:, 3].all() and mask.sum() == 6


@pytest.mark.parametrize("pooling,expected", [
    ("mean", [2.0, 5.0]), ("sum", [6.0, 10.0]), ("max", [3.0, 6.0]), ("min", [1.0, 4.0]),
    ("l2", [np.sqrt(14.0), np.sqrt(52.0)]),
])
def test_poolings(pooling, expected):
    values = np.array([1.0, 4.0, 2.0, 6.0, 3.0])
    ids = np.array([0, 1, 0, 1, 0])
    pooled, sizes = pool(values, ids, 2, pooling)
    np.testing.assert_allclose(pooled, expected)
    assert sizes.tolist() == [3, 2]


def test_unknown_pooling():
    with pytest.raises(ValueError, match=r"Unknown pooling 'median'; available: \['mean'"):
        get_aggregation("unit")(dense_params(), [np.ones(p.shape) for p in dense_params()], "median")


def test_filter_pools_within_one_conv_filter_and_keeps_dense_per_weight():
    params = prunable_params(tiny_conv_model(), "kernels+biases")
    shapes = [p.shape for p in params]
    assert shapes == [(3, 3, 2, 3), (3,), (2, 2, 3, 2), (2,), (18, 3), (3,)]
    rng = np.random.default_rng(0)
    scores = [rng.random(s) for s in shapes]
    items = get_aggregation("filter")(params, scores, "mean")
    # conv 1: three filters kernel[..., o] + bias[o]
    for o in range(3):
        expected = (scores[0][..., o].sum() + scores[1][o]) / (3 * 3 * 2 + 1)
        np.testing.assert_allclose(items.scores[o], expected)
    # Pooling across filters would mix output channels: every element of kernel[..., o] maps to item o only.
    for o in range(3):
        assert np.all(items.element_items[0][..., o] == o)
    # dense kernel and bias: one item per weight
    dense_ids = np.concatenate([items.element_items[4].ravel(), items.element_items[5].ravel()])
    assert len(np.unique(dense_ids)) == 18 * 3 + 3
    assert len(items.scores) == 3 + 2 + 18 * 3 + 3


def test_unit_on_conv_is_output_channel_and_biases_are_not_pooled_per_layer():
    params = prunable_params(tiny_conv_model(), "kernels+biases")
    scores = [np.ones(p.shape) for p in params]
    items = get_aggregation("unit")(params, scores, "sum")
    assert len(items.scores) == 3 + 2 + 3  # one item per output channel / unit, never one per layer's biases
    assert items.sizes.tolist() == [19] * 3 + [13] * 2 + [19] * 3


def test_weight_aggregation_is_identity():
    params = dense_params()
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    items = get_aggregation("weight")(params, scores, "none")
    np.testing.assert_allclose(items.scores, np.concatenate([s.ravel() for s in scores]))
    assert (items.sizes == 1).all()


def test_all_trainable_variables_include_batchnorm_per_element_or_in_its_unit():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Conv2D(2, 3)(inputs)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    params = prunable_params(model, "all")
    assert [(p.kind, p.role) for p in params] == [
        ("conv", "kernel"), ("conv", "bias"), ("other", "other"), ("other", "other"),
        ("dense", "kernel"), ("dense", "bias")]
    items = get_aggregation("unit", structured_bn="keep")(params, [np.ones(p.shape) for p in params], "mean")
    assert len(items.scores) == 2 + 2 + 2 + 2  # conv units, gamma, beta per element, dense units
    items = get_aggregation("unit")(params, [np.ones(p.shape) for p in params], "mean")  # structured_bn="zero"
    assert len(items.scores) == 2 + 2  # conv units own their gamma and beta, dense units
    conv_units = items.element_items[1]
    np.testing.assert_array_equal(items.element_items[2], conv_units)
    np.testing.assert_array_equal(items.element_items[3], conv_units)
    np.testing.assert_array_equal(items.sizes[conv_units], 3 * 3 + 1 + 2)


def test_numbering_is_computed_once_per_parameter_list_and_shared_read_only():
    params = dense_params()
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    first, again = get_aggregation("unit")(params, scores), get_aggregation("unit")(params, scores, "max")
    assert all(a is b for a, b in zip(first.element_items, again.element_items)) and first.layers is again.layers
    with pytest.raises(ValueError, match="read-only"):
        first.element_items[0][0, 0] = 1
    np.testing.assert_array_equal(again.scores[:5], [max(scores[0][:, j].max(), scores[1][j]) for j in range(5)])
    other = dense_params()  # new Param objects: numbered afresh, equal to the first
    fresh = get_aggregation("unit")(other, scores)
    assert fresh.element_items[0] is not first.element_items[0]
    assert all(np.array_equal(a, b) for a, b in zip(fresh.element_items, first.element_items))
