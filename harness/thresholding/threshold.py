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

import functools
import hashlib

import numpy as np

from aggregations import Items
from harness.common.constants import NORMALIZATIONS, ORDERS, SCOPES, THRESHOLD_RULES
from harness.common.validation import check_choice

RECENT_RANKINGS = 4
_RANKINGS: dict[bytes, np.ndarray] = {}  # digest of (scores, segments, seed) -> ranking (see recent_rank_order)


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


def rank_order(scores: np.ndarray, segments: np.ndarray, seed: int) -> np.ndarray:
    """Item indices sorted by segment, then increasing score, ties by a seeded permutation.

    Equal to ``np.lexsort((permutation, scores, segments))`` with
    ``permutation = default_rng(seed).permutation(n)``. When every score is
    a float32 value (measures' scores are), a least-significant-digit radix
    sort: the items in permutation order, stably sorted by the low then the
    high 16 bits of an order-preserving code of the score
    (:func:`score_codes`), one segment at a time (or by segment last). Other
    scores take one comparison sort of the scores per segment, runs of equal
    scores then re-sorted by one integer key (run, permutation). Segments
    are first grouped by a stable radix sort of small integers, a no-op when
    items come layer by layer.

    Args:
        scores: Item scores, shape ``(n,)``.
        segments: Segment of each item, shape ``(n,)``.
        seed: Seed of the tie-breaking permutation.

    Returns:
        Permutation of ``range(n)``, shape ``(n,)``.
    """
    return _rank_order(scores, segments, seed, score_codes(scores))


def _rank_order(scores: np.ndarray, segments: np.ndarray, seed: int, codes: np.ndarray | None) -> np.ndarray:
    """:func:`rank_order`, given :func:`score_codes` of the scores."""
    n = len(scores)
    small = segments.astype(np.int16) if n and segments.min() >= 0 and segments.max() < 2**15 else segments
    grouped = n == 0 or not np.any(small[1:] < small[:-1])
    edges = np.flatnonzero(small[1:] != small[:-1]) + 1 if grouped else np.zeros(0, np.int64)
    tiebreak = functools.cache(lambda: np.random.default_rng(seed).permutation(n))
    if codes is not None and small.dtype == np.int16:
        return _radix_order(codes, small, tiebreak(), np.r_[0, edges, n] if grouped and len(edges) <= 64 else None)
    if not grouped or len(edges) > 64:
        order = _by_score(np.arange(n), scores, tiebreak)
        return order if len(edges) == 0 and grouped else order[np.argsort(small[order], kind="stable")]
    bounds = np.r_[0, edges, n]
    return np.concatenate([_by_score(np.arange(a, b), scores, tiebreak) for a, b in zip(bounds[:-1], bounds[1:])])


def score_codes(scores: np.ndarray) -> np.ndarray | None:
    """uint32 codes ordered as the scores (equal scores, -0.0 and 0.0 included, equal codes); None unless float32 values.

    The IEEE-754 bits of a float32 ``x + 0``, the sign bit flipped for
    ``x >= 0`` and every bit flipped for ``x < 0``. None when a score is not
    exactly a float32 value (NaN included).
    """
    single = np.asarray(scores).astype(np.float32)
    if not np.array_equal(single, scores):
        return None
    bits = (single + np.float32(0)).view(np.uint32)
    return bits ^ ((bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF) | np.uint32(0x80000000))


def _radix_order(codes: np.ndarray, segments: np.ndarray, permutation: np.ndarray, bounds) -> np.ndarray:
    """Items by segment, then code, then ``permutation``: two stable 16-bit radix passes over the permuted items.

    ``bounds``: where each segment starts (and the end), the segments being
    grouped; None to sort by ``segments`` at the end instead.
    """
    by_tiebreak = np.empty(len(codes), np.intp)
    by_tiebreak[permutation] = np.arange(len(codes))
    if bounds is None:
        order = _by_code(by_tiebreak, codes)
        return order[np.argsort(segments[order], kind="stable")]
    if len(bounds) == 2:
        return _by_code(by_tiebreak, codes)
    members = [by_tiebreak[(by_tiebreak >= a) & (by_tiebreak < b)] for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate([_by_code(items, codes) for items in members])


def _by_code(items: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``items`` stably sorted by their uint32 ``codes`` (low 16 bits, then high 16 bits)."""
    mine = codes[items]
    order = np.argsort(mine.astype(np.uint16), kind="stable")
    order = order[np.argsort((mine[order] >> np.uint32(16)).astype(np.uint16), kind="stable")]
    return items[order]


def recent_rank_order(scores: np.ndarray, segments: np.ndarray, seed: int) -> np.ndarray:
    """:func:`rank_order`, reusing one of the last :data:`RECENT_RANKINGS` results for the same inputs.

    The cache (``_RANKINGS``, module-level, oldest first) is keyed by a
    128-bit digest (SHA-256, truncated) of every input of :func:`rank_order`:
    the seed, the item count, the scores (their :func:`score_codes` when
    they are float32 values, else their float64 values; equal codes mean
    equal scores, so equal rankings) and the segments (int16 when they fit,
    else int64), each with its dtype. Scope, normalization, pooling and
    aggregation reach the ranking only through the scores and segments; the
    order (``most``) and the threshold rule are applied to the result, not
    cached. With orders ``least`` and ``most`` both swept, each ranking is
    computed once. The result is shared: do not modify it.
    """
    codes = score_codes(scores)
    values = codes if codes is not None else np.ascontiguousarray(scores, np.float64)
    small = segments.astype(np.int16) if len(segments) and 0 <= segments.min() and segments.max() < 2**15 \
        else np.ascontiguousarray(segments, np.int64)
    digest = hashlib.sha256(f"{seed}:{len(values)}:{values.dtype}:{small.dtype}".encode())
    for array in (values, small):
        digest.update(array.data)
    key = digest.digest()[:16]
    if key in _RANKINGS:
        return _RANKINGS[key]
    order = _RANKINGS[key] = _rank_order(scores, segments, seed, codes)
    while len(_RANKINGS) > RECENT_RANKINGS:
        _RANKINGS.pop(next(iter(_RANKINGS)))
    return order


def _by_score(items: np.ndarray, scores: np.ndarray, tiebreak) -> np.ndarray:
    """``items`` sorted by increasing score, runs of equal scores by ``tiebreak()`` (a permutation of all items)."""
    order = items[np.argsort(scores[items])]
    ranked = scores[order]
    starts = np.r_[True, ranked[1:] != ranked[:-1]]
    tied = ~(starts & np.r_[starts[1:], True])  # positions inside runs of two or more equal scores
    if tied.any():
        run = np.cumsum(starts)[tied]
        members = order[tied]
        order[tied] = members[np.argsort(run * len(scores) + tiebreak()[members])]
    return order


def prefix_counts(t: float, cumsizes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Items replaced per segment: the shortest ranking prefix holding at least ``round(t * n)`` parameters.

    Args:
        t: Fraction in [0, 1].
        cumsizes: Cumulative parameter count of the ranked items (all
            segments in one run), shape ``(n_items,)``.
        starts: Where each segment's slice of the ranking starts, shape ``(n_segments,)``.
        ends: Where each segment's slice ends (exclusive), shape ``(n_segments,)``.

    Returns:
        Number of items replaced in each segment, shape ``(n_segments,)``.
    """
    base = np.where(starts > 0, cumsizes[np.maximum(starts - 1, 0)], 0)
    targets = round_half_up(t * (cumsizes[ends - 1] - base))
    reached = np.searchsorted(cumsizes, base + targets, "left") - starts + 1
    return np.where(targets > 0, reached, 0)


def reverse_segments(ranking: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The ranking with each segment's slice reversed: most important first, ties in exactly reversed order.

    Args:
        ranking: Item indices grouped by segment, each segment in increasing score, shape ``(n_items,)``.
        starts: Where each segment's slice starts, shape ``(n_segments,)``.
        ends: Where each segment's slice ends (exclusive), shape ``(n_segments,)``.

    Returns:
        A new array, shape ``(n_items,)``; ``ranking`` is left as it is (it may be shared).
    """
    segment = np.repeat(np.arange(len(starts)), ends - starts)
    return ranking[starts[segment] + ends[segment] - 1 - np.arange(len(ranking))]


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
        order: ``least`` (least important first, LeRF: the default) or
            ``most`` (most important first, MoRF): the ranking of each
            segment reversed exactly, ties included (:func:`reverse_segments`).

    Raises:
        ValueError: unknown scope, normalization, rule or order, normalization
            outside global scope, ``legacy_cutoff`` with ``most``, or items
            unfit for the scope (:func:`segment_ids`).
    """

    def __init__(self, items: Items, scope: str = "layer", normalization: str = "none", seed: int = 0,
                 rule: str = "exact", order: str = "least"):
        check_choice("scope", scope, SCOPES)
        check_choice("threshold_rule", rule, THRESHOLD_RULES)
        check_choice("order", order, ORDERS)
        if rule == "legacy_cutoff" and order == "most":
            raise ValueError("threshold_rule 'legacy_cutoff' (score < cutoff) removes the least important first only. "
                             f"Received: threshold_rule={rule!r}, order={order!r}")
        self.rule, self.order = rule, order
        if scope != "global" and normalization != "none":
            raise ValueError(f"normalization applies to global scope only. Received: normalization={normalization!r}")
        scores = normalize_per_layer(items.scores, items.layers, normalization)
        segments = segment_ids(items, scope)
        ranking = recent_rank_order(scores, segments, seed)
        ranked_segments = segments[ranking]
        starts = np.flatnonzero(np.r_[True, ranked_segments[1:] != ranked_segments[:-1]]) if len(ranking) else ranking
        self._starts, self._ends = starts, np.append(starts[1:], len(ranking))
        order = reverse_segments(ranking, self._starts, self._ends) if self.order == "most" else ranking
        self._segment_ids = ranked_segments[starts]
        self._order = order
        self._scores = scores
        ones = len(items.sizes) == 0 or items.sizes.max() == 1
        self._cumsizes = np.arange(1, len(order) + 1) if ones else np.cumsum(items.sizes[order])
        self._element_items = items.element_items
        self.element_covers = items.element_covers
        self.n_params = int(items.sizes.sum())

    @functools.cached_property
    def _segment(self) -> np.ndarray:
        """Segment index (into the ranking's segments) of every item, shape ``(n_items,)``."""
        segment = np.empty(len(self._order), np.int64)
        segment[self._order] = np.repeat(np.arange(len(self._starts)), self._ends - self._starts)
        return segment

    @functools.cached_property
    def _rank(self) -> np.ndarray:
        """Rank of every item within its segment, shape ``(n_items,)``."""
        rank = np.empty(len(self._order), np.int64)
        rank[self._order] = np.arange(len(self._order)) - self._starts[self._segment[self._order]]
        return rank

    @functools.cached_property
    def _ranked_scores(self) -> np.ndarray:
        """Scores in ranking order, shape ``(n_items,)``."""
        return self._scores[self._order]

    @property
    def element_items(self) -> list[np.ndarray]:
        """Per parameter, the item of every element (an array of the parameter's shape)."""
        return self._element_items

    def counts(self, t: float) -> np.ndarray:
        """Number of items replaced in each segment at fraction ``t``."""
        check_fraction(t)
        if self.rule == "legacy_cutoff":
            return np.array([legacy_cutoff_count(self._scores[self._order[a:b]], self._segment_cumsizes(a, b), t)
                             for a, b in zip(self._starts, self._ends)])
        return prefix_counts(t, self._cumsizes, self._starts, self._ends)

    def _segment_cumsizes(self, start: int, end: int) -> np.ndarray:
        """Cumulative parameter counts of one segment's ranked items, from its first item."""
        return self._cumsizes[start:end] - (self._cumsizes[start - 1] if start > 0 else 0)

    def item_mask(self, t: float) -> np.ndarray:
        """Boolean mask over items: True where the item is replaced at ``t``."""
        return self._rank < self.counts(t)[self._segment]

    def masks(self, t: float) -> list[np.ndarray]:
        """Per parameter, a boolean array of its shape: True where replaced at ``t``."""
        return element_values(self.item_mask(t), self._element_items, self.element_covers, np.logical_or)

    def element_ranks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per parameter, ``(rank, segment)`` of every element's item, each of the parameter's shape.

        An element is replaced at ``t`` exactly when ``rank < counts(t)[segment]``.

        Raises:
            ValueError: the items also mask elements they cover (``group``):
                an element then has two ranks.
        """
        if self.element_covers is not None:
            raise ValueError("element_ranks: these items also mask the elements they cover; use masks or item_steps.")
        return [(self._rank[ids], self._segment[ids]) for ids in self._element_items]

    def n_replaced(self, t: float) -> int:
        """Number of parameters replaced at ``t`` (those the items cover included)."""
        if self.element_covers is not None:
            return int(sum(mask.sum() for mask in self.masks(t)))
        counts = self.counts(t)
        last = self._starts + counts - 1
        base = np.where(self._starts > 0, self._cumsizes[np.maximum(self._starts - 1, 0)], 0)
        return int(np.sum(np.where(counts > 0, self._cumsizes[np.maximum(last, 0)] - base, 0)))

    def item_steps(self, thresholds) -> np.ndarray:
        """For ascending ``thresholds``, the index of the first one at which each item is replaced.

        Masks are nested, so item ``i`` is replaced at ``thresholds[k]``
        exactly when ``item_steps(thresholds)[i] <= k``; items never
        replaced get ``len(thresholds)``.

        Args:
            thresholds: Non-decreasing fractions in [0, 1], length K.

        Returns:
            Step per item, shape ``(n_items,)``, int64 in ``[0, K]``.

        Raises:
            ValueError: ``thresholds`` decrease somewhere.
        """
        thresholds = np.asarray(thresholds, np.float64)
        if np.any(np.diff(thresholds) < 0):
            raise ValueError(f"thresholds must be non-decreasing. Received: thresholds={thresholds.tolist()}")
        counts = np.stack([self.counts(t) for t in thresholds], axis=1) if len(thresholds) else \
            np.zeros((len(self._starts), 0), np.int64)
        bounds = np.concatenate([np.zeros((len(counts), 1), np.int64), counts, (self._ends - self._starts)[:, None]], 1)
        steps = np.repeat(np.tile(np.arange(len(thresholds) + 1), len(counts)), np.diff(bounds, axis=1).ravel())
        item_steps = np.empty(len(steps), np.int64)
        item_steps[self._order] = steps
        return item_steps


def element_values(item_values: np.ndarray, element_items: list[np.ndarray], element_covers=None,
                   combine=np.minimum) -> list[np.ndarray]:
    """Per parameter, every element's value from its item's: ``item_values[ids]``.

    Where an element is also covered by another item (``Items.element_covers``,
    -1 where not), the two values are combined (``np.minimum`` of the steps,
    ``np.logical_or`` of the masks): removing either item masks it.

    Args:
        item_values: One value per item, shape ``(n_items,)``.
        element_items: Per parameter, the item owning each element.
        element_covers: Per parameter, the covering item or -1 (or None), or None.
        combine: Binary ufunc joining an owner's value and a cover's.
    """
    values = [item_values[ids] for ids in element_items]
    if element_covers is None:
        return values
    return [v if c is None else np.where(c >= 0, combine(v, item_values[np.maximum(c, 0)]), v)
            for v, c in zip(values, element_covers)]


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
