"""Units that span parameters: a unit's BatchNorm scale and shift, and its consuming slice in the next layer.

Shared by ``unit`` and ``filter`` (:func:`unit_span`). See ``aggregations/unit.py`` for the rules.
"""

from __future__ import annotations

import numpy as np

from aggregations._graph import follow, row_channels
from aggregations._items import Span, _number_items
from measures import Param

STRUCTURED_BN = ("zero", "keep")


def unit_span(aggregation, params: list[Param], direction: str, structured_bn: str) -> Span:
    """The items of ``unit`` or ``filter`` on ``params`` in ``direction`` (see ``aggregations/unit.py``).

    Args:
        aggregation: Forms the partition (:meth:`local_items`); its units are
            the shared items of kernels.
        params: The prunable parameters.
        direction: ``in``, ``out`` or ``group``.
        structured_bn: ``zero`` (a unit owns its prunable BatchNorm scale and
            shift) or ``keep`` (they stay single weights).
    """
    owner, layers = _number_items(aggregation, params)
    if direction == "in" and structured_bn == "keep":
        return Span(owner, layers)
    producers = [(i, p) for i, p in enumerate(params) if p.role == "kernel" and aggregation.local_items(p)[1]]
    paths = {i: follow(p.layer) for i, p in producers}
    if structured_bn == "zero":
        owner, layers = _join_batchnorm(params, owner, layers, producers, paths)
    if direction == "in":
        return Span(owner, layers)
    covers, consumed, notes = _covers(params, owner, producers, paths, len(layers))
    fallback = "pool their incoming weights (direction 'in')" if direction == "out" else "pool no outgoing weights"
    notes = [f"{params[i].layer.name}: {reason}; its units {fallback}" for i, reason in notes]
    pool_owned = ~consumed if direction == "out" else np.ones(len(layers), bool)
    return Span(owner, layers, covers, pool_owned, consumed, direction == "group", tuple(notes))


def unit_ids(owner: np.ndarray) -> np.ndarray:
    """The item of each unit of a kernel ``(..., units)`` from its element items."""
    return owner.reshape(-1, owner.shape[-1])[0]


def _join_batchnorm(params, owner, layers, producers, paths):
    """Give every prunable BatchNorm scale or shift that follows a unit layer its unit's items; renumber."""
    owner = list(owner)
    position = {id(p.variable): j for j, p in enumerate(params)}
    joined = False
    for i, _ in producers:
        units = unit_ids(owner[i])
        for layer in paths[i].between:
            for variable in (getattr(layer, "gamma", None), getattr(layer, "beta", None)):
                j = position.get(id(variable)) if variable is not None else None
                if j is not None and params[j].shape == units.shape:
                    owner[j], joined = units.copy(), True
    if not joined:
        return owner, layers
    flat = np.concatenate([ids.ravel() for ids in owner])
    kept, inverse = np.unique(flat, return_inverse=True)  # items left without elements vanish
    bounds = np.cumsum([0] + [ids.size for ids in owner])
    owner = [inverse[a:b].reshape(ids.shape).astype(np.int64) for a, b, ids in zip(bounds[:-1], bounds[1:], owner)]
    return owner, np.asarray(layers)[kept]


def _covers(params, owner, producers, paths, n_items):
    """Per parameter, the unit feeding each consumer kernel row (-1 elsewhere); which items have one; fallbacks."""
    covers = [None] * len(params)
    consumed = np.zeros(n_items, bool)
    position = {id(p.variable): j for j, p in enumerate(params)}
    notes = []
    for i, _ in producers:
        path, units = paths[i], unit_ids(owner[i])
        j = position.get(id(path.consumer.kernel)) if path.consumer is not None else None
        channels = row_channels(path.consumer, len(units)) if j is not None else None
        if channels is None:
            reason = path.reason or (f"the next layer {path.consumer.name}'s kernel is not prunable" if j is None
                                     else f"the rows of {path.consumer.name} do not divide among its units")
            notes.append((i, reason))
            continue
        shape = params[j].shape
        rows = np.broadcast_to(units[channels][:, None], (shape[-2], shape[-1]))
        covers[j] = np.broadcast_to(rows, shape).copy()
        consumed[units] = True
    return covers, consumed, notes
