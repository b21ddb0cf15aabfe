"""Matched controls: random_matched keeps the measure's per-layer item counts, shuffled its per-layer weight counts."""

import numpy as np
import pytest

from aggregations import get_aggregation
from harness.thresholding.controls import RandomMatched, Shuffled, control_name, make_control
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.masks import Schedule
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data, tiny_conv_model, tiny_dense_model

THRESHOLDS = np.linspace(0, 1, 11)


def measure_thresholder(model_fn, aggregation, scope="global", seed=0):
    """A measure's thresholder on a tiny model: fresh random scores, global scope (per-layer counts vary with t)."""
    model = model_fn()
    params = prunable_params(model, "kernels+biases")
    scores = [np.random.default_rng([seed, i]).random(p.shape) ** (i + 1) for i, p in enumerate(params)]
    items = get_aggregation(aggregation)(params, scores, "mean")
    return model, params, items, Thresholder(items, scope, seed=seed)


def per_layer_counts(steps, groups, k):
    """Per group (sorted), how many entries have a step <= k."""
    return [int(np.sum(steps[groups == g] <= k)) for g in np.unique(groups)]


def element_layers(thresholder, item_layers):
    return np.concatenate([item_layers[ids].ravel() for ids in thresholder.element_items])


def element_steps(thresholder, thresholds):
    steps = thresholder.item_steps(thresholds)
    return np.concatenate([steps[ids].ravel() for ids in thresholder.element_items])


@pytest.mark.slow
@pytest.mark.parametrize("model_fn, aggregation", [(tiny_dense_model, "unit"), (tiny_conv_model, "filter"),
                                                   (tiny_conv_model, "weight")])
def test_random_matched_replaces_exactly_the_measures_items_per_layer_at_every_threshold(model_fn, aggregation):
    _, _, items, measure = measure_thresholder(model_fn, aggregation)
    control = RandomMatched(measure, items.layers, seed=5)
    steps = control.item_steps(THRESHOLDS)
    for k, t in enumerate(THRESHOLDS):
        expected = [int(np.sum(measure.item_mask(t)[items.layers == g])) for g in np.unique(items.layers)]
        assert per_layer_counts(steps, items.layers, k) == expected
    # a different choice than the measure's (else the control would control nothing)
    assert not np.array_equal(steps, measure.item_steps(THRESHOLDS))


@pytest.mark.parametrize("model_fn, aggregation", [(tiny_dense_model, "unit"), (tiny_conv_model, "filter"),
                                                   (tiny_conv_model, "weight")])
def test_shuffled_keeps_the_measures_weight_count_of_every_layer_and_scatters_its_weights(model_fn, aggregation):
    _, _, items, measure = measure_thresholder(model_fn, aggregation)
    control = Shuffled(measure, items.layers, seed=5)
    layers = element_layers(measure, items.layers)
    ours, theirs = control.item_steps(THRESHOLDS), element_steps(measure, THRESHOLDS)
    assert ours.shape == theirs.shape == (measure.n_params,)
    for k in range(len(THRESHOLDS)):
        assert per_layer_counts(ours, layers, k) == per_layer_counts(theirs, layers, k)
    assert not np.array_equal(ours, theirs)
    if aggregation != "weight":  # element level: some item of the measure is replaced in part
        items_of_elements = np.concatenate([ids.ravel() for ids in measure.element_items])
        split = [np.unique(ours[items_of_elements == i] <= k).size > 1
                 for k in range(len(THRESHOLDS)) for i in np.unique(items_of_elements)]
        assert any(split)


@pytest.mark.parametrize("name", ["random_matched", "shuffled"])
def test_controls_are_nested_and_seeded(name):
    _, params, items, measure = measure_thresholder(tiny_conv_model, "unit")
    control = make_control(name, measure, items.layers, seed=3)
    replacement = [np.zeros(p.shape, np.float32) for p in params]
    schedule = Schedule(params, control, replacement, THRESHOLDS)
    masks = [[s <= k for s in schedule.steps] for k in range(len(THRESHOLDS))]
    for before, after in zip(masks, masks[1:]):
        assert all(np.all(a <= b) for a, b in zip(before, after))  # nested: a replaced weight stays replaced
    assert all(m.all() for m in masks[-1])  # t = 1 replaces everything, as the measure does
    again = make_control(name, measure, items.layers, seed=3).item_steps(THRESHOLDS)
    other = make_control(name, measure, items.layers, seed=4).item_steps(THRESHOLDS)
    assert np.array_equal(control.item_steps(THRESHOLDS), again)
    assert not np.array_equal(control.item_steps(THRESHOLDS), other)


@pytest.mark.slow
def test_a_control_drives_a_sweep_and_replaces_as_many_weights_as_the_measure():
    model, params, items, measure = measure_thresholder(tiny_dense_model, "unit", scope="global")
    x, y = random_data(model, n=20, seed=2)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=8)
    replacement = replacement_values(params, "zero", 0)
    before = [w.copy() for w in model.get_weights()]
    rows = {None: sweep(params, measure, replacement, THRESHOLDS, evaluate)}
    for name in ("random_matched", "shuffled"):
        rows[name] = sweep(params, make_control(name, measure, items.layers, 1), replacement, THRESHOLDS, evaluate)
        # units of one Dense layer have one size: matched unit counts are matched weight counts
        assert [r["n_replaced"] for r in rows[name]] == [r["n_replaced"] for r in rows[None]]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    for name in ("random_matched", "shuffled"):
        assert any(a["val_loss"] != b["val_loss"] for a, b in zip(rows[name], rows[None]))
    assert control_name("fisher", "shuffled") == "fisher~shuffled" and control_name("fisher", None) == "fisher"


def test_unknown_control_is_refused():
    _, _, items, measure = measure_thresholder(tiny_dense_model, "unit")
    with pytest.raises(ValueError, match=r"Unknown control 'matched'; available: \['random_matched', 'shuffled'\]"):
        make_control("matched", measure, items.layers, 0)
