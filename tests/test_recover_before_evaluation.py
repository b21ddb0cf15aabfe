"""Recovery before evaluation: BatchNorm recalibration against Keras' own updates, fine-tuning under a fixed mask."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from aggregations import get_aggregation
from harness.pipeline.train import Trainer
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.masks import Schedule
from harness.thresholding.recovery import BatchNormRecalibration, FineTuning, batch_norm_layers, parse_recovery
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data

THRESHOLDS = [0.0, 0.3, 0.6, 0.9]


def bn_model(dropout: bool, seed: int = 0) -> keras.Model:
    """Conv -> BN -> relu [-> Dropout] -> Conv(stride 2) -> BN -> Flatten -> Dense(3); layer names fixed."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((7, 7, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", name="c1")(inputs)
    h = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name="bn1")(h))
    h = keras.layers.Dropout(0.5, name="drop")(h) if dropout else h
    h = keras.layers.BatchNormalization(name="bn2")(keras.layers.Conv2D(2, 2, strides=2, name="c2")(h))
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


def weighted(names_from: keras.Model, model: keras.Model) -> keras.Model:
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(names_from.get_layer(layer.name).get_weights())
    return model


def all_state(model, optimizer):
    return [np.array(v.numpy(), copy=True) for v in [*model.variables, *optimizer.variables]]


@pytest.mark.slow
def test_bn_recalibration_equals_keras_moving_averages_on_the_same_batches_with_dropout_inactive():
    model = bn_model(dropout=True)
    x, _ = random_data(model, n=40, seed=4)
    kernel = model.get_layer("c1").kernel
    kernel.assign(np.where(np.random.default_rng(0).random(kernel.shape) < 0.5, 0.0, kernel.numpy()))  # a mask
    reference = weighted(model, bn_model(dropout=False, seed=1))  # the same weights, no Dropout
    seed_state = model.get_layer("drop").seed_generator.state.numpy().copy()
    old = [layer.moving_variance.numpy().copy() for layer in batch_norm_layers(model)]
    recalibrate = BatchNormRecalibration(model, x, batch_size=8, batches=4, seed=0)
    recalibrate(0.5)
    batches = recalibrate.batches.numpy()
    assert batches.shape == (4, 8, 7, 7, 2)
    for i, batch in enumerate(batches, start=1):  # Keras' own update rule in training mode, momentum (i - 1) / i
        for layer in batch_norm_layers(reference):
            layer.momentum = (i - 1) / i
        reference(batch, training=True)
    for ours, theirs in zip(batch_norm_layers(model), batch_norm_layers(reference)):
        np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
        assert ours.momentum == 0.99 and "call" not in vars(ours)  # the layers are left as they were
    # explicitly, for the first layer: the mean over batches of each batch's mean and biased variance
    conv = keras.Model(model.inputs, model.get_layer("c1").output)
    outputs = np.stack([conv(b, training=False).numpy() for b in batches]).astype(np.float64)
    np.testing.assert_allclose(model.get_layer("bn1").moving_mean.numpy(), outputs.mean(axis=(1, 2, 3)).mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.get_layer("bn1").moving_variance.numpy(), outputs.var(axis=(1, 2, 3)).mean(0),
                               rtol=1e-4)
    assert not np.allclose(old[0], model.get_layer("bn1").moving_variance.numpy())
    np.testing.assert_array_equal(model.get_layer("drop").seed_generator.state.numpy(), seed_state)  # no dropout draw


def trained_setup(seed: int = 0):
    """A model with BatchNorm and Dropout after two training steps (so Adam has moments), a thresholder, replacement."""
    model = bn_model(dropout=True, seed=seed)
    x, y = random_data(model, n=48, seed=5)
    optimizer = keras.optimizers.Adam(1e-2)
    params = prunable_params(model, "kernels+biases")
    trainer = Trainer(model, CE_LOGITS, optimizer, params, [], batch_size=24, seed=seed)
    trainer.train_epoch(x, y, 1, progress=False)
    scores = [np.random.default_rng([seed, i]).random(p.shape) for i, p in enumerate(params)]
    thresholder = Thresholder(get_aggregation("weight")(params, scores), "layer", seed=seed)
    replacement = replacement_values(params, "random", seed)
    tuning = FineTuning(model, CE_LOGITS, optimizer, params, x, y, batch_size=8, seed=seed)
    tuning.start_epoch(1, steps=3)
    return model, optimizer, params, thresholder, replacement, tuning, (x, y)


@pytest.mark.slow
def test_finetune_keeps_replaced_weights_replaced_moves_the_others_and_restores_the_optimizer():
    model, optimizer, params, thresholder, replacement, tuning, _ = trained_setup()
    recovery = tuning.recovery(3, params, thresholder, replacement, THRESHOLDS)
    masks = thresholder.masks(0.6)
    before = [p.variable.numpy().copy() for p in params]
    for p, mask, r, w in zip(params, masks, replacement, before):
        p.variable.assign(np.where(mask, r, w))
    optimizer_state = [v.numpy().copy() for v in optimizer.variables]
    recovery(0.6)
    for p, mask, r, w in zip(params, masks, replacement, before):
        value = p.variable.numpy()
        np.testing.assert_array_equal(value[mask], r[mask])  # replaced: exactly the replacement values
        assert not (~mask).any() or not np.allclose(value[~mask], w[~mask])  # kept: fine-tuned
    assert all(np.array_equal(v.numpy(), s) for v, s in zip(optimizer.variables, optimizer_state))


@pytest.mark.slow
def test_a_finetune_sweep_restores_weights_and_optimizer_bit_for_bit_with_one_compiled_step():
    model, optimizer, params, thresholder, replacement, tuning, (x, y) = trained_setup(seed=1)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=16)
    plain = sweep(params, thresholder, replacement, THRESHOLDS, evaluate)
    before = all_state(model, optimizer)
    rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate,
                 recovery=tuning.recovery(3, params, thresholder, replacement, THRESHOLDS))
    after = all_state(model, optimizer)
    assert len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))
    assert [r["n_replaced"] for r in rows] == [r["n_replaced"] for r in plain]
    assert rows[2]["val_loss"] < plain[2]["val_loss"]  # three steps on these examples lower their loss
    assert tuning._steps.experimental_get_tracing_count() == 1
    schedule = Schedule(params, thresholder, replacement, THRESHOLDS)  # the recovery's masks are the sweep's
    assert [int(sum(np.sum(s <= k) for s in schedule.steps)) for k in range(4)] == [r["n_replaced"] for r in rows]


def test_finetune_batches_are_seeded_per_seed_and_epoch():
    *_, tuning, _ = trained_setup()
    tuning.start_epoch(2, steps=4)
    first = tuning.data[0].numpy()
    tuning.start_epoch(2, steps=4)
    assert np.array_equal(first, tuning.data[0].numpy())
    tuning.start_epoch(3, steps=4)
    assert first.shape == (4, 8, 7, 7, 2) and not np.array_equal(first, tuning.data[0].numpy())


@pytest.mark.parametrize("spec, canonical", [("none", "none"), ("bn", "bn"), ("bn:batches=20", "bn"),
                                             ("bn:batches=8", "bn:batches=8"), ("finetune:steps=050", "finetune:steps=50")])
def test_recovery_specs_have_one_canonical_text(spec, canonical):
    assert parse_recovery(spec).spec == canonical


@pytest.mark.slow
def test_the_compiled_loop_of_k_steps_equals_k_single_steps():
    model, optimizer, params, thresholder, replacement, tuning, _ = trained_setup(seed=2)
    tuning.recovery(3, params, thresholder, replacement, THRESHOLDS)  # sets the replacement values
    for mask, m in zip(tuning.masks, thresholder.masks(0.6)):
        mask.assign(m)
    start = all_state(model, optimizer)
    tuning._steps(*tuning.data)
    looped = all_state(model, optimizer)
    for v, s in zip([*model.variables, *optimizer.variables], start):
        v.assign(s)
    step = tf.function(tuning._train_step)
    for b in range(3):
        step(tuning.data[0][b], tuning.data[1][b])
    assert not np.allclose(looped[0], start[0])
    for a, b in zip(looped, all_state(model, optimizer)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
