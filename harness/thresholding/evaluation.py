"""The one evaluator interface of :func:`harness.thresholding.sweep.sweep`, and a plain function adapted to it.

A sweep assigns each threshold's mask to the live model and asks its
evaluator for the validation metrics. Two classes implement
:class:`SweepEvaluator`:

- :class:`harness.thresholding.evaluator.Evaluator`: compiled evaluation of a Keras model on
  its validation set; every sweep method (``masked``, ``shrunk``,
  ``batched``), per-class metrics, parameter and FLOP counts, and the copy of
  an earlier identical sweep's results (``Evaluator.recent``).
- :class:`FunctionEvaluator`: any function returning ``(val_loss,
  val_accuracy)`` of the live model; thresholds are assigned and evaluated
  one by one (``masked``), and ``params_remaining``/``flops`` are NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from harness.thresholding.masks import MaskBuffers, Schedule
from measures import Param


@runtime_checkable
class SweepEvaluator(Protocol):
    """What a sweep needs of its evaluation.

    Attributes:
        compiles: True when the object also offers :class:`harness.thresholding.evaluator.Evaluator`'s
            compile API (``model``, ``structure``, ``compile``, ``compile_sets``,
            ``compiled``, ``summarize``, ``class_metrics``, ``recent``,
            ``evaluations``), with which the sweep assigns and evaluates a
            threshold in one compiled call; False: each threshold is assigned,
            then :meth:`evaluate_now` is called.
    """

    compiles: bool

    def evaluate_now(self) -> tuple[float, float, list[dict] | None]:
        """``(val_loss, val_accuracy, per-class metrics or None)`` of the live model's current weights."""

    def fast_methods_unavailable(self, params: list[Param]) -> str:
        """Why the ``shrunk`` and ``batched`` methods cannot run on ``params``; ``""`` when they can."""

    def recovery_variables(self, params: list[Param]) -> list:
        """The variables a recovery may change; the sweep writes them back after every threshold."""

    def mask_buffers(self, params: list[Param]) -> MaskBuffers:
        """The mask buffers of ``params`` (:class:`harness.thresholding.masks.MaskBuffers`), new or kept across sweeps."""

    def removal_costs(self, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """``(params_remaining, flops)`` at every threshold of ``schedule``, each shape ``(k,)``; NaN where unknown."""


class FunctionEvaluator:
    """A plain function as a sweep's evaluator (:class:`SweepEvaluator`).

    Only the ``masked`` method runs, one threshold at a time: the mask is
    assigned, then ``function()`` is called. There are no per-class metrics,
    ``params_remaining`` and ``flops`` are NaN, and after a recovery only the
    prunable parameters are written back (the model is unknown here).

    Args:
        function: Returns ``(val_loss, val_accuracy)`` of the live model's current weights.
    """

    compiles = False

    def __init__(self, function: Callable[[], tuple[float, float]]):
        self.function = function

    def evaluate_now(self) -> tuple[float, float, None]:
        """``(*function(), None)``."""
        loss, accuracy = self.function()
        return loss, accuracy, None

    def fast_methods_unavailable(self, params: list[Param]) -> str:
        """Always a reason: a function cannot be compiled into the sweep."""
        return "the evaluation is a plain function, not an Evaluator"

    def recovery_variables(self, params: list[Param]) -> list:
        """The prunable parameters' variables."""
        return [p.variable for p in params]

    def mask_buffers(self, params: list[Param]) -> MaskBuffers:
        """New buffers for every sweep."""
        return MaskBuffers(params)

    def removal_costs(self, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """NaN: the model's structure is unknown."""
        return np.full(schedule.k, np.nan), np.full(schedule.k, np.nan)
