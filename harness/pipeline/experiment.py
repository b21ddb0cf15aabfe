"""The experiment: train, and after every epoch score, threshold and evaluate.

:class:`Experiment` coordinates one run; its parts are built by
:func:`harness.pipeline.assembly.assemble`: the plan (:mod:`harness.pipeline.plan`), the
scorer (:mod:`harness.pipeline.scoring`), the sweeps (:mod:`harness.pipeline.sweeping`) and the
epoch loop (:mod:`harness.pipeline.epochs`); persistence goes through
:class:`harness.pipeline.results.RunStore`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from harness.common.run_id import differences
from harness.pipeline import assembly, checkpoint, opening, results
from harness.pipeline.config import RunConfig
from harness.pipeline.epochs import TrainingDiverged, check_divergence
from harness.pipeline.plan import Plan, conditions
from harness.pipeline.scoring import Scorer, check_scores, class_sample, draw_sample
from measures import make_measure
from tasks import get_task

__all__ = ["Experiment", "RunFailed", "TrainingDiverged", "check_divergence", "check_scores", "class_sample",
           "conditions", "differences", "draw_sample", "run", "run_metadata"]
log = logging.getLogger("harness")


class RunFailed(RuntimeError):
    """One or more measures failed; the other measures' rows were written."""




class Experiment:
    """One run of the grid: a model, its measures, and the CSV it appends to.

    Everything that can be validated is validated before any data is loaded:
    the config on construction, then the output files, the run's lock and
    what the CSV already holds of the run. A complete run is not recomputed
    (``complete`` is True and :meth:`run` only reports it). With
    ``config.resume`` a partly written run continues from its newest intact
    checkpoint at or before the first epoch with missing sweeps, or from the
    start, and skips every sweep already complete in the CSV. Persistence
    goes through ``self.store`` (:class:`harness.pipeline.results.RunStore`). The run's
    parts (``bench``, ``plan``, ``scorer``, ``sweeps``, ``loop``; see
    :func:`harness.pipeline.assembly.assemble`) are None for a complete run.

    Args:
        config: The validated parameters.

    Raises:
        ValueError: a measure cannot score the model (``Measure.unsupported``; before any file or data is
            touched where the task's example shape is known); the CSV has another schema or is not text; or it holds part
            of this run and ``resume`` is off; or ``resume`` is on and the CSV
            holds only runs with other parameters (the message names the differences).
        harness.pipeline.results.RunLocked: another process is writing this run.
        tasks.DatasetUnavailable: the task's data cannot be found.
    """

    def __init__(self, config: RunConfig):
        self._started, self.seconds = time.perf_counter(), 0.0
        self.config, self.run_id, self.path = config, config.run_id, Path(config.output)
        self.measures = {spec: make_measure(spec) for spec in config.measures}
        self.task = get_task(config.task)
        asked = assembly.refuse_unsupported(config, self.task, self.measures)  # before any file or data, if it can
        self.store = results.RunStore(self.path, self.run_id, _tables(config, self.task), config.keep_checkpoints)
        self.notes: list[str] = []
        self.bench = self.plan = self.scorer = self.sweeps = self.loop = None
        self.complete = self._check_files()
        if self.complete:
            return
        self.store.acquire()
        try:
            self.complete, done = opening.open_locked(self.store, config.resume, self.note)
            if not self.complete:
                self.bench, self.plan, self.scorer, self.sweeps, self.loop = assembly.assemble(
                    config, self.task, self.measures, self.store, asked, done, self.note)
        except BaseException:
            self.store.release(refused=True)
            raise

    def _check_files(self) -> bool:
        """Whether the run is complete in the CSV (read only: a complete run, or a refusal, takes no lock)."""
        self.store.check_output()
        if self.config.resume and not self.store.metadata_path.exists():
            self._refuse_other_runs()
        scan = self.store.scan()
        complete = self.store.verify_complete(scan)
        if not (complete or self.config.resume):
            opening.refuse_partial(self.store, scan)
        return complete and not scan.needs_repair

    def _refuse_other_runs(self) -> None:
        old = self.store.other_run_metadata()
        if old is not None:
            theirs = old.get("config") if isinstance(old.get("config"), dict) else {}
            diff = differences(theirs, self.config.result_defining())
            raise ValueError(f"Cannot resume: {self.path} holds no run with these parameters (run {self.run_id}). "
                             f"Its latest run {old.get('run_id')} differs in (theirs, yours): {diff}")

    def sidecar(self, suffix: str) -> Path:
        """A file beside the CSV named after this run (``.json``, ``.log``, ``.ckpt``)."""
        return self.store.sidecar(suffix)

    def note(self, message: str) -> None:
        """Tell the user one line (stderr, above any progress bar) and keep it for the log."""
        tqdm.write(f"note: {message}", file=sys.stderr)
        self.notes.append(message)
        if log.handlers:  # during run(); earlier notes are logged when the log opens
            log.info(message)

    def close(self) -> None:
        """Release the run's lock without running (``run`` releases it itself)."""
        self.store.release()

    @property
    def history(self) -> list[dict]:
        """The unthresholded model's losses after each epoch (:class:`harness.pipeline.epochs.EpochLoop`)."""
        return self.loop.history if self.loop else []

    @property
    def failures(self) -> list[str]:
        """The measure evaluations that failed (:class:`harness.pipeline.sweeping.EpochSweeps`)."""
        return self.sweeps.failures if self.sweeps else []

    @property
    def rows_written(self) -> int:
        """Rows this process appended to the CSV."""
        return self.sweeps.rows_written if self.sweeps else 0

    def metadata(self) -> dict:
        """:func:`run_metadata` of this run."""
        return run_metadata(self.config, self.task, self.bench, self.plan, self.scorer, self.notes)

    def run(self) -> Path:
        """Train for ``config.epochs`` epochs, checkpointing and sweeping after each; return the CSV path.

        A complete run returns at once. The run's lock is released on return.

        Raises:
            RunFailed: some measures failed (logged with tracebacks to the run's
                ``.log`` file); every other sweep was written.
            TrainingDiverged: see :func:`check_divergence`; earlier epochs' rows are kept.
        """
        try:
            if not self.complete:
                if not (self.config.resume and self.store.read_metadata() is not None):
                    self.store.write_metadata(self.metadata())
                with _log_to(self.store.log_path):
                    self._epochs()
        finally:
            self.store.release()
            self.seconds = time.perf_counter() - self._started
        if self.failures:
            raise RunFailed(f"{len(self.failures)} measure evaluation(s) failed; tracebacks in "
                            f"{self.store.log_path}: " + "; ".join(self.failures))
        return self.path

    def _epochs(self) -> None:
        for message in self.notes:
            log.info(message)
        for note in self.bench.evaluate.structure.notes:
            log.info("structured removal keeps the units of %s masked", note)
        missing = self.plan.missing_epochs()
        if missing:
            self.loop.run(missing, self.sweeps.sweep_epoch, len(self.plan.done))
        if not self.failures:
            scan = self.store.scan()
            if self.plan.complete(scan.done):
                self.store.mark_complete(scan, epochs=self.history)

    def summary(self) -> str:
        """What the run did: rows, time, where its files are, the unthresholded losses, and the next command."""
        if self.complete:
            return (f"run {self.run_id} is already complete in {self.path}; nothing was recomputed.\n"
                    f"next: python analysis.py {self.path}")
        checkpoints = checkpoint.epochs(self.store.checkpoint_folder)
        lines = [f"run {self.run_id}: {self.rows_written} rows written in {self.seconds:.1f} s"
                 + (f"; {len(self.failures)} measure evaluation(s) failed" if self.failures else ""),
                 f"  CSV:        {self.path}", f"  metadata:   {self.store.metadata_path}",
                 f"  log:        {self.store.log_path}",
                 f"  checkpoint: {self.store.checkpoint_folder / f'epoch-{checkpoints[0]}' if checkpoints else '-'}",
                 "  unthresholded model:  epoch  train loss    val loss  val accuracy"]
        for h in self.history:
            train = f"{h['train_loss']:10.4f}" if "train_loss" in h else f"{'-':>10}"
            lines.append(f"{'':24}{h['epoch']:5d}  {train}  {h['val_loss']:10.4f}  {h['val_accuracy']:12.4f}")
        lines.append(f"next: python analysis.py {self.path}")
        return "\n".join(lines)


def _tables(config: RunConfig, task) -> list[results.Table]:
    """The run's tables: the results, and the per-class rows with ``per_class``."""
    tables = [results.results_table(Path(config.output), rows_per_sweep=len(config.thresholds))]
    if config.per_class:
        rows = len(config.thresholds) * task.num_classes
        tables.append(results.per_class_table(Path(config.output), rows_per_sweep=rows))
    return tables


def run_metadata(config: RunConfig, task, bench: assembly.Bench, plan: Plan, scorer: Scorer, notes: list[str]) -> dict:
    """The run's parameters, grid, data facts, parameter list, notes, package versions and git commit."""
    params = [dict(name=p.name, shape=list(p.shape), role=p.role, kind=p.kind) for p in bench.params]
    return dict(run_id=config.run_id, config=config.result_defining(), output=str(Path(config.output)),
                data_dir=config.data_dir, num_classes=task.num_classes, data=bench.data.info,
                model_file=_model_file_facts(config), **scorer.facts(task.num_classes), conditions=plan.grid,
                params=params, notes=list(notes), versions=results.package_versions(), git_commit=results.git_commit(),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat())


def _model_file_facts(config: RunConfig) -> dict | None:
    """Path and SHA-256 of the model file, and whether its weights were fine-tuned; None without one."""
    if config.model_file is None:
        return None
    return dict(path=str(Path(config.model_file).expanduser().resolve()),
                sha256=config.result_defining()["model_file_sha256"], fine_tuned_epochs=config.epochs)


@contextlib.contextmanager
def _log_to(path: Path):
    """Send the ``harness`` logger to ``path`` (appending) for the duration of a run."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the run's log file only; TensorFlow may have configured the root logger
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def run(config: RunConfig) -> Path:
    """Run the experiment ``config`` describes, print its summary, and return the CSV path."""
    experiment = Experiment(config)
    try:
        path = experiment.run()
    except RunFailed:
        print(experiment.summary())
        raise
    print(experiment.summary())
    return path
