"""threshold_rule = "legacy_cutoff": the original study's score < cutoff (seed 003), against its element-level loop."""

import numpy as np
import pytest

from aggregations import Items
from harness.pipeline.config import RunConfig
from harness.thresholding.threshold import Thresholder

THRESHOLDS = np.round(np.linspace(0, 1, 21), 10)


def random_items(rng, n_layers=3, tied=False):
    """Items of random sizes in a few layers, one parameter per layer; optionally heavily tied scores."""
    sizes = rng.integers(1, 5, size=rng.integers(8, 20, size=n_layers).sum())
    layers = np.sort(rng.integers(0, n_layers, len(sizes)))
    scores = 1.0 / (1.0 + rng.integers(0, 3, len(sizes))) if tied else rng.random(len(sizes))
    element_items = [np.repeat(np.flatnonzero(layers == layer), sizes[layers == layer]) for layer in range(n_layers)]
    return Items(scores, sizes, layers, element_items)


def original_replaced(items, t, scope):
    """The original's ``threshold_model_by_omega``: element scores sorted per layer (or model), replace score < cutoff."""
    per_layer = [items.scores[ids] for ids in items.element_items]
    groups = per_layer if scope == "layer" else [np.concatenate(per_layer)]
    replaced = 0
    for omega in groups:
        flat = np.sort(omega)
        cutoff = flat[min(int(len(flat) * t), len(flat) - 1)]
        replaced += int((omega < cutoff).sum())
    return replaced


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_matches_the_original_loop_and_stays_nested(scope, tied):
    for seed in range(4):
        items = random_items(np.random.default_rng(seed), tied=tied)
        thr = Thresholder(items, scope, seed=seed, rule="legacy_cutoff")
        previous = np.zeros(len(items.scores), bool)
        for t in THRESHOLDS:
            assert thr.n_replaced(t) == original_replaced(items, t, scope)
            masks = thr.masks(t)
            assert sum(int(m.sum()) for m in masks) == thr.n_replaced(t)
            mask = thr.item_mask(t)
            assert np.all(mask >= previous)
            previous = mask


def test_ties_keep_most_weights_even_at_one():
    """Sign-flip-like scores: most weights tie at the top score, so the old rule never replaces them."""
    scores = np.r_[np.full(90, 1.0), np.full(6, 0.5), np.full(4, 1 / 3)]
    items = Items(scores, np.ones(100, np.int64), np.zeros(100, np.int64), [np.arange(100)])
    legacy = Thresholder(items, "layer", rule="legacy_cutoff")
    assert legacy.n_replaced(1.0) == 10 and legacy.n_replaced(0.5) == 10 and legacy.n_replaced(0.03) == 0
    assert Thresholder(items, "layer").n_replaced(1.0) == 100


def test_option_is_validated():
    with pytest.raises(ValueError, match=r"Unknown threshold_rule 'cutoff'; available: \['exact', 'legacy_cutoff'\]"):
        RunConfig(threshold_rule="cutoff")
    with pytest.raises(ValueError, match="Unknown threshold_rule"):
        Thresholder(random_items(np.random.default_rng(0)), rule="old")
    assert RunConfig().threshold_rule == "exact"
    assert RunConfig(threshold_rule="legacy_cutoff").run_id != RunConfig().run_id


def test_cli_options():
    from harness.cli.main import config_from_args, main, parser

    config = config_from_args(parser().parse_args(["--threshold-rule", "legacy_cutoff", "--augmentation", "none"]))
    assert (config.threshold_rule, config.augmentation) == ("legacy_cutoff", "none")
    assert main(["--threshold-rule", "score<cutoff"]) == 2
