"""Incremental masking, the shrunk model and batched evaluation against a direct masked evaluation."""

import keras
import numpy as np
import pytest

import harness.thresholding.sweep
from aggregations import Items, get_aggregation
from harness.thresholding.evaluation import FunctionEvaluator
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.forward import FirstLayer
from harness.thresholding.masks import Schedule
from harness.thresholding.structure import Structure
from harness.thresholding.sweep import choose_method, replacement_values, sweep
from harness.thresholding.threshold import Thresholder, rank_order
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data, tiny_conv_model, tiny_dense_model

THRESHOLDS = [0.5, 0.0, 0.15, 1.0, 0.15, 0.8]  # unsorted, with a repeat


def fallback_model(seed: int = 0) -> keras.Model:
    """Conv(same) -> Conv(same) -> BatchNorm -> Conv(valid) -> Flatten -> Dense -> Dense: two layers cannot fold."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", bias_initializer="random_normal", name="c1")(inputs)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu", bias_initializer="random_normal", name="c2")(h)
    h = keras.layers.BatchNormalization(beta_initializer="random_normal", name="bn")(h)
    h = keras.layers.Conv2D(2, 2, strides=2, activation="tanh", bias_initializer="random_normal")(h)
    h = keras.layers.MaxPooling2D(1)(keras.layers.Activation("relu")(h))
    h = keras.layers.Dense(4, activation="tanh", bias_initializer="random_normal")(keras.layers.Flatten()(h))
    return keras.Model(inputs, keras.layers.Dense(3)(h), name="fallback")


def direct_losses(model, params, thresholder, replacement, evaluate):
    """Reference: assign np.where(mask, replacement, original) per threshold and evaluate, then restore."""
    originals = [p.variable.numpy().copy() for p in params]
    losses = []
    for t in THRESHOLDS:
        for p, mask, r, o in zip(params, thresholder.masks(t), replacement, originals):
            p.variable.assign(np.where(mask, r, o))
        losses.append(evaluate()[0])
    for p, o in zip(params, originals):
        p.variable.assign(o)
    return losses


def setup(model_fn, prunable, aggregation, seed=0):
    model = model_fn()
    x, y = random_data(model, n=24, seed=3)
    params = prunable_params(model, prunable)
    scores = [np.random.default_rng([seed, i]).random(p.shape) for i, p in enumerate(params)]
    thresholder = Thresholder(get_aggregation(aggregation)(params, scores), "layer", seed=seed)
    return model, params, thresholder, Evaluator(model, CE_LOGITS, x, y, batch_size=10)


@pytest.mark.slow
@pytest.mark.parametrize("model_fn", [tiny_dense_model, tiny_conv_model, fallback_model])
def test_every_method_equals_the_direct_masked_evaluation(model_fn):
    model = model_fn()
    x, y = random_data(model, n=24, seed=3)
    params = prunable_params(model, "kernels+biases")
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=10)
    before = [w.copy() for w in model.get_weights()]
    for seed, (aggregation, mode) in enumerate([("weight", "random"), ("unit", "zero"), ("filter", "zero")]):
        scores = [np.random.default_rng([seed, i]).random(p.shape) for i, p in enumerate(params)]
        thresholder = Thresholder(get_aggregation(aggregation)(params, scores), "layer", seed=seed)
        replacement = replacement_values(params, mode, seed)
        reference = direct_losses(model, params, thresholder, replacement, evaluate)
        for method in ("masked", "shrunk", "batched"):
            rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate, method)
            assert [r["threshold"] for r in rows] == THRESHOLDS
            np.testing.assert_allclose([r["val_loss"] for r in rows], reference, rtol=1e-5, err_msg=method)
            assert [r["n_replaced"] for r in rows] == [thresholder.n_replaced(t) for t in THRESHOLDS]
            assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), method


@pytest.mark.slow
@pytest.mark.parametrize("model_fn,cached", [(tiny_dense_model, True), (tiny_conv_model, True), (fallback_model, False)])
def test_shrunk_sweeps_from_the_first_layers_products_equal_the_direct_masked_evaluation(model_fn, cached, monkeypatch):
    """Unit items: the first layer's products are reused (where its kernel changes only as whole units).

    Between the second and third sweep the first kernel changes (as after a
    training epoch): the products must be computed again, not reused.
    """
    monkeypatch.setattr(FirstLayer, "MIN_REDUCTION", 1)  # the tiny first layers are worth a buffer here
    fills = []
    monkeypatch.setattr(FirstLayer, "fill", lambda self, order, fill=FirstLayer.fill: fills.append(fill(self, order)))
    model = model_fn()
    x, y = random_data(model, n=24, seed=3)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=10)
    selections = [prunable_params(model, "kernels"), prunable_params(model, "kernels+biases"),
                  prunable_params(model)[:1]]  # the first kernel alone: at t = 1 its units all go, the others stay
    for seed, params in enumerate(selections):
        if seed == 2:
            kernel = selections[0][0].variable
            kernel.assign(kernel.numpy() + np.random.default_rng(seed).normal(0, 0.5, kernel.shape))
        before = [w.copy() for w in model.get_weights()]
        scores = [np.random.default_rng([seed, i]).random(p.shape) for i, p in enumerate(params)]
        thresholder = Thresholder(get_aggregation("unit")(params, scores), "layer", seed=seed)
        replacement = replacement_values(params, "zero", seed)
        reference = direct_losses(model, params, thresholder, replacement, evaluate)
        rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate, "shrunk")
        np.testing.assert_allclose([r["val_loss"] for r in rows], reference, rtol=1e-5)
        assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert len(fills) == (3 if cached else 0)


def test_auto_shrinks_unit_sweeps_and_masks_weight_sweeps():
    model, params, thresholder, evaluate = setup(tiny_dense_model, "kernels", "unit")
    zero, noise = replacement_values(params, "zero", 0), replacement_values(params, "random", 0)
    assert choose_method("auto", evaluate, Schedule(params, thresholder, zero, THRESHOLDS), params, None) == "shrunk"
    assert choose_method("auto", evaluate, Schedule(params, thresholder, noise, THRESHOLDS), params, None) == "masked"
    weight = Thresholder(get_aggregation("weight")(params, [np.ones(p.shape) for p in params]), "layer")
    assert choose_method("auto", evaluate, Schedule(params, weight, zero, THRESHOLDS), params, None) == "masked"
    with pytest.raises(ValueError, match=r"Unknown sweep method 'fast'; available: \['auto', 'masked'"):
        sweep(params, thresholder, zero, [0.5], evaluate, "fast")
    with pytest.raises(ValueError, match="'shrunk' cannot run: the evaluation is a plain function"):
        sweep(params, thresholder, zero, [0.5], FunctionEvaluator(lambda: (0.0, 0.0)), "shrunk")
    with pytest.raises(TypeError, match="evaluation.FunctionEvaluator. Received: evaluator=<function"):
        sweep(params, thresholder, zero, [0.5], lambda: (0.0, 0.0))


def test_batched_refuses_when_the_copies_do_not_fit(monkeypatch):
    model, params, thresholder, evaluate = setup(tiny_dense_model, "kernels", "weight")
    monkeypatch.setattr(harness.thresholding.sweep, "BATCHED_MEMORY", 100)
    with pytest.raises(ValueError, match="'batched' cannot run: 6 copies of the weights exceed 100 bytes"):
        sweep(params, thresholder, replacement_values(params, "zero", 0), THRESHOLDS, evaluate, "batched")


@pytest.mark.slow
def test_layers_that_cannot_fold_say_why():
    structure = Structure(fallback_model())
    assert [link.consumer for link in structure.links] == [None, None, 3, 4, None]
    assert structure.notes[0] == "c1: the next layer c2 pads its input"
    assert structure.notes[1] == "c2: BatchNormalization bn lies between it and the next layer"
    assert structure.notes[2].endswith("its outputs are the model's outputs")
    inputs = keras.Input((5, 5, 2))
    h = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    h = keras.layers.Conv2D(2, 1, padding="same")(h)  # same padding that pads nothing
    assert Structure(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(h)))).links[0].consumer == 1


@pytest.mark.slow
def test_params_remaining_and_flops_counted_by_hand():
    # 6 -> 5 (tanh) -> 3, unit items, layer scope, t = 0.4: round(0.4 * 30) = 12 -> 2 hidden units (6 weights each);
    # round(0.4 * 15) = 6 -> 2 output units (5 weights each). Removed: 12 kernel weights and 2 biases of the hidden
    # units, 10 output-kernel weights, and the 2 x 1 output-kernel rows of the removed units still left: 26 of 53.
    # FLOPs: 2 * (6 * 3 hidden weights + 3 * 1 output weights) = 42; the full model 2 * (30 + 15) = 90.
    model, params, thresholder, evaluate = setup(tiny_dense_model, "kernels", "unit")
    rows = sweep(params, thresholder, replacement_values(params, "zero", 0), [0.0, 0.4], evaluate)
    assert [(r["params_remaining"], r["flops"]) for r in rows] == [(53, 90), (27, 42)]
    rows = sweep(params, thresholder, replacement_values(params, "random", 0), [0.4], evaluate)
    assert (rows[0]["params_remaining"], rows[0]["flops"]) == (53, 90)  # random values are not removed


@pytest.mark.slow
def test_conv_flops_count_every_output_position():
    # conv 7x7x(3x3x2x3) + conv 3x3x(2x2x3x2) + dense 18x3, two FLOPs per multiply-add.
    model, params, thresholder, evaluate = setup(tiny_conv_model, "kernels", "filter")
    rows = sweep(params, thresholder, replacement_values(params, "zero", 0), [0.0, 1.0], evaluate)
    assert rows[0]["flops"] == 2 * (49 * 54 + 9 * 24 + 18 * 3) and rows[1]["flops"] == 0
    assert rows[1]["params_remaining"] == 3  # the output bias alone: every unit folded into it


@pytest.mark.slow
def test_a_recovery_runs_between_assignment_and_evaluation_and_its_changes_are_undone():
    model, params, thresholder, evaluate = setup(tiny_dense_model, "kernels", "unit")
    replacement = replacement_values(params, "zero", 0)
    before = [w.copy() for w in model.get_weights()]
    seen = []

    def recovery(t):
        seen.append(all(np.array_equal(p.variable.numpy(), np.where(m, r, b))
                        for p, m, r, b in zip(params, thresholder.masks(t), replacement, [before[0], before[2]])))
        model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)  # a recovery step changing a non-prunable variable

    rows = sweep(params, thresholder, replacement, [0.8, 0.15], evaluate, recovery=recovery)
    assert seen == [True, True]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.layers[-1].bias.assign(before[3] + 1.0)
    shifted = direct_losses(model, params, thresholder, replacement, evaluate)
    model.layers[-1].bias.assign(before[3])
    np.testing.assert_allclose([r["val_loss"] for r in rows], [shifted[5], shifted[2]], rtol=1e-6)


@pytest.mark.parametrize("n_segments,grouped", [(1, True), (3, True), (3, False), (100, True)])
def test_one_sort_ranking_equals_the_three_key_lexsort(n_segments, grouped):
    rng = np.random.default_rng(n_segments)
    for trial in range(20):
        n = int(rng.integers(1, 400))
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.random(n)  # tie-heavy or not
        segments = rng.integers(0, n_segments, n)
        segments = np.sort(segments) if grouped else segments
        expected = np.lexsort((np.random.default_rng(trial).permutation(n), scores, segments))
        assert np.array_equal(rank_order(scores, segments, trial), expected)


@pytest.mark.parametrize("n_segments,grouped", [(1, True), (3, True), (3, False), (100, True), (40000, False)])
def test_radix_ranking_of_float32_scores_equals_the_three_key_lexsort(n_segments, grouped):
    """Float32-valued scores take the radix path: signs, -0.0 == 0.0, infinities, subnormals and heavy ties."""
    rng = np.random.default_rng(n_segments)
    special = np.array([-0.0, 0.0, 1.0, -1.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38])
    for trial in range(12):
        n = int(rng.integers(1, 600))
        scores = [rng.standard_normal(n), rng.choice(special, n), rng.integers(-2, 3, n) * 0.5][trial % 3]
        scores = scores.astype(np.float32).astype(np.float64)
        segments = rng.integers(0, n_segments, n)
        segments = np.sort(segments) if grouped else segments
        expected = np.lexsort((np.random.default_rng(trial).permutation(n), scores, segments))
        assert np.array_equal(rank_order(scores, segments, trial), expected)


def test_item_steps_reproduce_every_mask():
    rng = np.random.default_rng(0)
    items = Items(rng.integers(0, 3, 30).astype(float), rng.integers(1, 4, 30), np.repeat([0, 1, 2], 10),
                  [np.arange(30)])
    for scope in ("layer", "global"):
        thresholder = Thresholder(items, scope, seed=2)
        thresholds = np.sort(rng.random(9))
        steps = thresholder.item_steps(thresholds)
        for k, t in enumerate(thresholds):
            assert np.array_equal(steps <= k, thresholder.item_mask(t))
    with pytest.raises(ValueError, match="thresholds must be non-decreasing"):
        thresholder.item_steps([0.5, 0.2])


@pytest.mark.slow
def test_a_sweep_equal_to_an_earlier_one_is_copied_not_evaluated():
    model, params, thresholder, evaluate = setup(tiny_dense_model, "kernels", "unit")
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    zero = replacement_values(params, "zero", 0)
    weight = sweep(params, Thresholder(get_aggregation("weight")(params, scores), "layer"), zero, THRESHOLDS, evaluate)
    assert evaluate.evaluations == len(THRESHOLDS)
    # on a model without convolutions, filter items are weight items
    filter_rows = sweep(params, Thresholder(get_aggregation("filter")(params, scores), "layer"), zero, THRESHOLDS, evaluate)
    assert evaluate.evaluations == len(THRESHOLDS)
    assert [r["val_loss"] for r in filter_rows] == [r["val_loss"] for r in weight]
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)  # another model state: evaluated again
    sweep(params, Thresholder(get_aggregation("filter")(params, scores), "layer"), zero, THRESHOLDS, evaluate)
    assert evaluate.evaluations == 2 * len(THRESHOLDS)
