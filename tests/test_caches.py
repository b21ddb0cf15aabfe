"""The caches of measures and aggregations: identical keys hit, a change of any key component misses.

Counted, not timed: ``Recent.builds`` counts the values a cache built, a
``tf.function``'s tracing count its traces. Caches: ``measures._cache.COMPILED``
(compiled steps of per-example gradients, the mean loss's gradient and
Hessian-vector products, tap models, layer-input passes, SynFlow's flow) and
``aggregations._items.NUMBERINGS`` (item numberings).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from aggregations import get_aggregation
from aggregations._items import NUMBERINGS, Numbering
from measures import MeasureContext, prunable_params
from measures._cache import COMPILED, Recent, compiled_step
from measures._flow import absolute_flow
from measures._hessian import _hvp_step, hessian_vector_product, mean_loss_gradient
from measures._layer_inputs import input_means
from measures._losses import log_likelihood, targets
from measures._per_example import per_example_mean, pfor_step
from tests.helpers import tiny_conv_model, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def context(model=None, params=None, loss=LOSS, n=7, dtype=np.float32):
    model = model or tiny_dense_model()
    x = np.random.default_rng(0).standard_normal((n, *model.input_shape[1:])).astype(dtype)
    y = np.arange(n) % 3
    return MeasureContext(model, params or prunable_params(model, "kernels+biases"), x, y, loss, batch_size=4)


def builds(fn) -> int:
    """How many values ``fn()`` made COMPILED build."""
    before = COMPILED.builds
    fn()
    return COMPILED.builds - before


def fisher(ctx, transform=tf.square, terms_fn=log_likelihood):
    labels = targets(ctx.loss, ctx.y, 3)
    return per_example_mean(ctx, terms_fn, (labels,), transform)


def other_terms(loss, outputs, y):  # a different module-level terms function: the same value, another key
    return log_likelihood(loss, outputs, y)


def test_recent_builds_once_per_key_holds_its_objects_and_drops_the_least_recently_used():
    cache, held = Recent(2), object()
    assert cache.get("a", (held,), lambda: 1) == 1 and cache.get("a", (), lambda: 2) == 1 and cache.builds == 1
    assert cache._entries["a"][0] == (held,)  # the entry holds the objects whose ids its key uses
    cache.get("b", (), lambda: 3)
    cache.get("a", (), lambda: 4)  # a is now the most recently used
    cache.get("c", (), lambda: 5)  # drops b
    assert (len(cache), cache.builds) == (2, 3)
    assert cache.get("a", (), lambda: 6) == 1 and cache.builds == 3
    assert cache.get("b", (), lambda: 7) == 7 and cache.builds == 4


@pytest.mark.slow
def test_per_example_steps_hit_on_identical_keys_and_miss_on_each_component():
    ctx = context()
    fisher(ctx)
    assert builds(lambda: fisher(ctx)) == 0
    assert builds(lambda: fisher(context(ctx.model, ctx.params))) == 0  # another sample: the same steps
    assert builds(lambda: fisher(context(tiny_dense_model()))) == 2  # model: taps step and tap model
    assert builds(lambda: fisher(context(ctx.model, ctx.params[:2]))) == 2  # parameter list (fewer tapped layers)
    assert builds(lambda: fisher(context(ctx.model, prunable_params(ctx.model, "kernels+biases")))) == 1  # new Params
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # equal config, another object
    assert builds(lambda: fisher(context(ctx.model, ctx.params, loss))) == 1
    assert builds(lambda: fisher(ctx, transform=tf.abs)) == 1  # option: the transform
    assert builds(lambda: fisher(ctx, terms_fn=other_terms)) == 1  # option: the terms
    assert builds(lambda: fisher(ctx)) == 0


@pytest.mark.slow
def test_another_input_dtype_or_shape_traces_the_same_cached_step_anew():
    ctx = context(n=9)
    fisher(ctx)
    step = compiled_step(ctx, "taps", None, tuple(ctx.params), log_likelihood, tf.square)  # a hit: build unused
    traces = step.experimental_get_tracing_count()
    assert builds(lambda: fisher(context(ctx.model, ctx.params, n=5))) == 0  # any number of rows: no trace
    assert step.experimental_get_tracing_count() == traces
    assert builds(lambda: fisher(context(ctx.model, ctx.params, dtype=np.float64))) == 0
    assert step.experimental_get_tracing_count() == traces + 1  # float64 inputs: a new trace of the same step
    conv = context(tiny_conv_model())
    fisher(conv)
    assert compiled_step(conv, "taps", None, tuple(conv.params), log_likelihood, tf.square) is not step


def test_pfor_steps_are_keyed_like_the_tapped_ones():
    ctx = context()
    built = [compiled_step(ctx, "pfor", pfor_step, tuple(ctx.params), log_likelihood, tf.square) for _ in range(2)]
    assert built[0] is built[1]
    assert compiled_step(ctx, "pfor", pfor_step, tuple(ctx.params), log_likelihood, tf.abs) is not built[0]
    assert compiled_step(ctx, "pfor", pfor_step, tuple(ctx.params[:1]), log_likelihood, tf.square) is not built[0]


@pytest.mark.slow
def test_mean_loss_gradient_and_hessian_vector_products_hit_and_miss():
    ctx = context()
    vector = [np.ones(p.shape, np.float32) for p in ctx.params]
    mean_loss_gradient(ctx)
    hessian_vector_product(ctx, vector)
    assert builds(lambda: (mean_loss_gradient(ctx), hessian_vector_product(ctx, vector))) == 0
    assert builds(lambda: mean_loss_gradient(ctx, np.arange(3))) == 0  # a subset of the sample
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for other in (context(tiny_dense_model()), context(ctx.model, ctx.params[1:]), context(ctx.model, ctx.params, loss)):
        assert builds(lambda c=other: mean_loss_gradient(c)) == 1
        assert builds(lambda c=other: hessian_vector_product(c, [np.ones(p.shape, np.float32) for p in c.params])) == 1
    step = compiled_step(ctx, "hvp", _hvp_step, tuple(ctx.params))
    traces = step.experimental_get_tracing_count()
    hessian_vector_product(ctx, vector)
    assert step.experimental_get_tracing_count() == traces  # one probe again: no trace


def test_layer_input_passes_hit_and_miss():
    model = tiny_conv_model()
    layers = [layer for layer in model.layers if hasattr(layer, "kernel")]
    x = np.random.default_rng(0).standard_normal((5, 7, 7, 2)).astype(np.float32)

    def means(model=model, layers=layers, key="k"):
        return input_means(model, layers, [lambda a: tf.reduce_sum(a, axis=0)] * len(layers), x, 2, key)

    means()
    assert builds(means) == 0
    assert builds(lambda: means(key="other")) == 1  # the caller's name for its reducers
    assert builds(lambda: means(layers=layers[:2])) == 1
    other = tiny_conv_model()
    assert builds(lambda: means(other, [layer for layer in other.layers if hasattr(layer, "kernel")])) == 1
    size = len(COMPILED)
    assert builds(lambda: means(key=None)) == 0 and len(COMPILED) == size  # no key: built, not cached
    np.testing.assert_allclose(means(key=None)[0], means()[0])


def test_synflow_flow_is_built_once_per_model():
    model = tiny_dense_model()
    absolute_flow(model)
    assert builds(lambda: absolute_flow(model)) == 0
    assert builds(lambda: absolute_flow(tiny_dense_model())) == 1


@pytest.mark.parametrize("structured_bn", ["zero", "keep"])
def test_numberings_hit_on_identical_keys_and_miss_on_each_component(structured_bn):
    model = tiny_conv_model()
    params = prunable_params(model, "kernels+biases")
    unit = get_aggregation("unit", structured_bn)

    def misses(aggregation, params) -> bool:
        before = NUMBERINGS.builds
        first = Numbering.of(aggregation, params)
        return NUMBERINGS.builds == before + 1 and Numbering.of(aggregation, params) is first

    Numbering.of(unit, params)
    assert Numbering.of(get_aggregation("unit", structured_bn), params) is Numbering.of(unit, params)
    assert misses(get_aggregation("filter", structured_bn), params)  # the aggregation's class
    assert misses(get_aggregation("unit:direction=out", structured_bn), params)  # an option
    assert misses(get_aggregation("unit", {"zero": "keep", "keep": "zero"}[structured_bn]), params)  # a run option
    assert misses(unit, params[:2])  # the parameter list
    assert misses(unit, prunable_params(model, "kernels+biases"))  # new Params of the same variables
