"""The sweeps after an epoch: rank each condition's items, derive the controls, recover, evaluate, write the rows."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np

from harness.common import progress
from harness.common.constants import REPLACEMENTS
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.pipeline.plan import Plan
from harness.pipeline.recoveries import Recoveries
from harness.pipeline.scoring import Scorer
from harness.pipeline.seed import derived_seed
from harness.thresholding.controls import control_name, control_seed, make_control
from harness.thresholding.recovery_spec import Recovery
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder

log = logging.getLogger("harness")


class Sweeper:
    """The sweeps of one measure's scores under one condition: its thresholder, the controls' thresholders, and their rows.

    Args:
        config: The run's parameters (thresholds, threshold rule, sweep method, seed).
        params: The prunable parameters.
        evaluate: The run's :class:`harness.thresholding.evaluator.Evaluator`.
        recoveries: The run's :class:`harness.pipeline.recoveries.Recoveries`.
        kinds: The run's aggregations by spec (:func:`harness.pipeline.plan.aggregations_of`).
    """

    def __init__(self, config: RunConfig, params: list, evaluate, recoveries: Recoveries, kinds: dict):
        self.config, self.params, self.evaluate, self.recoveries, self.kinds = config, params, evaluate, recoveries, kinds

    def start_epoch(self, epoch: int) -> dict[str, list[np.ndarray]]:
        """The replacement values of ``epoch`` by replacement, after which the fine-tuning batches are drawn."""
        replacement = {mode: replacement_values(self.params, mode,
                                                derived_seed(self.config.seed, epoch, REPLACEMENTS.index(mode)))
                       for mode in self.config.replacements}
        self.recoveries.start_epoch(epoch)
        return replacement

    def items(self, scores: list[np.ndarray], condition: dict):
        """The items of ``condition``'s aggregation, their scores pooled by its pooling."""
        return self.kinds[condition["aggregation"]](self.params, scores, condition["pooling"])

    def thresholder(self, scores: list[np.ndarray], condition: dict, epoch: int, items=None) -> Thresholder:
        """Aggregate and pool the scores (unless ``items`` are given), then rank the items of one condition."""
        items = self.items(scores, condition) if items is None else items
        return Thresholder(items, condition["scope"], condition["normalization"], derived_seed(self.config.seed, epoch),
                           self.config.threshold_rule, condition["order"])

    def sweeps(self, scores: list[np.ndarray], condition: dict, epoch: int, sweeps: list[tuple],
               replacement: dict) -> Iterator[tuple]:
        """Sweep ``(control or None, replacement, recovery)`` each; yield each with its rows, as it is done.

        Raises:
            ValueError: a sweep gave a non-finite validation loss; names the threshold and the sweep.
        """
        items = self.items(scores, condition)
        thresholders = {None: self.thresholder(scores, condition, epoch, items)}
        for variant, mode, recovery in sweeps:
            if variant not in thresholders:
                thresholders[variant] = make_control(variant, thresholders[None], items.layers,
                                                 control_seed(self.config.seed, epoch))
            rows = self.rows(thresholders[variant], replacement[mode], recovery)
            bad = [r for r in rows if not math.isfinite(r["val_loss"])]
            if bad:
                raise ValueError(f"validation loss {bad[0]['val_loss']} at threshold {bad[0]['threshold']} "
                                 f"({condition}, replacement {mode}, recovery {recovery.spec}, control {variant}); "
                                 "the sweep's rows are not written")
            yield variant, mode, recovery, rows

    def rows(self, thresholder, values: list[np.ndarray], recovery: Recovery) -> list[dict]:
        """One sweep's rows; a recovery runs threshold by threshold before each evaluation (``masked``)."""
        step = self.recoveries.for_sweep(recovery, thresholder, values)
        method = self.config.sweep_method if step is None else "masked"
        return sweep(self.params, thresholder, values, self.config.thresholds, self.evaluate, method, recovery=step)


class EpochSweeps:
    """After an epoch: score every measure and append the rows of each sweep the CSV lacks.

    A failing measure is logged (with its traceback) and counted in ``failures``; the others go on.

    Args:
        config: The run's parameters.
        plan: What the run sweeps and what is done.
        scorer: Scores the measures.
        sweeper: Sweeps one condition.
        store: The run's files (:class:`harness.pipeline.results.RunStore`).
    """

    def __init__(self, config: RunConfig, plan: Plan, scorer: Scorer, sweeper: Sweeper, store: results.RunStore):
        self.config, self.plan, self.scorer, self.sweeper, self.store = config, plan, scorer, sweeper, store
        self.failures: list[str] = []
        self.rows_written = 0

    def sweep_epoch(self, epoch: int) -> None:
        """Score every measure and sweep every condition not yet in the CSV; nothing after an epoch not swept."""
        if not self.config.sweeps_after(epoch):
            return
        replacement = self.sweeper.start_epoch(epoch)
        for spec in progress.bar(self.config.measures, desc=f"sweeps after epoch {epoch}", unit="measure",
                                 enabled=self.config.progress, nested=True, leave=False):
            try:
                self.sweep_measure(spec, epoch, replacement)
            except results.DiskFull:
                raise  # the run stops; --resume continues once there is space
            except Exception as error:  # noqa: BLE001 - one measure's failure must not stop the others
                log.exception("epoch %d, measure %r failed", epoch, spec)
                self.failures.append(f"epoch {epoch} measure {spec!r}: {error!r}")

    def sweep_measure(self, spec: str, epoch: int, replacement: dict) -> None:
        """Score one measure and append the rows of each of its sweeps (and its controls') still missing from the CSV.

        Raises:
            ValueError: a sweep gave a non-finite validation loss; its rows are not written.
        """
        todo = self.plan.todo(spec, epoch)
        if not todo:
            return
        scores, seconds = self.scorer.score(spec, epoch)
        for condition, sweeps in todo:
            for variant, mode, recovery, rows in self.sweeper.sweeps(scores, condition, epoch, sweeps, replacement):
                key = dict(self.row_key(epoch), measure=control_name(spec, variant), **condition, replacement=mode,
                           recovery=recovery.spec, measure_seconds=seconds)
                self._append([dict(key, **row) for row in rows])

    def _append(self, main: list[dict]) -> None:
        tables = {"results": main, "per_class": results.per_class_rows(main)} if self.config.per_class \
            else {"results": main}
        self.rows_written += self.store.append(tables)

    def row_key(self, epoch: int) -> dict:
        """The columns shared by every row of an epoch."""
        c = self.config
        return dict(run_id=self.store.run_id, task=c.task, model=c.model, seed=c.seed, epoch=epoch)
