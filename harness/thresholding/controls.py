"""Matched controls of a measure: its per-layer counts with random choices inside each layer.

For a measure's thresholder (one :class:`~harness.thresholding.threshold.Thresholder` of one
(measure, aggregation, pooling, scope, normalization, order)), a control
replaces, at every threshold t, as many items or weights in each layer as the
measure does, but chooses them at random. Its rows carry the measure
``<spec>~<control>`` (``fisher~random_matched``), so a ranking puts the
controls beside the measures with no special code.

- ``random_matched``: in each layer (``Items.layers``), the same number of
  *items* as the measure replaces at t, chosen by one seeded random ranking of
  the layer's items. The measure's item steps of the layer, sorted, are given
  to the items in the random ranking's order, so at every threshold the
  first ``c_L(t)`` items of the random ranking are replaced, ``c_L(t)`` being
  the measure's count in layer L (nondecreasing in t): masks are nested.
  A measure that beats it chooses good items within layers; one that beats
  only the plain ``random`` measure chooses good per-layer densities.
- ``shuffled``: the measure's own *weight* mask permuted within each layer by
  one seeded permutation of the layer's elements per sweep (the layer-wise
  shuffle of Frankle et al. 2021): element e takes the step of element
  ``perm(e)``, so each layer keeps its number of replaced weights at every t
  and masks stay nested. It permutes elements, not items, because that is the
  control of the paper and because an item-level permutation would equal
  ``random_matched`` in distribution for every aggregation (a uniformly random
  arrangement of the layer's multiset of item steps either way). With
  ``unit`` or ``filter`` items the two differ: ``random_matched`` removes
  whole random units (structured, same unit count per layer), ``shuffled``
  scattered weights (unstructured, same weight count per layer), so beating
  ``shuffled`` there says that the measure's structured choice beats an
  unstructured mask of its per-layer densities. For the ``weight``
  aggregation, items are weights and the two coincide in distribution, but
  not in draws (independent random streams).
- Items that also mask elements they cover (``unit:direction=group``: a unit's
  consuming rows) keep doing so: ``random_matched`` removes the random units
  with their rows, and ``shuffled`` permutes the measure's weight mask with the
  covered rows in it (:func:`harness.thresholding.threshold.element_values`).

Seeds: every control of a sweep draws from ``default_rng([seed, stream,
layer])`` with the seed of the epoch (:func:`control_seed`), so all measures
of an epoch share their random rankings (common random numbers): two
measures' controls differ only where their per-layer counts do.

Source: Frankle, Dziugaite, Roy and Carbin 2021, "Pruning neural networks at
initialization: why are we missing the mark?", ICLR (the layer-wise shuffle).
"""

from __future__ import annotations

import numpy as np

from harness.common.columns import CONTROL_SEPARATOR as SEPARATOR
from harness.common.constants import CONTROLS
from harness.common.validation import check_choice
from harness.pipeline.seed import derived_seed
from harness.thresholding.threshold import Thresholder, element_values

CONTROL_STREAM = 13  # derived_seed(seed, epoch, CONTROL_STREAM) seeds an epoch's controls


def control_name(spec: str, control: str | None) -> str:
    """The ``measure`` value of a control's rows: ``<spec>~<control>``, or ``spec`` itself for None."""
    return spec if control is None else f"{spec}{SEPARATOR}{control}"


def control_seed(seed: int, epoch: int) -> int:
    """The seed of every control swept after ``epoch`` of a run with ``seed``."""
    return derived_seed(seed, epoch, CONTROL_STREAM)


def make_control(name: str, thresholder: Thresholder, layers: np.ndarray, seed: int):
    """The thresholder of control ``name`` for a measure's ``thresholder``; anything a sweep's schedule can use.

    Args:
        name: ``random_matched`` or ``shuffled``.
        thresholder: The measure's thresholder.
        layers: Layer of each of its items, shape ``(n_items,)`` (``Items.layers``).
        seed: :func:`control_seed` of the epoch.

    Raises:
        ValueError: unknown ``name``; the message lists the choices.
    """
    check_choice("control", name, CONTROLS)
    return (RandomMatched if name == "random_matched" else Shuffled)(thresholder, layers, seed)


def _permuted_within(groups: np.ndarray, seed: int, stream: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per group g (sorted), its positions and one permutation of them from ``default_rng([seed, stream, g])``."""
    out = []
    for group in np.unique(groups):
        positions = np.flatnonzero(groups == group)
        out.append((positions, positions[np.random.default_rng([seed, stream, int(group)]).permutation(len(positions))]))
    return out


class RandomMatched:
    """``random_matched``: per layer, the measure's item count at every t, on a random ranking of the layer's items.

    Args:
        thresholder: The measure's thresholder (anything with ``item_steps``, ``element_items``, ``n_params``).
        layers: Layer of each item, shape ``(n_items,)``.
        seed: Seed of the random rankings (one per layer).
    """

    def __init__(self, thresholder: Thresholder, layers: np.ndarray, seed: int):
        self.measure, self.layers, self.seed = thresholder, np.asarray(layers), seed
        self.element_items, self.n_params = thresholder.element_items, thresholder.n_params
        self.element_covers = getattr(thresholder, "element_covers", None)

    def item_steps(self, thresholds) -> np.ndarray:
        """Step per item (see ``Thresholder.item_steps``): the layer's sorted measure steps in random-ranking order.

        Returns:
            int64 array ``(n_items,)``; per layer, the same multiset of steps as the measure's.
        """
        steps = self.measure.item_steps(thresholds)
        out = np.empty_like(steps)
        for positions, ranked in _permuted_within(self.layers, self.seed, 0):
            out[ranked] = np.sort(steps[positions])
        return out


class Shuffled:
    """``shuffled``: the measure's weight mask permuted within each layer, one permutation per layer.

    Its items are single weights (``element_items`` numbers the elements of
    all parameters in order), whatever the measure's aggregation.

    Args:
        thresholder: The measure's thresholder.
        layers: Layer of each of the measure's items, shape ``(n_items,)``.
        seed: Seed of the permutations (one per layer).
    """

    def __init__(self, thresholder: Thresholder, layers: np.ndarray, seed: int):
        self.measure, self.seed = thresholder, seed
        sizes = np.cumsum([0] + [ids.size for ids in thresholder.element_items])
        self.element_items = [np.arange(a, b).reshape(ids.shape)
                              for a, b, ids in zip(sizes[:-1], sizes[1:], thresholder.element_items)]
        self.n_params = thresholder.n_params
        self._covers = getattr(thresholder, "element_covers", None)
        self._measure_items = np.concatenate([ids.ravel() for ids in thresholder.element_items]) if sizes[-1] else \
            np.zeros(0, np.int64)
        self._groups = _permuted_within(np.asarray(layers)[self._measure_items], seed, 1)

    def item_steps(self, thresholds) -> np.ndarray:
        """Step per weight: element e of a layer takes the measure's step of the layer's element ``perm(e)``.

        Returns:
            int64 array ``(n_elements,)``; per layer, the same multiset of steps as the measure's weights.
        """
        steps = self.measure.item_steps(thresholds)
        steps = steps[self._measure_items] if self._covers is None else np.concatenate(
            [s.ravel() for s in element_values(steps, self.measure.element_items, self._covers)])
        out = np.empty_like(steps)
        for positions, permuted in self._groups:
            out[positions] = steps[permuted]
        return out
