"""Items (what is kept or replaced together) and pooling of scores into items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from measures import Param

POOLINGS = ("mean", "sum", "max", "min", "l2")


@dataclass
class Items:
    """Scores pooled into items.

    Attributes:
        scores: Pooled score per item, shape ``(n_items,)``, float64.
        sizes: Number of parameters in each item, shape ``(n_items,)``.
        layers: Layer group of each item (``Param.layer_index``), shape ``(n_items,)``.
        element_items: Per parameter, an int64 array of the variable's shape
            giving the item of every element.
        units: Output unit of each item within its layer, shape ``(n_items,)``
            (see :func:`output_units`); -1 for an item with no output unit
            (parameters of other layers, e.g. BatchNorm) or spanning several.
            None when unknown; scope ``output`` then refuses the items.
    """

    scores: np.ndarray
    sizes: np.ndarray
    layers: np.ndarray
    element_items: list[np.ndarray]
    units: np.ndarray | None = None


class Aggregation:
    """Base class: assigns every element of a parameter to an item of its layer.

    Subclasses implement :meth:`local_items`. Items shared between the
    parameters of one layer (a unit's kernel column and its bias) use a shared
    numbering; other items are private to their parameter.
    """

    name: ClassVar[str]
    pools: ClassVar[bool] = True  # False when every item is one parameter, so pooling has no effect

    def local_items(self, param: Param) -> tuple[np.ndarray, bool]:
        """Return ``(ids, shared)``: an item id per element, and whether ids are layer-wide."""
        raise NotImplementedError

    def applies_to(self, params: list[Param]) -> bool:
        """Whether this aggregation forms items of its own on ``params``; a run skips it where it does not."""
        return True

    def __call__(self, params: list[Param], scores: list[np.ndarray], pooling: str = "mean") -> Items:
        """Pool ``scores`` (one array per parameter) into items.

        Args:
            params: The prunable parameters.
            scores: One array per parameter, shaped like it.
            pooling: One of :data:`POOLINGS`; ignored (and may be ``"none"``)
                when the aggregation does not pool.

        Raises:
            ValueError: unknown ``pooling``; the message lists the choices.
        """
        if self.pools and pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; available: {list(POOLINGS)}")
        element_items, layers = _number_items(self, params)
        flat_ids = np.concatenate([ids.ravel() for ids in element_items])
        flat_scores = np.concatenate([np.asarray(s, np.float64).ravel() for s in scores])
        units = item_units(flat_ids, np.concatenate([output_units(p).ravel() for p in params]), len(layers))
        if not self.pools:  # every item is one element: place the scores, nothing to pool
            pooled = np.empty(len(layers))
            pooled[flat_ids] = flat_scores
            return Items(pooled, np.ones(len(layers), np.int64), np.asarray(layers, np.int64), element_items, units)
        pooled, sizes = pool(flat_scores, flat_ids, len(layers), pooling)
        return Items(pooled, sizes, np.asarray(layers, np.int64), element_items, units)


def _number_items(aggregation: Aggregation, params: list[Param]) -> tuple[list[np.ndarray], np.ndarray]:
    """Give every item a global id; return per-parameter id arrays and each item's layer."""
    offsets: dict[object, int] = {}
    layers: list[np.ndarray] = []
    count = 0
    element_items = []
    for position, param in enumerate(params):
        ids, shared = aggregation.local_items(param)
        key = param.layer_index if shared else ("private", position)
        if key not in offsets:
            offsets[key] = count
            layers.append(np.full(int(ids.max()) + 1, param.layer_index, np.int64))
            count += len(layers[-1])
        element_items.append(ids.astype(np.int64) + offsets[key])
    return element_items, np.concatenate(layers) if layers else np.zeros(0, np.int64)


def pool(values: np.ndarray, ids: np.ndarray, n_items: int, pooling: str) -> tuple[np.ndarray, np.ndarray]:
    """Pool ``values`` by item id.

    Args:
        values: Flat scores, shape ``(n,)``.
        ids: Item of each score, shape ``(n,)``, in ``[0, n_items)``.
        n_items: Number of items; each must own at least one value.
        pooling: ``mean``, ``sum``, ``max``, ``min`` or ``l2`` (sqrt of the sum of squares).

    Returns:
        ``(pooled, sizes)``, each of shape ``(n_items,)``.
    """
    sizes = np.bincount(ids, minlength=n_items)
    if pooling in ("max", "min"):
        order = np.argsort(ids, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        ufunc = np.maximum if pooling == "max" else np.minimum
        return ufunc.reduceat(values[order], starts), sizes
    if pooling == "l2":
        return np.sqrt(np.bincount(ids, values**2, n_items)), sizes
    total = np.bincount(ids, values, n_items)
    return (total / sizes if pooling == "mean" else total), sizes


def per_element(param: Param) -> tuple[np.ndarray, bool]:
    """Every element its own item."""
    return np.arange(int(np.prod(param.shape))).reshape(param.shape), False


def per_output_channel(param: Param) -> tuple[np.ndarray, bool]:
    """Item ``o`` holds ``kernel[..., o]`` and ``bias[o]``: pooled over incoming weights."""
    return np.broadcast_to(np.arange(param.shape[-1]), param.shape).copy(), True


def output_units(param: Param) -> np.ndarray:
    """Output unit of every element, int64 of the parameter's shape; -1 where the layer has none.

    Dense kernel ``(in, out)``: element ``(i, j)`` feeds unit ``j``; conv kernel
    ``(..., cin, cout)``: element ``(..., o)`` belongs to filter ``o``; their
    biases: ``bias[o]`` to unit ``o``. Parameters of other layers: -1.
    """
    if param.kind in ("dense", "conv") and param.role in ("kernel", "bias"):
        return np.broadcast_to(np.arange(param.shape[-1], dtype=np.int64), param.shape)
    return np.full(param.shape, -1, np.int64)


def item_units(ids: np.ndarray, units: np.ndarray, n_items: int) -> np.ndarray:
    """Output unit of each item from its elements' (``ids``, ``units``): their common unit, or -1 if they differ."""
    first = np.full(n_items, -1, np.int64)
    first[ids] = units
    mixed = np.zeros(n_items, bool)
    mixed[ids[first[ids] != units]] = True
    return np.where(mixed, -1, first)
