"""Units scored by their incoming weights, outgoing weights or whole group, removed whole (aggregations/unit.py)."""

import keras
import numpy as np
import pytest

from aggregations import get_aggregation
from harness.thresholding.controls import make_control
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.masks import Schedule
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data, tiny_conv_model, tiny_dense_model
from tests.test_sweep_methods import THRESHOLDS, direct_losses, fallback_model


def three_layers(seed: int = 0) -> keras.Model:
    """Input(3) -> Dense(4, relu) -> Dense(3, relu) -> Dense(2): hand-set weights, every entry distinct."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    h1 = keras.layers.Dense(4, activation="relu", name="d1")(inputs)
    h2 = keras.layers.Dense(3, activation="relu", name="d2")(h1)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d3")(h2))
    for k, layer in enumerate(model.layers[1:]):
        n_in, n_out = layer.kernel.shape
        layer.kernel.assign(np.arange(n_in * n_out, dtype=np.float32).reshape(n_in, n_out) / 10 - k)
        layer.bias.assign(np.linspace(0.1, 0.2, n_out, dtype=np.float32))
    return model


def conv_bn(seed: int = 0) -> keras.Model:
    """Input(5, 5, 2) -> Conv(3, 3x3, relu) -> BatchNorm -> Flatten -> Dense(4, relu) -> Dense(2)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 5, 2))
    h = keras.layers.Conv2D(3, 3, activation="relu", bias_initializer="random_normal", name="c1")(inputs)
    h = keras.layers.BatchNormalization(beta_initializer="random_normal", gamma_initializer="random_uniform",
                                        moving_mean_initializer="random_normal", name="bn")(h)
    h = keras.layers.Dense(4, activation="relu", name="d1")(keras.layers.Flatten()(h))
    return keras.Model(inputs, keras.layers.Dense(2, name="d2")(h))


def hand_scores(params):
    """Distinct scores: element e of parameter i scores i + e / size (what they are does not matter, only the sums)."""
    return [i + np.arange(int(np.prod(p.shape)), dtype=np.float64).reshape(p.shape) / np.prod(p.shape)
            for i, p in enumerate(params)]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "l2"])
def test_pooled_scores_of_each_direction_equal_the_hand_computation(pooling):
    params = prunable_params(three_layers(), "kernels+biases")  # k1 (3, 4), b1, k2 (4, 3), b2, k3 (3, 2), b3
    s = hand_scores(params)
    k1, b1, k2, b2, k3, b3 = s
    reduce = {"mean": np.mean, "sum": np.sum, "max": np.max, "l2": lambda v: np.sqrt(np.sum(v**2))}[pooling]
    incoming = [reduce(np.r_[k[:, j], b[j]]) for k, b in [(k1, b1), (k2, b2), (k3, b3)] for j in range(k.shape[1])]
    outgoing = [reduce(k2[j]) for j in range(4)] + [reduce(k3[j]) for j in range(3)]
    group = [reduce(np.r_[k1[:, j], b1[j], k2[j]]) for j in range(4)] + \
        [reduce(np.r_[k2[:, j], b2[j], k3[j]]) for j in range(3)]
    out = get_aggregation("unit:direction=out")(params, s, pooling)
    np.testing.assert_allclose(get_aggregation("unit")(params, s, pooling).scores, incoming, rtol=1e-12)
    np.testing.assert_allclose(out.scores, outgoing + incoming[7:], rtol=1e-12)  # the output layer falls back to in
    np.testing.assert_allclose(get_aggregation("unit:direction=group")(params, s, pooling).scores,
                               group + incoming[7:], rtol=1e-12)
    assert out.notes == ("d3: its outputs are the model's outputs; its units pool their incoming weights "
                         "(direction 'in')",)
    np.testing.assert_array_equal(out.sizes, [4] * 4 + [5] * 3 + [4] * 2)  # sizes: what each unit owns


def test_filter_out_pools_every_position_of_its_channel_after_flatten():
    params = prunable_params(conv_bn(), "kernels")  # conv (3, 3, 2, 3), d1 (3 * 3 * 3, 4), d2 (4, 2)
    s = hand_scores(params)
    items = get_aggregation("filter:direction=out")(params, s, "sum")
    rows = np.arange(27) % 3  # Flatten of (3, 3, 3): row r is channel r % 3
    np.testing.assert_allclose(items.scores[:3], [s[1][rows == c].sum() for c in range(3)], rtol=1e-12)
    np.testing.assert_allclose(items.scores[3:], np.r_[s[1].ravel(), s[2].ravel()])  # Dense: single weights
    assert items.notes == ()
    group = get_aggregation("unit:direction=group")(params, s, "sum")  # BatchNorm lies between: skipped, not a stop
    np.testing.assert_allclose(group.scores[:3], [s[0][..., c].sum() + s[1][rows == c].sum() for c in range(3)])


def activations(model, names):
    """The outputs of the named layers for fixed inputs."""
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
    outputs = probe(random_data(model, n=8)[0], training=False)
    return [np.asarray(a) for a in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["in", "out", "group"])
def test_removing_a_unit_zeroes_exactly_its_output_whatever_the_direction(direction):
    model = three_layers()
    params = prunable_params(model, "kernels+biases")
    before = activations(model, ["d1", "d2"])
    items = get_aggregation(f"unit:direction={direction}")(params, hand_scores(params), "mean")
    thresholder = Thresholder(items, "layer", seed=0)
    for p, mask in zip(params, thresholder.masks(0.25)):
        p.variable.assign(np.where(mask, 0.0, p.variable.numpy()))
    removed = thresholder.item_mask(0.25)
    after = activations(model, ["d1", "d2"])
    gone1, gone2 = removed[:4], removed[4:7]
    assert gone1.sum() == 1 and gone2.sum() == 1  # round(0.25 * 16) = 4 of 4 x 4, round(0.25 * 15) = 4 of 3 x 5
    assert (after[0][:, gone1] == 0).all() and (after[1][:, gone2] == 0).all()
    np.testing.assert_array_equal(after[0][:, ~gone1], before[0][:, ~gone1])  # nothing else of d1 changed
    assert (before[0][:, gone1] != 0).any() and (before[1][:, gone2] != 0).any()


def test_group_items_mask_all_their_slices_and_batchnorm():
    model = conv_bn()
    params = prunable_params(model, "all")  # c1 kernel, bias, bn gamma, beta, d1 kernel, bias, d2 kernel, bias
    scores = hand_scores(params)
    items = get_aggregation("filter:direction=group")(params, scores, "mean")
    item = int(np.argmin(items.scores[:3]))
    chosen = np.zeros(len(items.scores), bool)
    chosen[item] = True
    masks = [chosen[ids] for ids in items.element_items]
    masks = [m | (c >= 0) & chosen[np.maximum(c, 0)] if c is not None else m
             for m, c in zip(masks, items.element_covers)]
    expected = [np.zeros(p.shape, bool) for p in params]
    expected[0][..., item] = expected[1][item] = expected[2][item] = expected[3][item] = True
    expected[4][np.arange(27) % 3 == item, :] = True  # the Dense rows of every position of its channel
    for got, want in zip(masks, expected):
        np.testing.assert_array_equal(got, want)
    sizes = items.sizes[:3]
    np.testing.assert_array_equal(sizes, 3 * 3 * 2 + 1 + 2)  # owned: kernel slice, bias, gamma, beta
    thresholder = Thresholder(items, "layer", seed=0)
    t = sizes[0] / (3 * sizes[0]) - 1e-3  # one filter of three in its layer
    assert thresholder.item_mask(t)[:3].sum() == 1
    assert thresholder.n_replaced(t) == sum(m.sum() for m in thresholder.masks(t))
    assert thresholder.masks(t)[4].sum() >= 9 * 4  # the covered rows


@pytest.mark.slow
@pytest.mark.parametrize("structured_bn", ["zero", "keep"])
def test_a_removed_filter_is_exactly_zero_after_batchnorm(structured_bn):
    model = conv_bn()
    params = prunable_params(model, "all")
    scores = [np.full(p.shape, 10.0) if p.layer.name == "bn" else s for p, s in zip(params, hand_scores(params))]
    items = get_aggregation("filter", structured_bn=structured_bn)(params, scores, "mean")
    thresholder = Thresholder(items, "global", seed=0)  # batchnorm's parameters score highest
    removed = thresholder.item_mask(0.1)[:3]
    assert removed.sum() == 1  # round(0.1 * 185) = 19: one filter of 19 (keep) or 21 (zero) parameters
    for p, mask in zip(params, thresholder.masks(0.1)):
        p.variable.assign(np.where(mask, 0.0, p.variable.numpy()))
    (post_bn,) = activations(model, ["bn"])
    if structured_bn == "zero":
        assert (post_bn[..., removed] == 0).all()
    else:  # the kernel-only behaviour: the filter outputs beta - gamma * mean / sqrt(var + eps), a constant
        assert (post_bn[..., removed] != 0).all()
        assert np.ptp(post_bn[..., removed]) < 1e-6
    assert (post_bn[..., ~removed] != 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("model_fn,aggregation", [
    (tiny_dense_model, "unit:direction=out"), (tiny_dense_model, "unit:direction=group"),
    (tiny_conv_model, "filter:direction=out"), (tiny_conv_model, "unit:direction=group"),
    pytest.param(fallback_model, "unit:direction=group", marks=pytest.mark.slow),
    pytest.param(conv_bn, "filter:direction=group", marks=pytest.mark.slow)])
def test_shrunk_and_masked_sweeps_equal_the_direct_masked_evaluation(model_fn, aggregation):
    model = model_fn()
    x, y = random_data(model, n=24, seed=3)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=10)
    for seed, prunable in enumerate(["kernels", "kernels+biases", "all"]):
        params = prunable_params(model, prunable)
        scores = [np.random.default_rng([seed, i]).random(p.shape) for i, p in enumerate(params)]
        thresholder = Thresholder(get_aggregation(aggregation)(params, scores), "layer", seed=seed)
        replacement = replacement_values(params, "zero", seed)
        reference = direct_losses(model, params, thresholder, replacement, evaluate)
        for method in ("masked", "shrunk") if prunable != "all" else ("masked",):  # shrunk: kernels and biases
            rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate, method)
            np.testing.assert_allclose([r["val_loss"] for r in rows], reference, rtol=1e-5, err_msg=method)
            assert [r["n_replaced"] for r in rows] == [thresholder.n_replaced(t) for t in THRESHOLDS]


@pytest.mark.parametrize("control", ["random_matched", "shuffled"])
def test_controls_of_group_items_mask_what_the_items_cover(control):
    params = prunable_params(three_layers(), "kernels")
    items = get_aggregation("unit:direction=group")(params, hand_scores(params), "mean")
    measure = Thresholder(items, "layer", seed=0)
    control_thresholder = make_control(control, measure, items.layers, seed=5)
    zero = replacement_values(params, "zero", 0)
    schedule, own = Schedule(params, control_thresholder, zero, THRESHOLDS), Schedule(params, measure, zero, THRESHOLDS)
    if control == "shuffled":  # per layer, as many weights as the measure's mask, covers included
        np.testing.assert_array_equal(np.c_[schedule.bounds], np.c_[own.bounds])
    else:  # whole units: every removed unit's consuming rows go with it
        steps = schedule.steps
        np.testing.assert_array_equal(steps[1], np.minimum(steps[1], steps[0].max(0)[:, None]))


def test_direction_is_in_the_spec_and_in_the_run_id_only_when_set():
    from harness.pipeline.config import RunConfig

    base = dict(measures=["magnitude"], progress=False)
    plain = RunConfig(aggregations=["weight", "unit"], **base)
    assert RunConfig(aggregations=["weight", "unit:direction=in"], **base).run_id == plain.run_id
    out = RunConfig(aggregations=["weight", "unit:direction=out"], **base)
    assert out.aggregations == ["weight", "unit:direction=out"] and out.run_id != plain.run_id
    assert RunConfig(structured_bn="keep", **base).run_id == RunConfig(**base).run_id  # no BatchNorm prunable
    assert RunConfig(prunable="all", structured_bn="keep", **base).run_id != \
        RunConfig(prunable="all", **base).run_id


@pytest.mark.slow
def test_a_run_records_the_direction_in_the_csv_and_the_fallback_in_its_notes(tmp_path):
    import json

    import pandas as pd

    from harness.pipeline import results
    from harness.pipeline.config import RunConfig
    from harness.pipeline.experiment import Experiment

    out = tmp_path / "r.csv"
    config = RunConfig(output=str(out), measures=["magnitude"], aggregations=["unit", "unit:direction=out",
                       "unit:direction=group"], epochs=1, thresholds=[0.0, 0.5], progress=False)
    Experiment(config).run()
    frame = pd.read_csv(out)
    assert sorted(set(frame.aggregation)) == ["unit", "unit:direction=group", "unit:direction=out"]
    at_half = frame[frame.threshold == 0.5].set_index("aggregation")
    assert at_half.loc["unit:direction=group", "n_replaced"] > at_half.loc["unit", "n_replaced"]  # the rows go too
    notes = json.loads(results.sidecar(out, config.run_id, ".json").read_text())["notes"]
    assert "aggregation 'unit:direction=out': logits: its outputs are the model's outputs; its units pool their " \
           "incoming weights (direction 'in')" in notes


@pytest.mark.slow
def test_the_catalogue_shows_the_direction_option():
    from aggregations import AGGREGATIONS
    from harness.cli import catalog

    options = {p.name: p.options for p in catalog.plugins("aggregation")}
    for name in ("unit", "filter"):
        assert [(n, o.default, o.choices) for n, o in options[name].items()] == [("direction", "in", ("in", "out", "group"))]
        assert AGGREGATIONS.get(name).options == options[name]
    assert options["weight"] == {} and options["head"] == {}
    assert "  unit          Pool each unit's incoming weights" in catalog.listing()
    assert "direction: in | out | group (default in)" in catalog.listing()


def test_a_residual_connection_falls_back_with_a_note():
    inputs = keras.Input((4,))
    d1 = keras.layers.Dense(4, activation="relu", name="d1")(inputs)
    d2 = keras.layers.Dense(4, name="d2")(d1)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d3")(keras.layers.Add(name="add")([d1, d2])))
    params = prunable_params(model, "kernels")
    s = hand_scores(params)
    out = get_aggregation("unit:direction=out")(params, s, "sum")
    np.testing.assert_allclose(out.scores, get_aggregation("unit")(params, s, "sum").scores)  # every layer falls back
    assert out.notes == ("d1: d1 feeds 2 layers (a branch or residual connection); its units pool their incoming "
                         "weights (direction 'in')",
                         "d2: Add add lies before the next layer; its units pool their incoming weights (direction 'in')",
                         "d3: its outputs are the model's outputs; its units pool their incoming weights "
                         "(direction 'in')")
