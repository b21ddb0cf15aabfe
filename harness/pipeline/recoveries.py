"""The recoveries of one run on its model, built once, and the recovery each sweep runs.

What each recovery does is in :mod:`harness.thresholding.recovery`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.pipeline.config import RunConfig
from harness.thresholding.recovery import BatchNormRecalibration, FineTuning, batch_norm_layers
from harness.thresholding.recovery_spec import Recovery


def kept_recoveries(config: RunConfig, model, note: Callable[[str], None]) -> list[Recovery]:
    """The run's recoveries applied on ``model``: ``bn`` is skipped, with a note, on a model without BatchNorm."""
    kept, has_batch_norm = [], bool(batch_norm_layers(model))
    for recovery in config.parsed_recoveries:
        if recovery.kind == "bn" and not has_batch_norm:
            note(f"recovery {recovery.spec!r} is skipped: model {config.model!r} has no BatchNormalization layer, so "
                 "its rows would equal recovery 'none'")
        else:
            kept.append(recovery)
    return kept


class Recoveries:
    """The ``bn`` recalibrations and the ``finetune`` fine-tuning of one run, built once for every sweep.

    Args:
        kept: :func:`kept_recoveries`.
        config: The run's parameters (batch size, seed, thresholds).
        bench: The run's model, loss, parameters, data and trainer (:class:`harness.pipeline.assembly.Bench`).
    """

    def __init__(self, kept: list[Recovery], config: RunConfig, bench):
        self.params, self.thresholds = bench.params, config.thresholds
        self.steps = max([r.options["steps"] for r in kept if r.kind == "finetune"], default=0)  # batches per epoch
        self.recalibrations: dict[str, BatchNormRecalibration] = {}
        self.finetuning: FineTuning | None = None
        x, y, trainer = bench.data.x_train, bench.data.y_train, bench.trainer
        for recovery in kept:
            if recovery.kind == "bn":
                self.recalibrations[recovery.spec] = BatchNormRecalibration(
                    bench.model, x, config.batch_size, recovery.options["batches"], config.seed)
            elif recovery.kind == "finetune" and self.finetuning is None:
                self.finetuning = FineTuning(bench.model, bench.loss, trainer.optimizer, bench.params, x, y,
                                             config.batch_size, config.seed, trainer.augment)

    def start_epoch(self, epoch: int) -> None:
        """Draw the fine-tuning batches of ``epoch`` (nothing without ``finetune``)."""
        if self.finetuning is not None:
            self.finetuning.start_epoch(epoch, self.steps)

    def for_sweep(self, recovery: Recovery, thresholder, values: list[np.ndarray]) -> Callable | None:
        """The :class:`harness.thresholding.recovery.SweepRecovery` of ``recovery`` (None for ``none``).

        The sweep runs it threshold by threshold, before each evaluation.

        Args:
            recovery: One of the kept recoveries.
            thresholder: The sweep's thresholder (a Thresholder or a control).
            values: The sweep's replacement values, one array per parameter.
        """
        if recovery.kind == "none":
            return None
        if recovery.kind == "bn":
            return self.recalibrations[recovery.spec]
        return self.finetuning.recovery(recovery.options["steps"], self.params, thresholder, values, self.thresholds)
