"""Threshold sweeps on the live model: assign masked weights, evaluate, restore.

Three ways to evaluate the thresholds of one sweep, equal to rtol 1e-5:

- ``masked``: the live model's variables are updated in place from one
  threshold to the next; masks are nested, so each step scatters only the
  elements the new threshold adds (from index ranges computed once per
  sweep). Works for every model and replacement.
- ``shrunk``: as ``masked``, but evaluated on the physically smaller model in
  which units whose whole kernel slice is zero are dropped and their constant
  outputs folded into the next layer's bias (:mod:`harness.thresholding.structure`, after
  the "Removing activations" posts of seed 000's series). Chains of Dense,
  convolution, pooling, flattening and element-wise layers only; on any other
  model (residual additions, attention) it masks, and the run's log says so
  per layer.
- ``batched``: every threshold in one pass: K masked copies of the prunable
  weights, a batched matmul or grouped convolution per layer (same chains).

``auto`` picks ``shrunk`` when it removes at least :data:`SHRINK_GAIN` of the
dense FLOPs averaged over the thresholds, else ``batched`` when a GPU is
visible and K copies of the weights and activations fit
:data:`BATCHED_MEMORY` bytes, else ``masked``. The rule depends only on the
model, the masks and the device kind, so a run gives the same numbers under
any machine load. On CPUs the batched pass is not faster (measured in
``benchmarks/sweep.py``), so it is never chosen there automatically.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from harness.common.constants import METHODS, REPLACEMENTS
from harness.common.validation import check_choice
from harness.thresholding.evaluation import SweepEvaluator
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.forward import FirstLayer, UnitOrder, batched_forward, shrunk_step
from harness.thresholding.masks import Schedule
from harness.thresholding.structure import Structure, unit_steps
from harness.thresholding.threshold import Thresholder
from measures import Param

if TYPE_CHECKING:
    from harness.thresholding.recovery import SweepRecovery

SHRINK_GAIN = 0.2
BATCHED_MEMORY = 512 * 2**20
RECENT = 64  # sweeps whose results an evaluator keeps, by digest


def _row(evaluate, totals, seconds: float) -> tuple:
    """``(val_loss, val_accuracy, seconds, per-class metrics or None)`` of one threshold."""
    return (*evaluate.summarize(totals), seconds, evaluate.class_metrics(totals))


def replacement_values(params: list[Param], mode: str, seed: int) -> list[np.ndarray]:
    """Values written into replaced parameters.

    ``zero``: zeros. ``random``: N(0, (std(w) / 10)^2) drawn per variable, w
    the variable's current values (the original study, seed 003); each
    variable draws from its own generator ``default_rng([seed, crc32(name)])``,
    so its values do not depend on which other variables are prunable.

    Raises:
        ValueError: unknown ``mode``; the message lists the choices.
    """
    check_choice("replacement", mode, REPLACEMENTS)
    values = []
    for p in params:
        w = np.asarray(p.variable.numpy())
        scale = float(w.std()) / 10.0 if mode == "random" else 0.0
        rng = np.random.default_rng([seed, zlib.crc32(p.name.encode())])
        values.append((rng.standard_normal(w.shape) * scale).astype(w.dtype))
    return values


def choose_method(method: str, evaluator: SweepEvaluator, schedule: Schedule, params: list[Param],
                  recovery: SweepRecovery | None) -> str:
    """The sweep method to use (see the module docstring for ``auto``).

    Raises:
        ValueError: unknown ``method``, or one that cannot run here (the message says why).
    """
    check_choice("sweep method", method, METHODS)
    reason = _unavailable(evaluator, params, recovery)
    if method == "shrunk" and reason and evaluator.compiles and recovery is None:
        return "masked"  # the model's structure: Structure.notes say why, per layer (residual, attention)
    if method in ("shrunk", "batched") and reason:
        raise ValueError(f"sweep method {method!r} cannot run: {reason}")
    if method != "auto":
        return method
    if reason:
        return "masked"
    if shrink_gain(evaluator.structure, schedule) >= SHRINK_GAIN:
        return "shrunk"
    if tf.config.list_physical_devices("GPU") and batched_chunk(evaluator, params, schedule.k):
        return "batched"
    return "masked"


def _unavailable(evaluator: SweepEvaluator, params: list[Param], recovery: SweepRecovery | None) -> str:
    """Why ``shrunk`` and ``batched`` cannot run: a recovery, else the evaluator's reason; ``""`` when they can."""
    if recovery is not None:
        return "a recovery runs between assignment and evaluation"
    return evaluator.fast_methods_unavailable(params)


def shrink_gain(structure: Structure, schedule: Schedule) -> float:
    """Fraction of the dense FLOPs that structured removal saves, averaged over the thresholds."""
    if schedule.k == 0 or any(link.positions is None for link in structure.links):
        return 0.0
    units = unit_steps(structure, schedule.zero_steps, schedule.k)
    full = sum(link.positions * np.prod(link.kernel.shape) for link in structure.links)
    kept = np.zeros(schedule.k)
    for i, link in enumerate(structure.links):
        taps = np.prod(link.kernel.shape[:-2], dtype=np.int64)
        producer = [j for j in units if structure.links[j].consumer == i]
        rows = _alive(units[producer[0]][structure.row_units(producer[0])], schedule.k) if producer else \
            np.full(schedule.k, link.kernel.shape[-2])
        cols = _alive(units[i], schedule.k) if i in units else np.full(schedule.k, link.units)
        kept += link.positions * taps * rows * cols
    return float(1 - kept.mean() / full)


def _alive(steps: np.ndarray, k: int) -> np.ndarray:
    """Number of entries with ``steps > j`` for every step j < k."""
    return len(steps) - np.cumsum(np.bincount(steps, minlength=k + 1))[:k]


def batched_chunk(evaluate: Evaluator, params: list[Param], k: int) -> int:
    """Examples per batched pass such that k weight copies and activations fit :data:`BATCHED_MEMORY`; 0 if none fit."""
    weights = 3 * k * sum(int(np.prod(p.shape)) * np.dtype(p.variable.dtype).itemsize for p in params)
    per_example = 3 * k * 4 * sum(int(np.prod(layer.output.shape[1:])) for layer in evaluate.structure.chain)
    return int(min(evaluate.batch_size, max(0, BATCHED_MEMORY - weights) // per_example))


def _masked(params, schedule, replacement, evaluate) -> list[tuple]:
    buffers = evaluate.mask_buffers(params)
    step = evaluate.compiled(("masked", *(p.name for p in params)), lambda: evaluate.compile(
        lambda x: evaluate.model(x, training=False), [buffers.span_spec], buffers.scatter))
    buffers.load(schedule, replacement)
    buffers.sync()
    out = []
    try:
        for k in range(schedule.k):
            start = time.perf_counter()
            totals = step(buffers.span(k)).numpy()
            out.append(_row(evaluate, totals, time.perf_counter() - start))
    finally:
        buffers.restore()
    return out


def _stepwise(params, schedule, replacement, evaluator: SweepEvaluator, recovery: SweepRecovery | None) -> list[tuple]:
    """Masked evaluation with one call for the assignment and one for the evaluator, and ``recovery`` between.

    With a recovery every threshold starts from the original weights (the
    recovery may have changed any variable), so its whole mask is written again.
    """
    buffers = evaluator.mask_buffers(params)
    held = evaluator.recovery_variables(params)
    snapshot = [np.array(v.numpy(), copy=True) for v in held] if recovery is not None else []
    buffers.load(schedule, replacement)
    buffers.sync()
    out = []
    try:
        for k, t in enumerate(schedule.thresholds):
            start = time.perf_counter()
            if recovery is not None:
                buffers.restore()
                buffers.sync()
            buffers.apply(buffers.span(k))
            if recovery is not None:
                recovery(float(t))
            loss, accuracy, classes = evaluator.evaluate_now()
            out.append((loss, accuracy, time.perf_counter() - start, classes))
            for v, value in zip(held, snapshot):
                v.assign(value)
    finally:
        buffers.restore()
    return out


def _shrunk(params, schedule, replacement, evaluate) -> list[tuple]:
    structure = evaluate.structure
    buffers = evaluate.mask_buffers(params)
    units = unit_steps(structure, schedule.zero_steps, schedule.k)
    order, first = UnitOrder(structure, units), _first_layer(params, schedule, evaluate, units)
    step = evaluate.compiled(("shrunk", first is not None, *(p.name for p in params)),
                             lambda: shrunk_step(evaluate, structure, buffers, len(params), first))
    kept = order.kept(schedule.k)
    if first is not None:
        kept = np.concatenate([kept, order.alive(schedule.k)[:, :1] > 0], axis=1, dtype=np.int32)
    buffers.load(schedule, replacement, [order.new_positions(p.variable) for p in params])
    if first is not None:
        first.fill(order.perms.get(0))
    out = []
    try:
        order.apply({id(p.variable): original for p, original in zip(params, buffers.originals)})
        buffers.sync()
        for k in range(schedule.k):
            start = time.perf_counter()
            totals = step(tf.constant(np.concatenate([buffers.advance(k).ravel(), kept[k]]))).numpy()
            out.append(_row(evaluate, totals, time.perf_counter() - start))
    finally:
        order.restore(skip={id(p.variable) for p in params})  # the buffers restore the parameters
        buffers.restore()
    return out


def _first_layer(params, schedule, evaluate, units: dict) -> FirstLayer | None:
    """The evaluator's buffer of first-layer products when this sweep can use it (see :class:`FirstLayer`)."""
    structure = evaluate.structure
    kernel = structure.links[0].kernel if structure.links else None
    steps = next((s for p, s in zip(params, schedule.steps) if p.variable is kernel), None)
    if not FirstLayer.usable(evaluate, structure) or not FirstLayer.fixed(structure, steps, units, schedule.k):
        return None
    return evaluate.compiled("first layer", lambda: FirstLayer(evaluate, structure))


def _batched(params, schedule, replacement, evaluate) -> list[tuple]:
    structure, k = evaluate.structure, schedule.k
    chunk = batched_chunk(evaluate, params, k)
    if chunk == 0:
        raise ValueError(f"sweep method 'batched' cannot run: {k} copies of the weights exceed {BATCHED_MEMORY} bytes")
    where = [structure.link_of(p.variable) for p in params]

    def forward(x, steps, originals, values):
        weights = {i: [link.kernel.value, link.bias.value if link.bias is not None else None]
                   for i, link in enumerate(structure.links)}
        sets = tf.reshape(tf.range(k, dtype=tf.int32), [k])
        for (i, role), s, o, r in zip(where, steps, originals, values):
            mask = tf.reshape(sets, [k] + [1] * len(s.shape)) >= tf.cast(s, tf.int32)[None]
            weights[i][0 if role == "kernel" else 1] = tf.where(mask, r[None], o[None])
        return batched_forward(structure, x, weights, k)

    fn = evaluate.compiled(f"batched:{k}:{chunk}:{where}", lambda: evaluate.compile_sets(forward, k, chunk))
    start = time.perf_counter()
    totals = fn([tf.constant(s) for s in schedule.steps], [tf.constant(p.variable.numpy()) for p in params],
                [tf.constant(r) for r in replacement]).numpy()
    seconds = (time.perf_counter() - start) / k
    return [_row(evaluate, row, seconds) for row in totals]


def _evaluated_once(params, schedule, replacement, evaluate, method) -> list[tuple]:
    """Evaluate with ``method``, or copy an earlier sweep's results when its inputs were the same.

    Same means the key matches one of the last :data:`RECENT` the evaluator
    keeps in ``evaluate.recent``. The key is the :func:`sweep_digest` of
    everything the rows depend on besides the evaluator itself (its model,
    data, loss and columns are fixed for its lifetime): the method, the
    prunable parameters' names (which variables the masks apply to), the
    sorted thresholds, each parameter's mask steps (the thresholder's masks
    at every threshold), the replacement values and every weight of the
    model (BatchNorm statistics and other non-prunable weights included).
    On a model without convolutions, ``filter`` items are ``weight`` items,
    so a run evaluates those sweeps once. Copied rows get the time the copy took.
    """
    start = time.perf_counter()
    key = sweep_digest(method, [schedule.thresholds, *schedule.steps, *replacement,
                                *(w.numpy() for w in evaluate.model.weights)], [p.name for p in params])
    if key in evaluate.recent:
        seconds = (time.perf_counter() - start) / max(schedule.k, 1)
        return [(loss, accuracy, seconds, classes) for loss, accuracy, classes in evaluate.recent[key]]
    results = {"masked": _masked, "shrunk": _shrunk, "batched": _batched}[method](params, schedule, replacement, evaluate)
    evaluate.evaluations += schedule.k
    evaluate.recent[key] = [(loss, accuracy, classes) for loss, accuracy, _, classes in results]
    while len(evaluate.recent) > RECENT:
        evaluate.recent.pop(next(iter(evaluate.recent)))
    return results


def sweep_digest(method: str, arrays, names=()) -> bytes:
    """A 128-bit digest (SHA-256, truncated) of the method, the names and the arrays (their dtypes, shapes and bytes)."""
    digest = hashlib.sha256("\0".join([method, *names]).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    return digest.digest()[:16]


def sweep(params: list[Param], thresholder: Thresholder, replacement: list[np.ndarray],
          thresholds, evaluator: SweepEvaluator, method: str = "auto",
          recovery: SweepRecovery | None = None) -> list[dict]:
    """Evaluate the model at every threshold, then restore the weights bit for bit.

    The masks of all thresholds come from one thresholder and are nested; nothing
    is cloned or compiled per threshold (see the module docstring for the methods).

    Args:
        params: The prunable parameters, in the thresholder's order.
        thresholder: The order in which the items of one (measure,
            aggregation, scope) are replaced: a :class:`~harness.thresholding.threshold.Thresholder`
            or a control (:mod:`harness.thresholding.controls`).
        replacement: Values for replaced elements, one array per parameter.
        thresholds: Fractions t in [0, 1].
        evaluator: A :class:`~harness.thresholding.evaluation.SweepEvaluator`: an
            :class:`Evaluator`, or a :class:`~harness.thresholding.evaluation.FunctionEvaluator`
            wrapping a function that returns ``(val_loss, val_accuracy)`` of
            the live model (then only ``masked`` runs and
            ``params_remaining``/``flops`` are NaN).
        method: ``auto``, ``masked``, ``shrunk`` or ``batched``.
        recovery: A :class:`~harness.thresholding.recovery.SweepRecovery`, called with the
            threshold after its mask is assigned and before evaluation
            (BatchNorm recalibration, fine-tuning steps). It may change any of
            the evaluator's ``recovery_variables``, which are restored before
            the next threshold. Forces ``masked``.

    Returns:
        One dict per threshold, in the given order: threshold, sparsity,
        n_replaced, params_remaining, flops, val_loss, val_accuracy,
        sweep_seconds (time of this threshold's assignment and evaluation;
        for ``batched``, an equal share of the pass); with an evaluator's
        ``classes``, also ``per_class`` (:meth:`Evaluator.class_metrics`).

    Raises:
        ValueError: a threshold outside [0, 1]; an unknown method, or one that cannot run.
        TypeError: ``evaluator`` is not a :class:`~harness.thresholding.evaluation.SweepEvaluator` (a plain function, say).
    """
    if not isinstance(evaluator, SweepEvaluator):
        raise TypeError("evaluator must be a SweepEvaluator: an Evaluator, or a plain function wrapped in "
                        f"harness.thresholding.evaluation.FunctionEvaluator. Received: evaluator={evaluator!r}")
    schedule = Schedule(params, thresholder, replacement, thresholds)
    method = choose_method(method, evaluator, schedule, params, recovery)
    if recovery is not None or not evaluator.compiles:
        results = _stepwise(params, schedule, replacement, evaluator, recovery)
    else:
        results = _evaluated_once(params, schedule, replacement, evaluator, method)
    return _rows(schedule, results, evaluator.removal_costs(schedule))


def _rows(schedule: Schedule, results: list[tuple], costs: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    """The sweep's rows in the caller's threshold order, from results and costs in ascending-threshold order."""
    rows = [None] * schedule.k
    for j, (position, t) in enumerate(zip(schedule.order, schedule.thresholds)):
        n = int(schedule.n_replaced[j])
        loss, accuracy, seconds, classes = results[j]
        rows[position] = dict(threshold=float(t), sparsity=n / schedule.n_params, n_replaced=n,
                              params_remaining=float(costs[0][j]), flops=float(costs[1][j]),
                              val_loss=loss, val_accuracy=accuracy, sweep_seconds=seconds)
        if classes is not None:
            rows[position]["per_class"] = classes
    return rows
