"""Probability outputs: a model ending in a softmax scores, trains and sweeps as its logits twin.

Every registered measure is run on a logits model and on its twin whose last
layer applies a softmax (same weights), after the harness's
:func:`tasks._outputs.logits_model`: the scores must agree to float32
tolerance, with either the task's from-logits loss or a ``from_logits=False``
one. End to end, a run on a softmax-output model writes the rows of its logits
twin (no double softmax in training).
"""

import keras
import numpy as np
import pandas as pd
import pytest

from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from harness.pipeline.train import Trainer
from measures import MeasureContext, make_measure, prunable_params
from tasks import register_model, unregister_model
from tasks._outputs import logits_model, probability_output
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model
from tests.test_measures_contract import SPECS

LOGITS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
PROBS = keras.losses.SparseCategoricalCrossentropy(from_logits=False)


def softmax_twin(model_fn, how: str, seed: int = 0) -> keras.Model:
    """The model ``model_fn`` builds, followed by a softmax: in its last layer, or as a Softmax/Activation layer."""
    base = model_fn(seed=seed)
    if how == "layer":
        return keras.Model(base.inputs, keras.layers.Softmax(name="probs")(base.outputs[0]))
    if how == "activation_layer":
        return keras.Model(base.inputs, keras.layers.Activation("softmax", name="probs")(base.outputs[0]))
    base.layers[-1].activation = keras.activations.softmax  # as if built with activation="softmax"
    return base


def scores_of(spec, model, loss, x, y):
    """Train 4 steps (feeding training-time measures) and score, on the harness's logits view of ``model``."""
    model, loss, _ = logits_model(model, loss)
    params = prunable_params(model, "kernels+biases")
    measure = make_measure(spec)
    trainer = Trainer(model, loss, keras.optimizers.SGD(0.05, momentum=0.5), params,
                      [measure] if measure.training_time else [], batch_size=6, seed=0)
    trainer.train_epoch(x, y, epoch=1, progress=False)
    return measure.score(MeasureContext(model, params, x, y, loss, seed=0, batch_size=10))


SLOW = {"obd:hessian=exact", "obd:hessian=hutchinson,samples=10"}
CASES = [pytest.param(spec, tiny_dense_model, marks=[pytest.mark.slow] if spec in SLOW else [], id=f"{spec}-dense")
         for spec in SPECS] + [pytest.param(spec, tiny_conv_model, marks=pytest.mark.slow, id=f"{spec}-conv")
                               for spec in SPECS]


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "model_fn"), CASES)
def test_every_measure_scores_a_softmax_twin_as_its_logits_model(spec, model_fn):
    x, y = random_data(model_fn(), n=24, seed=1)
    expected = scores_of(spec, model_fn(), LOGITS, x, y)
    for how, loss in [("activation", PROBS), ("activation", LOGITS), ("layer", LOGITS)]:
        got = scores_of(spec, softmax_twin(model_fn, how), loss, x, y)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6 * (np.abs(e).max() + 1e-30),
                                       err_msg=f"{spec}, softmax {how}, from_logits={loss.get_config()['from_logits']}")


def test_detection_and_the_view_shares_variables():
    x, _ = random_data(tiny_dense_model(), n=5)
    logits = tiny_dense_model()(x)
    for how, where in [("activation", "the activation of its last layer"), ("layer", "final Softmax layer 'probs'"),
                       ("activation_layer", "final Activation layer 'probs'")]:
        twin = softmax_twin(tiny_dense_model, how)
        assert probability_output(twin)[0] == "softmax" and where in probability_output(twin)[1]
        view, loss, note = logits_model(twin, PROBS)
        assert loss.get_config()["from_logits"] and "outputs probabilities (softmax" in note
        np.testing.assert_allclose(view(x), logits, rtol=1e-6, atol=1e-6)
        assert {id(v) for v in view.trainable_variables} == {id(v) for v in twin.trainable_variables}
        assert probability_output(view) is None
    plain = tiny_dense_model()
    assert probability_output(plain) is None and logits_model(plain, LOGITS) == (plain, LOGITS, None)
    sigmoid = softmax_twin(tiny_dense_model, "activation")
    sigmoid.layers[-1].activation = keras.activations.sigmoid
    assert probability_output(sigmoid)[0] == "sigmoid"
    assert logits_model(sigmoid, keras.losses.MeanSquaredError())[2] is None  # a regression loss: left as it is


def _digits_softmax(input_shape, num_classes):
    """The digits MLP with a softmax output layer."""
    from tasks.digits import digits_mlp

    model = digits_mlp(input_shape, num_classes)
    model.layers[-1].activation = keras.activations.softmax
    return model


@pytest.mark.slow
def test_a_run_on_a_softmax_model_writes_its_logits_twins_rows(tmp_path):
    register_model("digits", "softmax_mlp")(_digits_softmax)
    try:
        small = dict(epochs=1, thresholds=[0.0, 0.5, 0.9], importance_samples=64, progress=False,
                     measures=["magnitude", "taylor:accumulation=example", "fisher"], aggregations=["weight", "unit"])
        frames = []
        for model in ("mlp", "softmax_mlp"):
            experiment = Experiment(RunConfig(output=str(tmp_path / f"{model}.csv"), model=model, **small))
            experiment.run()
            frames.append(pd.read_csv(tmp_path / f"{model}.csv"))
        notes = experiment.notes
    finally:
        unregister_model("digits", "softmax_mlp")
    assert any("outputs probabilities (softmax" in n for n in notes)
    for column in ("val_loss", "val_accuracy", "sparsity"):
        np.testing.assert_allclose(frames[1][column], frames[0][column], rtol=1e-4, atol=1e-6, err_msg=column)
