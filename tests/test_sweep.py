"""Replacement modes, evaluation, bit-exact restore, and training unaffected by sweeps."""

import keras
import numpy as np
import pytest

from aggregations import get_aggregation
from harness.pipeline.train import Trainer
from harness.thresholding.evaluation import FunctionEvaluator
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import make_measure, prunable_params
from measures._base import MeasureContext
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def setup(model_fn=tiny_dense_model, n=40):
    model = model_fn()
    x, y = random_data(model, n=n, seed=3)
    params = prunable_params(model, "kernels+biases")
    return model, params, x, y


@pytest.mark.slow
def test_val_loss_at_zero_equals_keras_evaluate():
    model, params, x, y = setup(tiny_conv_model, n=50)
    evaluate = Evaluator(model, LOSS, x, y, batch_size=16)
    model.compile(loss=LOSS, metrics=["accuracy"])
    keras_loss, keras_acc = model.evaluate(x, y, batch_size=16, verbose=0)
    loss, acc = evaluate()
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    assert acc == pytest.approx(keras_acc, abs=1e-7)
    thr = Thresholder(get_aggregation("weight")(params, [np.ones(p.shape) for p in params]), "layer")
    rows = sweep(params, thr, replacement_values(params, "zero", 0), [0.0], evaluate)
    assert rows[0]["val_loss"] == pytest.approx(keras_loss, rel=1e-5)
    assert rows[0]["sparsity"] == 0.0


@pytest.mark.slow
def test_zero_replacement_at_full_sparsity_gives_uniform_logits():
    # All kernels and biases zero -> logits 0 -> loss ln(3) for 3 classes.
    model, params, x, y = setup()
    thr = Thresholder(get_aggregation("weight")(params, [np.ones(p.shape) for p in params]), "layer")
    rows = sweep(params, thr, replacement_values(params, "zero", 0), [1.0], Evaluator(model, LOSS, x, y))
    assert rows[0]["val_loss"] == pytest.approx(np.log(3), rel=1e-6)
    assert rows[0]["sparsity"] == 1.0


def test_random_replacement_statistics_and_seed():
    model, params, *_ = setup()
    big = keras.Variable(np.random.default_rng(0).normal(0, 2.0, (400, 300)).astype("float32"))
    params = [type(params[0])(big, params[0].layer, 0, "kernel", "dense")]
    values = replacement_values(params, "random", seed=11)[0]
    assert values.shape == (400, 300) and values.dtype == np.float32
    assert values.mean() == pytest.approx(0.0, abs=0.002)
    assert values.std() == pytest.approx(np.std(big.numpy()) / 10, rel=0.01)
    assert np.array_equal(values, replacement_values(params, "random", seed=11)[0])
    assert not np.array_equal(values, replacement_values(params, "random", seed=12)[0])
    with pytest.raises(ValueError, match=r"Unknown replacement 'noise'; available: \['zero', 'random'\]"):
        replacement_values(params, "noise", 0)


def test_sweep_writes_replacement_values_into_masked_elements():
    model, params, x, y = setup()
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    thr = Thresholder(get_aggregation("weight")(params, scores), "layer")
    repl = replacement_values(params, "random", 5)
    originals = [p.variable.numpy().copy() for p in params]
    seen = {}

    def spy():
        seen["weights"] = [p.variable.numpy().copy() for p in params]
        return 0.0, 0.0

    sweep(params, thr, repl, [0.4], FunctionEvaluator(spy))
    for w, orig, r, mask in zip(seen["weights"], originals, repl, thr.masks(0.4)):
        assert np.array_equal(w[mask], r[mask]) and np.array_equal(w[~mask], orig[~mask])


@pytest.mark.slow
def test_restore_is_bit_exact_even_after_an_error():
    model, params, x, y = setup(tiny_conv_model)
    before = [w.copy() for w in model.get_weights()]
    thr = Thresholder(get_aggregation("unit")(params, [np.ones(p.shape) for p in params]), "global")
    sweep(params, thr, replacement_values(params, "random", 1), np.linspace(0, 1, 11), Evaluator(model, LOSS, x, y))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    def boom():
        raise RuntimeError("evaluation failed")

    with pytest.raises(RuntimeError):
        sweep(params, thr, replacement_values(params, "zero", 1), [0.5], FunctionEvaluator(boom))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def train_two_epochs(with_sweeps: bool, measure_spec: str):
    model, params, x, y = setup(tiny_dense_model, n=64)
    measure = make_measure(measure_spec)
    trainer = Trainer(model, LOSS, keras.optimizers.Adam(0.01), params, [measure] if measure.training_time else [],
                      batch_size=16, seed=0)
    evaluate = Evaluator(model, LOSS, x, y)
    for epoch in (1, 2):
        trainer.train_epoch(x, y, epoch, progress=False)
        if with_sweeps:
            scores = measure.score(MeasureContext(model, params, x, y, LOSS, seed=epoch))
            thr = Thresholder(get_aggregation("weight")(params, scores), "layer")
            sweep(params, thr, replacement_values(params, "random", epoch), [0.0, 0.5, 1.0], evaluate)
    return model.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["magnitude", "random"])
def test_training_after_a_sweep_equals_training_without_one(spec):
    a = train_two_epochs(False, spec)
    b = train_two_epochs(True, spec)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_random_replacement_of_a_variable_does_not_depend_on_the_others():
    model, params, *_ = setup()
    kernels = [p for p in params if p.role == "kernel"]
    everything = dict(zip([p.name for p in params], replacement_values(params, "random", 3)))
    for p, values in zip(kernels, replacement_values(kernels, "random", 3)):
        assert np.array_equal(values, everything[p.name])
