"""Every registered measure, present and future, on a tiny Dense and a tiny Conv model.

Checks shapes, dtype, finiteness, non-negativity, determinism under a seed, and
that scoring leaves the model's weights untouched. Training-time measures are
fed by a few real training steps first.
"""

import keras
import numpy as np
import pytest
from helpers import random_data, tiny_conv_model, tiny_dense_model

from harness.pipeline.train import Trainer
from measures import MEASURES, MeasureContext, make_measure, prunable_params

EXTRA_SPECS = ["fisher:kind=true", "obd:hessian=exact", "obd:hessian=hutchinson", "update_tally:groups=[[0],[1,2]]",
               "si:groups=[[0,2],[1]],target=1"]
SPECS = MEASURES.names() + [s for s in EXTRA_SPECS if s.split(":")[0] in MEASURES.names()]
MAY_BE_NEGATIVE = {spec for spec in SPECS if make_measure(spec).signed}  # every other measure must score >= 0
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def scored(spec, model_fn, seed=0):
    """Build a fresh model, train 4 steps (feeding training-time hooks), score; return scores and weights."""
    model = model_fn(seed=seed)
    x, y = random_data(model, n=24, seed=seed + 1)
    params = prunable_params(model, "kernels+biases")
    measure = make_measure(spec)
    trainer = Trainer(model, LOSS, keras.optimizers.SGD(0.05, momentum=0.5), params,
                      [measure] if measure.training_time else [], batch_size=6, seed=seed)
    trainer.train_epoch(x, y, epoch=1, progress=False)
    before = [w.copy() for w in model.get_weights()]
    scores = measure.score(MeasureContext(model, params, x, y, LOSS, seed=seed, batch_size=10))
    after = model.get_weights()
    return params, scores, before, after


@pytest.mark.parametrize("model_fn", [tiny_dense_model, tiny_conv_model], ids=["dense", "conv"])
@pytest.mark.parametrize("spec", SPECS)
def test_measure_contract(spec, model_fn):
    params, scores, before, after = scored(spec, model_fn)
    assert len(scores) == len(params)
    for p, s in zip(params, scores):
        s = np.asarray(s)
        assert s.shape == p.shape, f"{spec}: {p.name}"
        assert s.dtype == np.float32, f"{spec}: {p.name} has dtype {s.dtype}"
        assert np.all(np.isfinite(s)), f"{spec}: {p.name}"
        if spec not in MAY_BE_NEGATIVE:
            assert np.all(s >= 0), f"{spec}: {p.name}"
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), f"{spec} changed the weights"
    _, again, _, _ = scored(spec, model_fn)
    for s, t in zip(scores, again):
        np.testing.assert_array_equal(s, t, err_msg=f"{spec} is not deterministic under a seed")


def test_all_eight_measures_are_registered():
    expected = {"random", "magnitude", "maav", "fisher", "obd", "update_tally", "mas", "si"}
    assert expected <= set(MEASURES.names())


def test_pruning_literature_criteria_are_registered_and_signed_ones_declared():
    assert {"taylor", "snip", "grasp", "synflow", "wanda"} <= set(MEASURES.names())
    assert MAY_BE_NEGATIVE >= {"grasp", "obd:hessian=exact", "obd:hessian=hutchinson"}
    assert "obd" not in MAY_BE_NEGATIVE
