"""The head aggregation on a two-head attention toy: pooled scores, masks and the output, against hand computations."""

import keras
import numpy as np
import pytest

from aggregations import get_aggregation
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data
from tests.test_sweep_methods import THRESHOLDS, direct_losses


def two_heads(seed: int = 0) -> keras.Model:
    """Input(4, 6) -> self-attention (2 heads, key_dim 3, value_dim 2) -> Flatten -> Dense(3)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 6))
    attention = keras.layers.MultiHeadAttention(2, 3, value_dim=2, bias_initializer="random_normal", name="mha")
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(attention(inputs, inputs))))


def head_masks(params, head: int) -> list[np.ndarray]:
    """By hand: q, k, v kernels [:, h, :] and biases [h, :], output kernel [h]; output bias and Dense none."""
    masks = [np.zeros(p.shape, bool) for p in params]
    for m in masks[:6]:
        m[..., head, :] = True
    masks[6][head] = True
    return masks


def test_head_items_pool_and_mask_their_seven_slices():
    params = prunable_params(two_heads(), "all")  # q k v kernels and biases, output kernel and bias, Dense
    assert [p.shape for p in params[:8]] == [(6, 2, 3), (2, 3)] * 2 + [(6, 2, 2), (2, 2), (2, 2, 6), (6,)]
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    items = get_aggregation("head")(params, scores, "mean")
    for head in range(2):
        hand = np.concatenate([s[m] for s, m in zip(scores, head_masks(params, head))])
        assert len(hand) == 2 * (6 * 3 + 3) + (6 * 2 + 2) + 2 * 6  # q, k: 21 each; v: 14; output rows: 12
        np.testing.assert_allclose(items.scores[head], hand.mean(), rtol=1e-12)
        chosen = np.arange(len(items.scores)) == head
        for ids, want in zip(items.element_items, head_masks(params, head)):
            np.testing.assert_array_equal(chosen[ids], want)
    assert (items.sizes[2:] == 1).all() and len(items.scores) == 2 + 6 + 3 * 6 * 4 + 3
    assert not get_aggregation("head").applies_to(params[8:])


def test_a_removed_head_adds_nothing_to_the_attention_output():
    model = two_heads()
    params = prunable_params(model, "all")
    x = random_data(model, n=5)[0]
    for p, m in zip(params, head_masks(params, 0)):
        p.variable.assign(np.where(m, 0.0, p.variable.numpy()))
    got = np.asarray(keras.Model(model.inputs[0], model.get_layer("mha").output)(x))
    wq, bq, wk, bk, wv, bv, wo, bo = (p.variable.numpy().astype(np.float64) for p in params[:8])
    q, k, v = (np.einsum("nsi,ij->nsj", x, w[:, 1]) + b[1] for w, b in [(wq, bq), (wk, bk), (wv, bv)])
    logits = np.einsum("nsj,ntj->nst", q, k) / np.sqrt(3)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum("nst,ntj->nsj", weights, v) @ wo[1] + bo  # head 1 alone, plus the output bias
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_head_sweeps_equal_the_direct_masked_evaluation():
    model = two_heads()
    params = prunable_params(model, "all")
    x, y = random_data(model, n=12, seed=3)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=6)
    scores = [np.random.default_rng([1, i]).random(p.shape) for i, p in enumerate(params)]
    thresholder = Thresholder(get_aggregation("head")(params, scores), "layer", seed=0)
    replacement = replacement_values(params, "zero", 0)
    reference = direct_losses(model, params, thresholder, replacement, evaluate)
    rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate, "auto")
    np.testing.assert_allclose([r["val_loss"] for r in rows], reference, rtol=1e-5)


@pytest.mark.slow
def test_the_heads_of_the_vision_transformer_span_its_four_projections():
    from tasks.vit import vit_model

    keras.utils.set_random_seed(0)
    model = vit_model((8, 8, 1), 10)
    params = prunable_params(model)  # default kernels: each projection is its own leaf layer, owned by its attention
    attention = [p for p in params if isinstance(p.owner, keras.layers.MultiHeadAttention)]
    assert len(attention) == 8 and len({p.layer_index for p in attention}) == 8
    scores = [np.random.default_rng(i).random(p.shape) for i, p in enumerate(params)]
    items = get_aggregation("head")(params, scores, "sum")
    for block in range(2):
        q, k, v, o = attention[4 * block: 4 * block + 4]
        heads = q.shape[1]
        for h in range(heads):
            hand = sum(scores[params.index(p)][(slice(None), h) if p is not o else h].sum() for p in (q, k, v, o))
            ids = {int(items.element_items[params.index(p)][(slice(None), h) if p is not o else h].ravel()[0])
                   for p in (q, k, v, o)}
            assert len(ids) == 1  # one item covers the head's slices in all four projections
            np.testing.assert_allclose(items.scores[ids.pop()], hand, rtol=1e-12)
