"""Exact counts, ties, layer vs global scope, nested masks, unsplit items."""

import numpy as np
import pytest

from aggregations import Items
from harness.thresholding.threshold import Thresholder, normalize_per_layer, round_half_up


def weight_items(scores_per_layer):
    """Per-weight items: one parameter per layer, each element its own item."""
    scores, layers, element_items, offset = [], [], [], 0
    for layer, s in enumerate(scores_per_layer):
        s = np.asarray(s, float)
        scores.append(s.ravel())
        layers.append(np.full(s.size, layer))
        element_items.append(np.arange(offset, offset + s.size).reshape(s.shape))
        offset += s.size
    scores = np.concatenate(scores)
    return Items(scores, np.ones(len(scores), np.int64), np.concatenate(layers), element_items)


@pytest.mark.parametrize("n", [7, 10, 33, 100])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_exact_counts_for_per_weight_items(n, scope):
    rng = np.random.default_rng(n)
    items = weight_items([rng.random(n)])
    thr = Thresholder(items, scope, seed=0)
    for t in np.linspace(0, 1, 21):
        expected = int(np.floor(t * n + 0.5 + 1e-9))
        assert thr.n_replaced(t) == expected
        assert sum(int(m.sum()) for m in thr.masks(t)) == expected


def test_lowest_scores_are_replaced_first():
    items = weight_items([[0.5, 0.1, 0.9, 0.3]])
    thr = Thresholder(items, "layer")
    assert thr.masks(0.5)[0].tolist() == [False, True, False, True]
    assert thr.masks(0.25)[0].tolist() == [False, True, False, False]


def test_ties_are_never_over_or_under_pruned():
    # Eight tied scores: a value cut "score < cutoff" would replace 0 or 8 of them.
    items = weight_items([np.zeros(8)])
    for t, k in [(0.25, 2), (0.5, 4), (0.75, 6)]:
        assert Thresholder(items, "layer", seed=3).n_replaced(t) == k
        assert Thresholder(items, "layer", seed=3).masks(t)[0].sum() == k


def test_ties_are_broken_by_a_seeded_rule():
    items = weight_items([np.zeros(50)])
    a = Thresholder(items, "layer", seed=1).masks(0.5)[0]
    b = Thresholder(items, "layer", seed=1).masks(0.5)[0]
    c = Thresholder(items, "layer", seed=2).masks(0.5)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_masks_are_nested_prefixes():
    rng = np.random.default_rng(0)
    items = weight_items([rng.integers(0, 3, 40), rng.integers(0, 3, 25)])  # many ties
    for scope in ["layer", "global"]:
        thr = Thresholder(items, scope, seed=5)
        previous = [np.zeros_like(m) for m in thr.masks(0.0)]
        for t in np.linspace(0, 1, 41):
            current = thr.masks(t)
            for before, now in zip(previous, current):
                assert not np.any(before & ~now)
            previous = current
        assert all(m.all() for m in thr.masks(1.0))


def test_layer_scope_thresholds_each_layer_separately():
    # Layer 0 scores are all tiny, layer 1 all large.
    items = weight_items([np.full(10, 1e-3) + np.arange(10) * 1e-4, 100 + np.arange(10.0)])
    layer = Thresholder(items, "layer").masks(0.5)
    assert layer[0].sum() == 5 and layer[1].sum() == 5
    globl = Thresholder(items, "global").masks(0.5)
    assert globl[0].sum() == 10 and globl[1].sum() == 0


def test_global_normalization_by_layer_max():
    items = weight_items([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(normalize_per_layer(items.scores, items.layers, "max"),
                               [0.25, 0.5, 0.75, 1.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(normalize_per_layer(items.scores, items.layers, "mean"),
                               np.array([1, 2, 3, 4, 1, 2, 3, 4]) / 2.5)
    masks = Thresholder(items, "global", "max").masks(0.5)
    assert masks[0].tolist() == [True, True, False, False] and masks[1].tolist() == [True, True, False, False]


def test_items_are_never_split_and_stop_once_target_reached():
    # Three items of sizes 3, 1, 4 (scores 0.1, 0.2, 0.3) over an 8-element parameter.
    ids = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    items = Items(np.array([0.1, 0.2, 0.3]), np.array([3, 1, 4]), np.zeros(3, np.int64), [ids])
    thr = Thresholder(items, "layer")
    # round(t * 8) = 1 -> the first item (3 params) is taken whole.
    assert thr.masks(0.125)[0].tolist() == [True] * 3 + [False] * 5
    assert thr.n_replaced(0.125) == 3
    # target 4 -> items 0 and 1 (3 + 1 = 4 params), exactly.
    assert thr.n_replaced(0.5) == 4
    # target 5 -> all three items.
    assert thr.n_replaced(0.625) == 8
    for t in np.linspace(0, 1, 17):
        mask = thr.masks(t)[0]
        for item in range(3):
            assert len(set(mask[ids == item])) == 1


def test_round_half_up():
    assert round_half_up(np.array([0.5, 1.5, 2.5, 2.4999])).tolist() == [1, 2, 3, 2]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_threshold_out_of_range(bad):
    thr = Thresholder(weight_items([[1.0, 2.0]]), "layer")
    with pytest.raises(ValueError, match=f"Received: threshold={bad}"):
        thr.masks(bad)


def test_bad_scope_and_normalization():
    items = weight_items([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"Unknown scope 'model'; available: \['layer', 'global', 'output'\]"):
        Thresholder(items, "model")
    with pytest.raises(ValueError, match="global scope only"):
        Thresholder(items, "layer", "max")


def removal_sequence(thr, n):
    """Items in the order the thresholder replaces them: one item more per step of 1/n."""
    seen, sequence = np.zeros(n, bool), []
    for k in range(1, n + 1):
        new = np.flatnonzero(thr.item_mask(k / n) & ~seen)
        sequence += new.tolist()
        seen |= thr.item_mask(k / n)
    return sequence


@pytest.mark.parametrize("scores", [[0.5, 0.1, 0.9, 0.3, 0.7], [0.2, 0.2, 0.9, 0.2, 0.1, 0.9], np.zeros(9)])
def test_most_is_the_exact_reverse_of_least_ties_included(scores):
    items = weight_items([scores])
    least = removal_sequence(Thresholder(items, "layer", seed=4), len(scores))
    most = removal_sequence(Thresholder(items, "layer", seed=4, order="most"), len(scores))
    assert most == least[::-1]
    assert sorted(least) == list(range(len(scores)))


def test_most_removes_the_highest_scores_first_with_exact_nested_counts():
    rng = np.random.default_rng(7)
    items = weight_items([rng.random(12), rng.random(30)])
    thr = Thresholder(items, "layer", seed=0, order="most")
    assert thr.masks(0.25)[0].sum() == 3 and np.all(items.scores[:12][thr.masks(0.25)[0]] >= np.sort(items.scores[:12])[-3])
    previous = [np.zeros(12, bool), np.zeros(30, bool)]
    for t in np.linspace(0, 1, 21):
        masks = thr.masks(t)
        assert thr.n_replaced(t) == sum(int(np.floor(t * n + 0.5 + 1e-9)) for n in (12, 30))
        assert all(np.all(m[p]) for m, p in zip(masks, previous))
        previous = masks
    with pytest.raises(ValueError, match="Unknown order 'up'; available: \\['least', 'most'\\]"):
        Thresholder(items, order="up")
    with pytest.raises(ValueError, match="removes the least important first only"):
        Thresholder(items, rule="legacy_cutoff", order="most")
