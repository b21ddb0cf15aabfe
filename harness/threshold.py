"""Thresholding: which items to replace at a target fraction t.

Items are ranked once per (epoch, measure, aggregation, scope) by increasing
score. Ties are broken by a seeded random permutation of the items, never by
a value comparison such as ``score < cutoff``. For a fraction t, each segment
(one layer for ``layer`` scope, the whole model for ``global`` scope, one
output unit of one layer for ``output`` scope, see :func:`segment_ids`) replaces
the shortest prefix of its ranking that holds at least ``round(t * n)``
parameters, n being the segment's parameter count; items are never split, so
the achieved sparsity can exceed t by less than one item. Masks for increasing
t are therefore nested.

``threshold_rule = "legacy_cutoff"`` reproduces the original study's rule
(seed 003), for comparison only: per segment, with the n parameters' scores
sorted, ``cutoff = sorted[min(int(n * t), n - 1)]`` and the parameters with
``score < cutoff`` are replaced. On the same ranking that is a prefix too (a
different count per segment, so masks stay nested), but ties at the cutoff
are all kept: with heavily tied scores far fewer than t * n parameters are
replaced, even at t = 1, where the top-scored ones always stay. The achieved
``sparsity`` records what was replaced. With ``global`` scope the segment is
the whole model, as the original's ``MODEL_WISE`` comparison.
"""

from __future__ import annotations

import numpy as np

from aggregations import Items

SCOPES = ("layer", "global", "output")
NORMALIZATIONS = ("none", "mean", "max", "lamp")
THRESHOLD_RULES = ("exact", "legacy_cutoff")


def check_choice(name: str, value: str, choices) -> None:
    """Raise ``ValueError("Unknown <name> 'x'; available: [...]")`` if ``value`` is not a choice."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; available: {list(choices)}")


def normalize_per_layer(scores: np.ndarray, layers: np.ndarray, how: str) -> np.ndarray:
    """Divide item scores by their layer's mean or max absolute item score, or take their LAMP scores.

    Args:
        scores: Item scores, shape ``(n_items,)``.
        layers: Layer of each item, shape ``(n_items,)``.
        how: ``none``, ``mean``, ``max`` (a layer whose divisor is 0 is left as
            is) or ``lamp`` (:func:`lamp_scores`).

    Returns:
        Normalised scores, shape ``(n_items,)``.
    """
    check_choice("normalization", how, NORMALIZATIONS)
    if how == "none":
        return scores
    if how == "lamp":
        return lamp_scores(scores, layers)
    reduce = {"mean": np.mean, "max": np.max}[how]
    divisor = np.ones_like(scores)
    for layer in np.unique(layers):
        in_layer = layers == layer
        value = reduce(np.abs(scores[in_layer]))
        divisor[in_layer] = value if value > 0 else 1.0
    return scores / divisor


def lamp_scores(scores: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """LAMP score of each item within its layer: its squared score over the sum of the squares not below it.

        lamp(u) = s_u^2 / sum_{v in layer(u), s_v >= s_u} s_v^2

    Items sorted ascending, ``v >= u`` in the paper's notation; tied scores
    share one denominator (all of them counted), so ties stay tied and the
    seeded tie-break decides. A layer whose scores are all 0 scores 0. The
    transform is increasing within a layer (an untied largest item scores
    1), so in global scope it changes only how many items each layer loses.
    Any non-negative measure may use it: for magnitude it is LAMP; for
    another measure ``s`` is the item score, and lamp(u) is u's share of the
    squared scores that remain in its layer when everything below u is gone.

    Raises:
        ValueError: a score is negative (the squares would reverse the order).

    Source: Lee, Park, Mo, Ahn and Shin 2021, "Layer-adaptive Sparsity for
    the Magnitude-based Pruning", ICLR (the LAMP score).
    """
    if np.any(scores < 0):
        raise ValueError(f"normalization 'lamp' needs non-negative item scores. Received: min score={scores.min()}")
    result = np.zeros(len(scores), np.float64)
    for layer in np.unique(layers):
        in_layer = np.flatnonzero(layers == layer)
        values, inverse = np.unique(scores[in_layer], return_inverse=True)
        tails = np.cumsum(np.bincount(inverse, values[inverse] ** 2)[::-1])[::-1]  # sum over s_v >= each value
        denominators = tails[inverse]
        result[in_layer] = np.divide(values[inverse] ** 2, denominators, out=result[in_layer], where=denominators > 0)
    return result


def segment_ids(items: Items, scope: str) -> np.ndarray:
    """The segment of each item, shape ``(n_items,)``: the items thresholded together.

    ``layer``: the item's layer; ``global``: one segment; ``output``: the
    item's output unit within its layer (``Items.units``: a Dense kernel's
    column with its bias, a conv filter's weights with its bias), as Wanda
    compares weights; items of a layer without output units (BatchNorm)
    form one segment per layer.

    Raises:
        ValueError: ``output`` scope on items without units, or with items
            that are whole units (unit aggregation; filter on convolutions),
            which would leave one item per segment.
    """
    if scope == "layer":
        return items.layers
    if scope == "global":
        return np.zeros_like(items.layers)
    if items.units is None:
        raise ValueError("scope 'output' needs the output unit of every item (Items.units); these items have none.")
    segments = items.layers * (int(items.units.max()) + 2) + items.units + 1
    _, inverse, counts = np.unique(segments, return_inverse=True, return_counts=True)
    whole = (counts[inverse] == 1) & (items.sizes > 1) & (items.units >= 0)
    if whole.any():
        raise ValueError(f"scope 'output' ranks the items inside each output unit, but {int(whole.sum())} items are "
                         "whole units (unit aggregation, or filter on convolutions); use aggregation 'weight'.")
    return segments


def round_half_up(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves up (``round(t * n)`` of the spec)."""
    return np.floor(np.asarray(x, np.float64) + 0.5 + 1e-9).astype(np.int64)


class Thresholder:
    """Nested replacement masks from one ranking of items.

    Args:
        items: Pooled items from an aggregation.
        scope: ``layer`` (each layer thresholded separately), ``global`` or
            ``output`` (each output unit of each layer separately).
        normalization: For ``global`` scope, per-layer score normalisation
            (``none``, ``mean``, ``max`` or ``lamp``); must be ``none`` otherwise.
        seed: Seed of the tie-breaking permutation.
        rule: ``exact`` (the shortest prefix holding round(t * n) parameters)
            or ``legacy_cutoff`` (the original's ``score < cutoff``, see the module).

    Raises:
        ValueError: unknown scope, normalization or rule, normalization outside
            global scope, or items unfit for the scope (:func:`segment_ids`).
    """

    def __init__(self, items: Items, scope: str = "layer", normalization: str = "none", seed: int = 0,
                 rule: str = "exact"):
        check_choice("scope", scope, SCOPES)
        check_choice("threshold_rule", rule, THRESHOLD_RULES)
        self.rule = rule
        if scope != "global" and normalization != "none":
            raise ValueError(f"normalization applies to global scope only. Received: normalization={normalization!r}")
        scores = normalize_per_layer(items.scores, items.layers, normalization)
        segments = segment_ids(items, scope)
        tiebreak = np.random.default_rng(seed).permutation(len(scores))
        order = np.lexsort((tiebreak, scores, segments))
        self._segment_ids, starts = np.unique(segments[order], return_index=True)
        self._segment = np.searchsorted(self._segment_ids, segments)
        self._rank = np.empty(len(order), np.int64)
        self._rank[order] = np.arange(len(order)) - starts[self._segment[order]]
        ends = np.append(starts[1:], len(order))
        sorted_sizes = items.sizes[order]
        self._cumsizes = [np.cumsum(sorted_sizes[a:b]) for a, b in zip(starts, ends)]
        self._sorted_scores = [scores[order][a:b] for a, b in zip(starts, ends)] if rule == "legacy_cutoff" else []
        self._element_items = items.element_items
        self.n_params = int(items.sizes.sum())

    def counts(self, t: float) -> np.ndarray:
        """Number of items replaced in each segment at fraction ``t``."""
        check_fraction(t)
        if self.rule == "legacy_cutoff":
            return np.array([legacy_cutoff_count(s, c, t) for s, c in zip(self._sorted_scores, self._cumsizes)])
        targets = [round_half_up(t * c[-1]) for c in self._cumsizes]
        return np.array([0 if n == 0 else np.searchsorted(c, n, "left") + 1 for n, c in zip(targets, self._cumsizes)])

    def item_mask(self, t: float) -> np.ndarray:
        """Boolean mask over items: True where the item is replaced at ``t``."""
        return self._rank < self.counts(t)[self._segment]

    def masks(self, t: float) -> list[np.ndarray]:
        """Per parameter, a boolean array of its shape: True where replaced at ``t``."""
        replaced = self.item_mask(t)
        return [replaced[ids] for ids in self._element_items]

    def element_ranks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per parameter, ``(rank, segment)`` of every element's item, each of the parameter's shape.

        An element is replaced at ``t`` exactly when ``rank < counts(t)[segment]``.
        """
        return [(self._rank[ids], self._segment[ids]) for ids in self._element_items]

    def n_replaced(self, t: float) -> int:
        """Number of parameters replaced at ``t``."""
        return int(sum(c[k - 1] for k, c in zip(self.counts(t), self._cumsizes) if k > 0))


def legacy_cutoff_count(sorted_scores: np.ndarray, cumsizes: np.ndarray, t: float) -> int:
    """Items of one segment the original's rule replaces at ``t`` (seed 003's ``threshold_model_by_omega``).

    Every parameter of an item carries the item's score, so the parameters'
    sorted scores are the items' repeated by size. With ``n`` parameters,
    ``cutoff = sorted[min(int(n * t), n - 1)]`` and every item scored strictly
    below it is replaced: a prefix of the ranking.

    Args:
        sorted_scores: Item scores in increasing order, shape ``(n_items,)``.
        cumsizes: Cumulative parameter counts of those items, shape ``(n_items,)``.
        t: Fraction in [0, 1].
    """
    n = int(cumsizes[-1])
    holder = int(np.searchsorted(cumsizes, min(int(n * t), n - 1), "right"))  # item of the cutoff parameter
    return int(np.searchsorted(sorted_scores, sorted_scores[holder], "left"))


def check_fraction(t: float) -> None:
    """Raise ``ValueError`` unless ``0 <= t <= 1``."""
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"thresholds must lie in [0, 1]. Received: threshold={t}")
