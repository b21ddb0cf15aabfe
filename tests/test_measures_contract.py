"""Every registered measure, present and future, on a tiny Dense and a tiny Conv model.

Checks shapes, dtype, finiteness, non-negativity, determinism under a seed, and
that scoring leaves the model's weights untouched. Training-time measures are
fed by a few real training steps first.
"""

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.pipeline.train import Trainer
from measures import MEASURES, MeasureContext, make_measure, prunable_params
from tests.helpers import (
    compiled_step,
    loss_case,
    mean_grads,
    per_example_grads,
    random_data,
    run_steps,
    tiny_conv_model,
    tiny_dense_model,
)
from tests.test_grasp import flat
from tests.test_grasp import reference as grasp_reference
from tests.test_obd import explicit_ggn_diagonal, saliency

EXTRA_SPECS = ["fisher:kind=true", "obd:hessian=exact", "obd:hessian=hutchinson,samples=10",  # 10 probes: the same path
               "update_tally:groups=[[0],[1,2]]", "si:groups=[[0,2],[1]],target=1"]
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


QUICK = {("magnitude", "dense"), ("fisher", "dense")}  # the quick tier's share of the contract; every case runs in full
CASES = [pytest.param(spec, model_fn, id=f"{spec}-{name}", marks=[] if (spec, name) in QUICK else [pytest.mark.slow])
         for spec in SPECS for name, model_fn in (("dense", tiny_dense_model), ("conv", tiny_conv_model))]


@pytest.mark.parametrize("spec,model_fn", CASES)
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


ORIGINAL = ["random", "magnitude", "maav", "fisher", "obd", "update_tally", "mas", "si"]
LITERATURE = ["taylor", "snip", "grasp", "synflow", "wanda"]


GRADIENT_MEASURES = {"fisher", "snip", "taylor:accumulation=example"}


def layer_inputs(ctx):
    """Inputs (N, in) of the tiny Dense model's two layers: x and tanh(x W1 + b1)."""
    w1, b1 = (v.numpy().astype(np.float64) for v in ctx.variables[:2])
    return [ctx.x.astype(np.float64), np.tanh(ctx.x @ w1 + b1)]


def output_norm_grads(ctx):
    """Per-example gradients of ||f(x_n)||^2, one tape per example."""
    grads = []
    for n in range(len(ctx.x)):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(ctx.model(ctx.x[n:n + 1], training=False) ** 2)
        grads.append([g.numpy().astype(np.float64) for g in tape.gradient(value, ctx.variables)])
    return grads


def synflow_reference(w):
    """|theta * dR/d|theta|| / R for R = 1^T (|W2|^T (|W1|^T 1 + |b1|) + |b2|): tanh is the identity on the skeleton."""
    w1, b1, w2, b2 = (np.abs(v) for v in w)
    hidden = w1.sum(0) + b1
    flow = hidden @ w2.sum(1) + b2.sum()
    into_hidden = w2.sum(1)
    return [w1 * into_hidden / flow, b1 * into_hidden / flow, hidden[:, None] * w2 / flow, b2 / flow]


def sample_reference(name, ctx, loss_fn):
    """Brute-force scores of a data-reading or data-free measure on the tiny Dense model (kernels and biases)."""
    w = [v.numpy().astype(np.float64) for v in ctx.variables]
    g = per_example_grads(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn) if name in GRADIENT_MEASURES else None
    inputs = layer_inputs(ctx)
    rms = [np.sqrt(np.mean(a ** 2, 0))[:, None] for a in inputs]
    reference = {
        "magnitude": lambda: [np.abs(v) for v in w],
        "random": lambda: [rng.random(v.shape, dtype=np.float32) for rng in [np.random.default_rng(0)] for v in w],
        "fisher": lambda: [np.mean(np.square(k), 0) for k in zip(*g)],
        "mas": lambda: [np.mean(np.abs(k), 0) for k in zip(*output_norm_grads(ctx))],
        "snip": lambda: [np.abs(m * v) for m, v in zip(mean_grads(g), w)],
        "taylor:accumulation=example": lambda: [v ** 2 * np.mean(np.square(k), 0) for v, k in zip(w, zip(*g))],
        "maav": lambda: [np.abs(a).mean(0)[:, None] * np.abs(v) if v.ndim == 2 else np.abs(v)
                         for a, v in zip([inputs[0], None, inputs[1], None], w)],
        "wanda": lambda: [r * np.abs(v) if v.ndim == 2 else np.abs(v) for r, v in zip([rms[0], 1, rms[1], 1], w)],
        "synflow": lambda: synflow_reference(w),
    }
    return reference[name]()


def trained_reference(name):
    """Scores of a training-time measure after 5 SGD-with-momentum steps, and its numpy reference from the steps."""
    model = tiny_dense_model(seed=4)
    x, y = random_data(model, n=20, seed=6)
    params = prunable_params(model, "kernels+biases")
    measure = make_measure(name)
    measure.build(params)
    step = compiled_step(model, measure, keras.optimizers.SGD(0.05, momentum=0.5), [p.variable for p in params])
    records = run_steps(step, x, y, steps=5)
    scores = measure.score(MeasureContext(model, params, x, y, LOSS))
    moved = [sum(a[k].astype(np.float64) - b[k] for _, b, a in records) for k in range(len(params))]
    if name == "update_tally":
        return scores, [sum(np.abs(a[k].astype(np.float64) - b[k]) for _, b, a in records) for k in range(len(params))]
    omega = [sum(-g[k].astype(np.float64) * (a[k] - b[k]) for g, b, a in records) for k in range(len(params))]
    return scores, [np.maximum(o, 0) / (d ** 2 + 1e-3) for o, d in zip(omega, moved)]


def docstring_sections(name):
    """The registered class's docstring: its formula lines (indented, with = or ~) and its Source paragraph."""
    doc = inspect.getdoc(MEASURES.get(name))
    formula = [line for line in doc.splitlines() if line.startswith("    ") and re.search(r"[=~]", line)]
    source = doc.split("Source:")[1].strip() if "Source:" in doc else ""
    return formula, source


@pytest.mark.parametrize("name", ORIGINAL + LITERATURE)
def test_registered_measure_documents_its_formula_and_source(name):
    formula, source = docstring_sections(name)
    assert formula, f"{name}: no formula line in the docstring"
    assert re.search(r"\b(19|20)\d\d\b|seeds? \d{3}", source), f"{name}: Source names no paper year or seed: {source!r}"


@pytest.mark.parametrize("spec", ["magnitude", "random", "maav"] + [
    pytest.param(spec, marks=pytest.mark.slow)
    for spec in ["fisher", "mas", "snip", "taylor:accumulation=example", "wanda", "synflow", "obd", "grasp"]])
def test_registered_measure_scores_match_a_brute_force_reference(spec):
    ctx, loss_fn = loss_case("dense_ce")
    scores = make_measure(spec).score(ctx)
    if spec == "obd":  # 0.5 * diag(GGN) * w^2, GGN from the full Jacobian
        expected = saliency(explicit_ggn_diagonal(ctx.model, ctx.variables, ctx.x, ctx.y, loss_fn), ctx.variables)
    elif spec == "grasp":  # w * (H g), H the explicit Hessian of the mean loss
        expected = grasp_reference(ctx, loss_fn)
    else:
        expected = flat(sample_reference(spec, ctx, loss_fn))
    np.testing.assert_allclose(flat(scores), expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max(), err_msg=spec)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["update_tally", "si"])
def test_training_time_measure_scores_match_the_steps_it_observed(name):
    scores, expected = trained_reference(name)
    np.testing.assert_allclose(flat(scores), flat(expected), rtol=1e-4, atol=1e-6, err_msg=name)
    assert flat(expected).max() > 0  # the steps moved the weights


@pytest.mark.slow
def test_exactly_the_signed_measures_score_below_zero():
    declared = {spec for spec in ORIGINAL + LITERATURE if make_measure(spec).signed}
    assert declared == {"grasp"}
    ctx, loss_fn = loss_case("dense_ce")
    assert flat(make_measure("grasp").score(ctx)).min() < 0  # the sign carries GraSP's criterion
    assert MAY_BE_NEGATIVE >= {"grasp", "obd:hessian=exact", "obd:hessian=hutchinson,samples=10"}
    assert not make_measure("obd").signed  # its default GGN diagonal is >= 0 (the contract checks the scores)
