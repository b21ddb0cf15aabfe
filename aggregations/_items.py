"""Items (what is kept or replaced together) and pooling of scores into items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.common.constants import POOLINGS
from harness.common.options import Option, canonical_spec, check_options
from measures import Param
from measures._cache import Recent


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
        element_covers: Per parameter, the second item whose removal also
            masks each element (-1 where none; None for a parameter without),
            or None when items mask only what they own (:class:`Span`).
        notes: One line per layer whose items fell back (``unit:direction=out``).
    """

    scores: np.ndarray
    sizes: np.ndarray
    layers: np.ndarray
    element_items: list[np.ndarray]
    units: np.ndarray | None = None
    element_covers: list[np.ndarray | None] | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Span:
    """Which elements each item masks and which scores it pools, when that is more than a partition.

    Attributes:
        owner: Per parameter, the item owning every element (int64 of its
            shape): the items partition the parameters, and an item's size is
            its owned elements. A unit owns its kernel slice and bias (and,
            with ``structured_bn = "zero"``, its BatchNorm scale and shift).
        layers: Layer of each item, shape ``(n_items,)``.
        covers: Per parameter, the item whose output feeds the element's
            kernel row (its consuming slice), -1 where none; None: no covers.
        pool_owned: Per item, whether it pools the scores of its owned elements.
        pool_covered: Per item, whether it pools the scores of the elements it covers.
        mask_covered: Whether removing an item also masks the elements it covers.
        notes: One line per layer whose units fell back, saying why.
    """

    owner: list[np.ndarray]
    layers: np.ndarray
    covers: list[np.ndarray | None] | None = None
    pool_owned: np.ndarray | None = None
    pool_covered: np.ndarray | None = None
    mask_covered: bool = False
    notes: tuple[str, ...] = ()


class Aggregation:
    """Base class: assigns every element of a parameter to an item of its layer.

    Subclasses implement :meth:`local_items`. Items shared between the
    parameters of one layer (a unit's kernel column and its bias) use a shared
    numbering; other items are private to their parameter. The numbering
    depends only on the parameters, so it is computed once per (aggregation
    class, :meth:`key`, parameter list) and reused (see :data:`NUMBERINGS`):
    :meth:`local_items` must not depend on anything else.
    """

    name: ClassVar[str]
    pools: ClassVar[bool] = True  # False when every item is one parameter, so pooling has no effect
    by_default: ClassVar[bool] = True  # whether a run that names no aggregations sweeps it
    options: ClassVar[dict[str, Option]] = {}  # declared as data, as a measure's (``--list`` reads them)

    def __init__(self, **options):
        values = check_options("aggregation", getattr(self, "name", type(self).__name__), type(self).options, options)
        for key, value in values.items():
            setattr(self, key, value)

    @property
    def spec(self) -> str:
        """``name`` or ``name:key=value,...`` with the non-default options (the CSV's ``aggregation``)."""
        return canonical_spec(self.name, type(self).options, {key: getattr(self, key) for key in type(self).options})

    def key(self) -> tuple:
        """What, beside the class and the parameters, the items depend on (the numbering's cache key)."""
        return tuple((key, getattr(self, key)) for key, option in type(self).options.items()
                     if getattr(self, key) != option.default)

    def span(self, params: list[Param]) -> Span:
        """The items on ``params``: by default the partition of :meth:`local_items`, nothing spanning further."""
        return Span(*_number_items(self, params))

    def local_items(self, param: Param) -> tuple[np.ndarray, bool | tuple]:
        """Return ``(ids, shared)``: an item id per element, and whether ids are layer-wide.

        ``shared`` may also be a hashable key (a tuple): parameters of several layers that return the
        same key share their ids (an attention head's query, key, value and output slices); those items
        belong to the layer group of the first such parameter.
        """
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

        Returns:
            The items; their ``sizes``, ``layers``, ``element_items`` and
            ``units`` are read-only arrays shared by every call on the same parameters.

        Raises:
            ValueError: unknown ``pooling``; the message lists the choices.
        """
        if self.pools and pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; available: {list(POOLINGS)}")
        numbering = Numbering.of(self, params)
        flat_scores = np.concatenate([np.asarray(s, np.float64).ravel() for s in scores])
        if not self.pools:  # every item is one element: place the scores, nothing to pool
            pooled = flat_scores if numbering.identity else np.empty(numbering.n_items)
            if not numbering.identity:
                pooled[numbering.flat_ids] = flat_scores
            sizes = numbering.ones
        else:
            pooled, sizes = numbering.pool(flat_scores, pooling), numbering.sizes
        return Items(pooled, sizes, numbering.layers, list(numbering.element_items), numbering.units,
                     numbering.element_covers, numbering.notes)


NUMBERINGS = Recent(8)
"""The item numberings of the 8 most recently used (aggregation, parameter list) pairs.

Key: ``(type(aggregation), aggregation.key(), ids of the Params)``; the
entry holds the Params, so their ids stay unique while it exists (a Param is
frozen, and its variable's shape fixed). Complete because a numbering is built from the aggregation's class,
its options and run options (:meth:`Aggregation.key`: unit and filter give
``direction`` and ``structured_bn``) and the Params (their shapes, layers and
the model graph around them, fixed once built) only, never from scores or
variable values.
"""


class Numbering:
    """The items an aggregation forms on a parameter list: everything but the scores.

    Attributes:
        element_items: Per parameter, the item of every element (read-only).
        layers: Layer of each item, shape ``(n_items,)``.
        flat_ids: The element items concatenated, shape ``(n_elements,)``.
        identity: Whether ``flat_ids`` is ``0, 1, ..., n - 1``.
        sizes: Elements per item; ``ones``: all ones, shape ``(n_items,)``.
        units: Output unit of each item (:func:`item_units`).
    """

    def __init__(self, aggregation: Aggregation, params: list[Param]):
        span = aggregation.span(params)
        element_items, layers, self.notes = span.owner, span.layers, tuple(span.notes)
        self.element_items = [_frozen(ids) for ids in element_items]
        self.layers, self.n_items = _frozen(np.asarray(layers, np.int64)), len(layers)
        self.flat_ids = np.concatenate([ids.ravel() for ids in element_items]) if element_items \
            else np.zeros(0, np.int64)
        self.identity = bool(np.array_equal(self.flat_ids, np.arange(len(self.flat_ids))))
        units = np.concatenate([output_units(p).ravel() for p in params]) if params else np.zeros(0, np.int64)
        self.units = _frozen(item_units(self.flat_ids, units, self.n_items))
        self.sizes = _frozen(np.bincount(self.flat_ids, minlength=self.n_items))
        self.ones = _frozen(np.ones(self.n_items, np.int64))
        self._grouped = None  # element order grouped by item, and where each item starts (max and min pooling)
        self.element_covers = [None if c is None else _frozen(c) for c in span.covers] \
            if span.covers is not None and span.mask_covered else None
        self.scored = _scored(span, self.flat_ids, self.n_items)  # (elements, their items, sizes) or None


    @classmethod
    def of(cls, aggregation: Aggregation, params: list[Param]) -> Numbering:
        """The numbering of ``params`` by ``aggregation``'s class, made on first use and kept."""
        key = (type(aggregation), aggregation.key(), tuple(id(p) for p in params))
        return NUMBERINGS.get(key, tuple(params), lambda: cls(aggregation, params))

    def pool(self, values: np.ndarray, pooling: str) -> np.ndarray:
        """:func:`pool` of flat ``values`` by item, with the grouping of the elements computed once."""
        if self.scored is not None:  # items pool other elements than those they own
            elements, ids, sizes = self.scored
            return pool(values[elements], ids, self.n_items, pooling, sizes)[0]
        if pooling not in ("max", "min"):
            return pool(values, self.flat_ids, self.n_items, pooling, self.sizes)[0]
        if self._grouped is None:
            self._grouped = (np.argsort(self.flat_ids, kind="stable"), np.r_[0, np.cumsum(self.sizes)[:-1]])
        order, starts = self._grouped
        return (np.maximum if pooling == "max" else np.minimum).reduceat(values[order], starts)


def _scored(span: Span, owner: np.ndarray, n_items: int) -> tuple | None:
    """The (element, item) pairs pooled when they differ from ``owner``: flat elements, their items, items' counts.

    Raises:
        ValueError: an item would pool no score.
    """
    if span.covers is None or (span.pool_owned.all() and not span.pool_covered.any()):
        return None
    covers = np.concatenate([np.full(ids.size, -1, np.int64) if c is None else c.ravel()
                             for ids, c in zip(span.owner, span.covers)]) if span.covers else owner
    owned = span.pool_owned[owner]
    covered = (covers >= 0) & span.pool_covered[np.maximum(covers, 0)]
    elements = np.r_[np.flatnonzero(owned), np.flatnonzero(covered)]
    ids = np.r_[owner[owned], covers[covered]]
    sizes = np.bincount(ids, minlength=n_items)
    if not sizes.all():
        raise ValueError(f"{int((sizes == 0).sum())} items pool no score; every item needs one.")
    return elements, ids, sizes


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _number_items(aggregation: Aggregation, params: list[Param]) -> tuple[list[np.ndarray], np.ndarray]:
    """Give every item a global id; return per-parameter id arrays and each item's layer."""
    offsets: dict[object, int] = {}
    layers: list[np.ndarray] = []
    count = 0
    element_items = []
    for position, param in enumerate(params):
        ids, shared = aggregation.local_items(param)
        key = (param.layer_index if shared is True else shared) if shared else ("private", position)
        if key not in offsets:
            offsets[key] = count
            layers.append(np.full(int(ids.max()) + 1, param.layer_index, np.int64))
            count += len(layers[-1])
        element_items.append(ids.astype(np.int64) + offsets[key])
    return element_items, np.concatenate(layers) if layers else np.zeros(0, np.int64)


def pool(values: np.ndarray, ids: np.ndarray, n_items: int, pooling: str,
         sizes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pool ``values`` by item id.

    Args:
        values: Flat scores, shape ``(n,)``.
        ids: Item of each score, shape ``(n,)``, in ``[0, n_items)``.
        n_items: Number of items; each must own at least one value.
        pooling: ``mean``, ``sum``, ``max``, ``min`` or ``l2`` (sqrt of the sum of squares).
        sizes: ``np.bincount(ids, minlength=n_items)`` when known.

    Returns:
        ``(pooled, sizes)``, each of shape ``(n_items,)``.
    """
    sizes = np.bincount(ids, minlength=n_items) if sizes is None else sizes
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
    """Output unit of each item: the common unit of its elements that have one (``units >= 0``), or -1.

    Elements without a unit (a BatchNorm scale or shift that a unit owns) do not
    change the item's unit; elements of different units make it -1.
    """
    has = units >= 0
    first = np.full(n_items, -1, np.int64)
    first[ids[has]] = units[has]
    mixed = np.zeros(n_items, bool)
    mixed[ids[has & (first[ids] != units)]] = True
    return np.where(mixed, -1, first)
