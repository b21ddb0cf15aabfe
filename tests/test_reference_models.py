"""ResNet-20, the VGG-style CNN with BatchNorm and the small vision transformer: built, trained, scored and swept.

Tiny widths keep it fast: every registered measure scores each model after one
training step (finite, the parameters' shapes), every aggregation forms its
items, and a masked sweep runs. Full-size builds are checked against their
documented parameter counts. Attention projections are prunable kernels, and
their per-example gradients (an in-graph loop, not pfor) match a brute-force
per-example loop. Residual models sweep with ``shrunk`` as they do masked,
with a note per layer.
"""

import keras
import numpy as np
import pytest

import aggregations
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from harness.pipeline.train import Trainer
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.structure import Structure
from harness.thresholding.sweep import sweep
from harness.thresholding.threshold import Thresholder
from measures import MeasureContext, make_measure, prunable_params
from tasks import get_task
from tasks.resnet20 import resnet20_model
from tasks.vgg_bn import vgg_bn_model
from tasks.vit import vit_model
from tests.helpers import per_example_grads, random_data
from tests.test_measures_contract import SPECS

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
TINY = {
    "resnet20_B": lambda: resnet20_model((8, 8, 1), 3, width=2, blocks=1),
    "resnet20_A": lambda: resnet20_model((8, 8, 1), 3, width=2, blocks=1, shortcut="A"),
    "vgg_bn": lambda: vgg_bn_model((8, 8, 1), 3, stages=((2,), (4,)), hidden=4),
    "vit": lambda: vit_model((8, 8, 1), 3, patch=4, dim=4, depth=1, heads=2, mlp=4),
}
REFUSED = {("vit", "synflow")}  # attention, LayerNorm and the position embedding carry no synaptic flow


def trained(name):
    """A tiny model, its data and its prunable kernels, after one step feeding every training-time measure."""
    keras.utils.set_random_seed(0)
    model = TINY[name]()
    x, y = random_data(model, n=12)
    params = prunable_params(model, "kernels")
    measures = {spec: make_measure(spec) for spec in SPECS if (name, spec.split(":")[0]) not in REFUSED}
    hooks = [m for m in measures.values() if m.training_time]
    Trainer(model, LOSS, keras.optimizers.SGD(0.01), params, hooks, batch_size=12, seed=0).train_epoch(
        x, y, 1, progress=False)
    return model, x, y, params, measures


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_every_measure_and_aggregation_runs_on_each_reference_model(name):
    model, x, y, params, measures = trained(name)
    for spec, measure in measures.items():
        scores = measure.score(MeasureContext(model, params, x, y, LOSS, seed=0, batch_size=6))
        assert [s.shape for s in scores] == [p.shape for p in params], spec
        assert all(np.all(np.isfinite(s)) for s in scores), spec
    scores = measures["magnitude"].score(MeasureContext(model, params, x, y, LOSS))
    evaluate = Evaluator(model, LOSS, x, y)
    zeros = [np.zeros(p.shape, np.float32) for p in params]
    for agg in aggregations.AGGREGATIONS.names():
        aggregation = aggregations.get_aggregation(agg)
        if not aggregation.applies_to(params):
            assert (agg == "filter" and not any(p.kind == "conv" for p in params)) or \
                (agg == "head" and not any(isinstance(p.owner, keras.layers.MultiHeadAttention) for p in params))
            continue
        items = aggregation(params, scores, "mean")
        rows = sweep(params, Thresholder(items, "layer", "none", 0), zeros, [0.0, 0.5, 1.0], evaluate, "masked")
        assert rows[0]["val_loss"] == pytest.approx(evaluate()[0], rel=1e-5) and rows[-1]["sparsity"] == 1.0, agg


@pytest.mark.slow
def test_synflow_on_the_transformer_is_refused_before_any_data_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(type(get_task("digits")), "load", lambda self, data_dir=None: pytest.fail("data were loaded"))
    with pytest.raises(ValueError, match="measure 'synflow' cannot score model 'vit': synflow supports layers"):
        Experiment(RunConfig(task="digits", model="vit", measures=["magnitude", "synflow"],
                             output=str(tmp_path / "r.csv"), progress=False))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_full_size_parameter_counts():
    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    assert trainable(resnet20_model((32, 32, 3), 10)) == 272_474  # He et al.: 0.27M
    assert trainable(resnet20_model((32, 32, 3), 10, shortcut="A")) == 269_722
    assert resnet20_model((28, 28, 1), 10).output_shape == (None, 10)
    assert trainable(vgg_bn_model((32, 32, 3), 10)) == 551_146
    assert trainable(vit_model((28, 28, 1), 10)) == 19_594
    assert trainable(vit_model((64,), 10)) == 18_154
    for task in ("mnist", "cifar10"):
        assert {"resnet20", "vgg_bn"} <= set(get_task(task).models)
    assert "vit" in get_task("mnist").models and "vit" in get_task("digits").models


def test_attention_projections_are_prunable_kernels_named_by_their_path():
    model = vit_model((8, 8, 1), 3, patch=4, dim=4, depth=1, heads=2, mlp=4)
    attention = [p for p in prunable_params(model) if p.kind == "einsum"]
    assert [p.name for p in attention] == [f"block1_attention/{n}/kernel" for n in ("query", "key", "value",
                                                                                     "attention_output")]
    assert [p.shape for p in attention] == [(4, 2, 2)] * 3 + [(2, 2, 4)]
    assert len(prunable_params(model, "kernels+biases")) == 2 * len(prunable_params(model))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["fisher", "taylor:accumulation=example"])
def test_per_example_gradients_of_attention_kernels_match_a_loop(spec):
    keras.utils.set_random_seed(0)
    model = vit_model((8, 8, 1), 3, patch=4, dim=4, depth=1, heads=2, mlp=4)
    x, y = random_data(model, n=7)
    params = [p for p in prunable_params(model, "kernels+biases") if p.kind == "einsum"]
    scores = make_measure(spec).score(MeasureContext(model, params, x, y, LOSS, batch_size=3))
    grads = per_example_grads(model, [p.variable for p in params], x, y, LOSS)
    squares = [np.mean([g[i] ** 2 for g in grads], axis=0) for i in range(len(params))]
    expected = [s * (p.variable.numpy().astype(np.float64) ** 2 if spec.startswith("taylor") else 1.0)
                for s, p in zip(squares, params, strict=True)]
    atol = 1e-6 * max(np.abs(e).max() for e in expected)  # the key bias's gradient is 0 up to round-off
    for p, s, e in zip(params, scores, expected, strict=True):
        np.testing.assert_allclose(s, e, rtol=2e-4, atol=atol, err_msg=p.name)


def residual_toy(seed: int = 0) -> keras.Model:
    """Input(6) -> Dense(4) -> two residual blocks (Dense-Dense plus the identity, then ReLU) -> Dense(3)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(4, activation="relu", bias_initializer="random_normal", name="stem")(inputs)
    for b in (1, 2):
        r = keras.layers.Dense(4, activation="relu", bias_initializer="random_normal", name=f"b{b}_fc1")(h)
        r = keras.layers.Dense(4, bias_initializer="random_normal", name=f"b{b}_fc2")(r)
        h = keras.layers.ReLU(name=f"b{b}_out")(keras.layers.Add(name=f"b{b}_add")([h, r]))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(h), name="residual_toy")


@pytest.mark.slow
@pytest.mark.parametrize("aggregation", ["weight", "unit"])
def test_shrunk_on_a_residual_toy_equals_masked_and_says_why_per_layer(aggregation):
    model = residual_toy()
    x, y = random_data(model, n=40)
    params = prunable_params(model, "kernels+biases")
    scores = make_measure("magnitude").score(MeasureContext(model, params, x, y, LOSS))
    items = aggregations.get_aggregation(aggregation)(params, scores, "mean")
    thresholds = [0.0, 0.25, 0.5, 0.75, 1.0]
    zeros = [np.zeros(p.shape, np.float32) for p in params]
    rows = {method: sweep(params, Thresholder(items, "layer", "none", 0), zeros, thresholds, Evaluator(model, LOSS, x, y),
                          method) for method in ("masked", "shrunk")}
    for masked, shrunk in zip(rows["masked"], rows["shrunk"], strict=True):
        assert shrunk["val_loss"] == pytest.approx(masked["val_loss"], rel=1e-5)
        assert shrunk["val_accuracy"] == masked["val_accuracy"] and shrunk["sparsity"] == masked["sparsity"]
    notes = Structure(model).notes
    assert len(notes) == 6 and all("not one chain of supported layers (Add 'b1_add' joins 2 tensors" in n for n in notes)
    assert notes[0].startswith("stem: the model is not one chain")
