"""The epoch loop of a run: where it starts (a checkpoint, or the initial model), and one training step per epoch."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from harness.common import progress
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.pipeline.train import NonFiniteTraining

log = logging.getLogger("harness")


class TrainingDiverged(RuntimeError):
    """Training diverged (see :func:`check_divergence`); no checkpoint or rows were written for that epoch."""


def check_divergence(val_loss: float, initial_val_loss: float, factor: float) -> None:
    """The divergence rule, applied to the unthresholded model after each epoch's training.

    Training has diverged when the validation loss is not finite, or when it
    exceeds ``factor`` times the validation loss before training (the loss
    of the freshly initialised model, about ln C for C balanced classes).
    A non-finite training loss is caught earlier, by the trainer.

    Raises:
        TrainingDiverged: the message names the loss and the limit.
    """
    if not math.isfinite(val_loss):
        raise TrainingDiverged(f"validation loss {val_loss}")
    if val_loss > factor * initial_val_loss:
        raise TrainingDiverged(f"validation loss {val_loss:.6g} exceeds {factor:g} times its value before training "
                               f"({initial_val_loss:.6g}; --divergence-factor {factor:g})")


class EpochLoop:
    """Train epoch by epoch, checkpointing after each, and call the sweeps after each; keeps the losses' history.

    Args:
        config: The run's parameters.
        bench: The run's data, trainer, evaluator and checkpointed state (:class:`harness.pipeline.assembly.Bench`).
        store: The run's files (:class:`harness.pipeline.results.RunStore`): checkpoints.
        note: Tells the user one line.
    """

    def __init__(self, config: RunConfig, bench, store: results.RunStore, note: Callable[[str], None]):
        self.config, self.bench, self.store, self.note = config, bench, store, note
        self.history: list[dict] = []  # the unthresholded model's losses, epoch 0 (before training) first

    def run(self, missing: list[int], sweep_epoch: Callable[[int], None], done: int) -> None:
        """Continue from the latest usable start to the last epoch in ``missing``, sweeping after each epoch.

        Args:
            missing: The epochs with sweeps missing from the CSV, in order (not empty).
            sweep_epoch: Sweeps after one epoch (what the CSV lacks of it).
            done: The number of sweeps the CSV holds already (for the note of a restart).
        """
        first = self.start(missing[0], done)
        with progress.bar(total=self.config.epochs, initial=first, desc=f"run {self.store.run_id}", unit="epoch",
                          enabled=self.config.progress) as bar:
            if first or not self.config.epochs:
                sweep_epoch(first)
            for epoch in range(first + 1, missing[-1] + 1):
                start = time.perf_counter()
                self.train(epoch)
                sweep_epoch(epoch)
                last = self.history[-1]
                bar.set_postfix(dict(train_loss=f"{last['train_loss']:.4f}", val_loss=f"{last['val_loss']:.4f}"),
                                refresh=False)
                bar.update()
                progress.line(f"run {self.store.run_id}: epoch {epoch}/{self.config.epochs} in "
                              f"{time.perf_counter() - start:.1f} s; training loss {last['train_loss']:.4f} (epoch "
                              f"mean), validation loss {last['val_loss']:.4f}, accuracy {last['val_accuracy']:.4f}",
                              self.config.progress)

    def start(self, first_missing: int, done: int) -> int:
        """The epoch to continue from: a restored checkpoint's, or 0 (the initial model, evaluated)."""
        if not self.config.resume:
            self.store.clear_checkpoints()
            return self._from_scratch()
        restored = self.store.restore_checkpoint(self.bench.state, first_missing, self.note)
        if restored is None:
            if done:
                self.note(f"run {self.store.run_id}: no intact checkpoint at or before epoch {first_missing} (the "
                          f"first with missing sweeps); rerunning from the start, skipping the {done} sweeps "
                          f"already in {self.store.csv}")
            return self._from_scratch()
        epoch, info = restored
        self.history = info["history"]
        log.info("resumed run %s from the checkpoint of epoch %d", self.store.run_id, epoch)
        return epoch

    def _from_scratch(self) -> int:
        val_loss, val_accuracy = self.bench.evaluate()
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"the validation loss before training is {val_loss}; check the data and model")
        self.history = [dict(epoch=0, val_loss=val_loss, val_accuracy=val_accuracy)]
        return 0

    def train(self, epoch: int) -> None:
        """Train one epoch, stop if it diverged, record the unthresholded losses, and checkpoint."""
        start, bench, config = time.perf_counter(), self.bench, self.config
        try:
            loss = bench.trainer.train_epoch(bench.data.x_train, bench.data.y_train, epoch, config.progress)
            val_loss, val_accuracy = bench.evaluate()
            check_divergence(val_loss, self.history[0]["val_loss"], config.divergence_factor)
        except (NonFiniteTraining, TrainingDiverged) as error:
            message = (f"run {self.store.run_id}: training diverged in epoch {epoch}: {error}; no checkpoint or rows "
                       f"were written for epoch {epoch}. Lower --learning-rate (now {config.learning_rate:g}).")
            log.error(message)
            raise TrainingDiverged(message) from None
        self.history.append(dict(epoch=epoch, train_loss=loss, val_loss=val_loss, val_accuracy=val_accuracy,
                                 seconds=time.perf_counter() - start))
        log.info("epoch %d: training loss %.6f, validation loss %.6f, accuracy %.4f", epoch, loss, val_loss,
                 val_accuracy)
        self.store.save_checkpoint(self.bench.state, epoch, dict(history=self.history))
