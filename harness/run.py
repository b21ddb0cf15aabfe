"""The experiment: train, and after every epoch score, threshold and evaluate."""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import aggregations
from harness import checkpoint, forgetting, progress, results
from harness.config import RunConfig
from harness.controls import control_name, control_seed, make_control
from harness.recovery import BatchNormRecalibration, FineTuning, batch_norm_layers, parse_recovery
from harness.seed import derived_seed, seed_everything
from harness.sweep import REPLACEMENTS, Evaluator, replacement_values, sweep
from harness.threshold import Thresholder
from harness.train import NonFiniteTraining, Trainer
from measures import Measure, MeasureContext, make_measure, prunable_params
from tasks import get_task
from tasks._model_file import check_model_shapes, file_sha256, load_model_file
from tasks._outputs import logits_model

log = logging.getLogger("harness")


def check_scores(spec: str, params, scores) -> list[np.ndarray]:
    """Check a measure's output: one finite array per parameter, shaped like it.

    Raises:
        ValueError: wrong count, shape or non-finite values; names the measure and parameter.
    """
    if len(scores) != len(params):
        raise ValueError(f"Measure {spec!r} returned {len(scores)} arrays for {len(params)} parameters.")
    checked = []
    for p, s in zip(params, scores):
        s = np.asarray(s)
        if s.shape != p.shape or not np.all(np.isfinite(s)):
            raise ValueError(f"Measure {spec!r} gave scores of shape {s.shape} (finite: {np.isfinite(s).all()}) "
                             f"for {p.name} of shape {p.shape}; expected finite scores of the parameter's shape.")
        checked.append(s)
    return checked


def conditions(config: RunConfig) -> Iterator[dict]:
    """Every (aggregation, pooling, scope, normalization, order) of the grid; pooling is "none" where it has no effect.

    Scope ``output`` is skipped for aggregations that pool weights into items
    (unit, filter): their items are whole units, one per output segment.
    """
    for name in config.aggregations:
        pools = aggregations.get_aggregation(name).pools
        for pooling in config.poolings if pools else ["none"]:
            for scope in [s for s in config.scopes if not (pools and s == "output")]:
                for normalization in config.normalizations if scope == "global" else ["none"]:
                    for order in config.orders:
                        yield dict(aggregation=name, pooling=pooling, scope=scope, normalization=normalization,
                                   order=order)


def draw_sample(x: np.ndarray, y: np.ndarray, n: int, seed: int, among: np.ndarray | None = None,
                stream: tuple[int, ...] = (7,)) -> tuple[np.ndarray, np.ndarray]:
    """Draw min(n, eligible) training examples without replacement, once per run, in their original order.

    Args:
        x: Training inputs.
        y: Training targets.
        n: Examples wanted.
        seed: The run's seed; the draw uses ``derived_seed(seed, *stream)``.
        among: Boolean mask ``(len(x),)`` of the eligible examples (those of some classes); None: all.
        stream: Distinguishes draws of one run (the forget set's and the rest's).
    """
    pool = np.arange(len(x)) if among is None else np.flatnonzero(among)
    chosen = np.random.default_rng(derived_seed(seed, *stream)).choice(len(pool), min(n, len(pool)), replace=False)
    index = np.sort(pool[chosen])
    return x[index], y[index]


def class_sample(data, n: int, seed: int, among: np.ndarray, label: str,
                 stream: tuple[int, ...] = (7,)) -> tuple[np.ndarray, np.ndarray]:
    """:func:`draw_sample` among the training examples ``among`` marks (those of some classes), all n of them.

    Raises:
        ValueError: fewer than ``n`` such examples; names the value, the count and ``label`` (the classes).
    """
    if among.sum() < n:
        raise ValueError(f"importance_samples={n} exceeds the {int(among.sum())} training examples of {label}; "
                         f"lower importance_samples to at most {int(among.sum())}.")
    return draw_sample(data.x_train, data.y_train, n, seed, among, stream)


class RunFailed(RuntimeError):
    """One or more measures failed; the other measures' rows were written."""


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


def differences(old: dict, new: dict) -> dict:
    """``{name: (old, new)}`` for every parameter that differs."""
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


class Experiment:
    """One run of the grid: a model, its measures, and the CSV it appends to.

    Everything that can be validated is validated before any data is loaded:
    the config on construction, then the output files, the run's lock and
    what the CSV already holds of the run. A complete run is not recomputed
    (``complete`` is True and :meth:`run` only reports it). With
    ``config.resume`` a partly written run continues from its newest intact
    checkpoint at or before the first epoch with missing sweeps, or from the
    start, and skips every sweep already complete in the CSV. Persistence
    goes through ``self.store`` (:class:`harness.results.RunStore`).

    Args:
        config: The validated parameters.

    Raises:
        ValueError: a measure cannot score the model (``Measure.unsupported``; before any file or data is
            touched where the task's example shape is known); the CSV has another schema or is not text; or it holds part
            of this run and ``resume`` is off; or ``resume`` is on and the CSV
            holds only runs with other parameters (the message names the differences).
        harness.results.RunLocked: another process is writing this run.
        tasks.DatasetUnavailable: the task's data cannot be found.
    """

    def __init__(self, config: RunConfig):
        self._started = time.perf_counter()
        self.config, self.run_id, self.path = config, config.run_id, Path(config.output)
        self.measures = {spec: make_measure(spec) for spec in config.measures}
        self.task = get_task(config.task)
        self.asked = self._refuse_unsupported()  # before any file is touched or data loaded, where the shape is known
        tables = [results.results_table(self.path, rows_per_sweep=len(config.thresholds))]
        if config.per_class:
            classes = get_task(config.task).num_classes
            tables.append(results.per_class_table(self.path, rows_per_sweep=len(config.thresholds) * classes))
        self.store = results.RunStore(self.path, self.run_id, tables, config.keep_checkpoints)
        self.class_blind: set[str] = set()
        self.notes: list[str] = []
        self.failures: list[str] = []
        self.history: list[dict] = []
        self.done: set[tuple] = set()
        self.rows_written, self.seconds = 0, 0.0
        self.store.check_output()
        if config.resume and not self.store.metadata_path.exists():
            self._refuse_other_runs()
        scan = self.store.scan()  # reads only: a complete run, or a refusal, takes no lock and writes nothing
        complete = self.store.verify_complete(scan)
        self.complete = complete and not scan.needs_repair
        if self.complete:
            return
        if not (complete or config.resume):
            self._refuse_partial(scan)
        self.store.acquire()
        try:
            self.complete = self._open()
            if not self.complete:
                self._load()
        except BaseException:
            self.store.release(refused=True)
            raise

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

    def _refuse_other_runs(self) -> None:
        old = self.store.other_run_metadata()
        if old is not None:
            theirs = old.get("config") if isinstance(old.get("config"), dict) else {}
            diff = differences(theirs, self.config.result_defining())
            raise ValueError(f"Cannot resume: {self.path} holds no run with these parameters (run {self.run_id}). "
                             f"Its latest run {old.get('run_id')} differs in (theirs, yours): {diff}")

    def _open(self) -> bool:
        """Whether the run is complete; otherwise what it holds (``done``), repaired with ``resume``."""
        scan = self.store.scan()
        if self.store.verify_complete(scan):
            if scan.needs_repair:
                self._repair()
            return True
        if not self.config.resume:
            self._refuse_partial(scan)
            return False
        if self.store.is_complete():
            self.store.update_metadata(complete=None)  # rows were removed since it completed
        self.done = (self._repair() if scan.needs_repair else scan).done
        return False

    def _refuse_partial(self, scan: results.Scan) -> None:
        """Without ``resume``, a CSV holding part of this run is refused (continue it with ``--resume``)."""
        held = scan.rows[self.store.tables[0].name]
        if held:
            raise ValueError(f"{self.path} already holds {held} rows of run {self.run_id} "
                             "(the same parameters) but not all its sweeps. Continue it with --resume, "
                             "or choose another --output or --seed.")

    def _repair(self) -> results.Scan:
        scan = self.store.repair()
        removed = [f"{n} duplicate rows" for n in scan.duplicates.values() if n]
        removed += [f"the rows of {len(scan.incomplete)} incomplete sweep(s)"] if scan.incomplete else []
        removed += ["a truncated last line"] if scan.partial_lines else []
        if removed:
            self.note(f"{self.path}: removed {', '.join(removed)} of run {self.run_id}; "
                      "every complete sweep is kept, once")
        return scan

    def _load(self) -> None:
        """Load the data, build the model, and everything a sweep needs."""
        config = self.config
        self.data = self.task.load(config.data_dir)
        seed_everything(config.seed, config.deterministic)
        self.model, self.loss, output_note = logits_model(self._build_model(), self.task.loss())
        if output_note:
            self.note(output_note)
        if not self.asked:
            self._refuse_unsupported(self.model)
        self.params = prunable_params(self.model, config.prunable)
        self.grid = self._grid()
        self._draw_samples()
        hooks = [m for m in self.measures.values() if m.training_time]
        optimizer = self.task.optimizer_for(config.learning_rate)
        self.trainer = Trainer(self.model, self.loss, optimizer, self.params, hooks, config.batch_size, config.seed,
                               augment=self.task.augmenter(config.augmentation), jit_compile=config.xla)
        self.evaluate = Evaluator(self.model, self.loss, self.data.x_val, self.data.y_val,
                                  classification=self.task.num_classes is not None, jit_compile=config.xla,
                                  classes=self.task.num_classes if config.per_class else None)
        self.state = checkpoint.tracked_state(self.model, optimizer, self.measures)
        self.recoveries = self._recoveries()

    def _build_model(self):
        """The task's model, or the model file's, checked against the data's example shape."""
        config, shape = self.config, self.data.x_train.shape[1:]
        if config.model_file is None:
            return self.task.build_model(config.model, shape)
        model = load_model_file(config.model_file)
        check_model_shapes(model, shape, self.task.num_classes, config.task, config.model_file)
        if file_sha256(Path(config.model_file).expanduser()) != config.result_defining()["model_file_sha256"]:
            raise ValueError(f"model_file changed since the run was configured. Received: model_file={config.model_file!r}")
        return model

    def _refuse_unsupported(self, model=None) -> bool:
        """Refuse a measure that cannot score this model (:meth:`measures.Measure.unsupported`); whether it was asked.

        Without ``model``, a throwaway copy is built for the task's example shape (or loaded from the model file),
        so the refusal comes before any data is loaded; a task whose shape is known only from its data is not asked.

        Raises:
            ValueError: names the measure, the model and the reason.
        """
        asking = {spec: m for spec, m in self.measures.items() if type(m).unsupported is not Measure.unsupported}
        if not asking:
            return True
        if model is None:
            config, shape = self.config, self.task.input_shape
            if config.model_file is None and shape is None:
                return False
            built = load_model_file(config.model_file) if config.model_file else self.task.build_model(config.model, shape)
            model = logits_model(built, self.task.loss())[0]
        for spec, measure in asking.items():
            reason = measure.unsupported(model)
            if reason:
                raise ValueError(f"measure {spec!r} cannot score model {self.config.model!r}: {reason}; remove it "
                                 f"from measures. Received: measures={self.config.measures}")
        return True

    def _epoch_numbers(self) -> range:
        """The epochs whose sweeps the run writes: 1..epochs, or 0 alone (a model file scored without training)."""
        return range(1, self.config.epochs + 1) if self.config.epochs else range(0, 1)

    def _recoveries(self) -> list[str]:
        """The recoveries applied on this model (``bn`` is skipped without BatchNorm), and what they need."""
        config, kept = self.config, []
        self.recalibrations, self.finetuning = {}, None
        for spec in config.recoveries:
            recovery = parse_recovery(spec)
            if recovery.kind == "bn" and not batch_norm_layers(self.model):
                self.note(f"recovery {spec!r} is skipped: model {config.model!r} has no BatchNormalization layer, so "
                          "its rows would equal recovery 'none'")
                continue
            kept.append(spec)
            if recovery.kind == "bn":
                self.recalibrations[spec] = BatchNormRecalibration(self.model, self.data.x_train, config.batch_size,
                                                                   recovery.options["batches"], config.seed)
            elif recovery.kind == "finetune" and self.finetuning is None:
                self.finetuning = FineTuning(self.model, self.loss, self.trainer.optimizer, self.params,
                                             self.data.x_train, self.data.y_train, config.batch_size, config.seed,
                                             self.trainer.augment)
        return kept

    def _draw_samples(self) -> None:
        """The importance sample(s): of every class, of ``importance_classes``, or a forgetting run's A and R.

        Raises:
            ValueError: fewer training examples of the chosen classes than ``importance_samples``.
        """
        config, data = self.config, self.data
        n, seed = config.importance_samples, config.seed
        if config.forget_classes is not None:
            forget, rest = forgetting.split_classes(data.y_train, config.forget_classes)
            label = f"forget_classes={config.forget_classes}"
            self.samples = [class_sample(data, n, seed, forget, label),
                            class_sample(data, n, seed, rest, f"the classes other than {label}", (7, 1))]
            self.sample = self.samples[0]
        elif config.importance_classes is not None:
            among = forgetting.split_classes(data.y_train, config.importance_classes)[0]
            self.sample = class_sample(data, n, seed, among, f"importance_classes={config.importance_classes}")
        else:
            self.sample = draw_sample(data.x_train, data.y_train, n, seed)
            if n > len(self.sample[0]):
                self.note(f"importance_samples={n} exceeds the {len(self.sample[0])} training examples of "
                          f"{config.task}; all {len(self.sample[0])} are used (recorded in the metadata)")

    def _grid(self) -> list[dict]:
        """The conditions swept on this model: aggregations that form no items of their own are skipped."""
        grid, skipped = [], []
        for condition in conditions(self.config):
            if self.aggregation(condition).applies_to(self.params):
                grid.append(condition)
            elif condition["aggregation"] not in skipped:
                skipped.append(condition["aggregation"])
        for name in skipped:
            self.note(f"aggregation {name!r} is skipped: on model {self.config.model!r} its items are single weights, "
                      "as in 'weight'")
        for name in dict.fromkeys(c["aggregation"] for c in grid):
            for line in aggregations.get_aggregation(name, self.config.structured_bn).span(self.params).notes:
                self.note(f"aggregation {name!r}: {line}")
        if not grid:
            raise ValueError(f"No aggregation of {self.config.aggregations} applies to model {self.config.model!r}.")
        return grid

    def aggregation(self, condition: dict):
        """The aggregation of ``condition``, with the run's ``structured_bn``."""
        return aggregations.get_aggregation(condition["aggregation"], self.config.structured_bn)

    def metadata(self) -> dict:
        """The run's parameters, grid, data facts, parameter list, notes, package versions and git commit."""
        return dict(run_id=self.run_id, config=self.config.result_defining(), output=str(self.path),
                    data_dir=self.config.data_dir, num_classes=self.task.num_classes, data=self.data.info,
                    model_file=self._model_file_facts(),
                    importance_samples_drawn=len(self.sample[0]), **self._sample_facts(), conditions=self.grid,
                    params=[dict(name=p.name, shape=list(p.shape), role=p.role, kind=p.kind) for p in self.params],
                    notes=list(self.notes), versions=results.package_versions(), git_commit=results.git_commit(),
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat())

    def _model_file_facts(self) -> dict | None:
        """Path and SHA-256 of the model file, and whether its weights were fine-tuned; None without one."""
        config = self.config
        if config.model_file is None:
            return None
        return dict(path=str(Path(config.model_file).expanduser().resolve()),
                    sha256=config.result_defining()["model_file_sha256"], fine_tuned_epochs=config.epochs)

    def _sample_facts(self) -> dict:
        """The classes the importance samples were drawn from and how many; the forgetting set-up."""
        config = self.config
        if config.forget_classes is None:
            return dict(importance_classes=config.importance_classes)
        rest = [c for c in range(self.task.num_classes) if c not in config.forget_classes]
        eps = f"{forgetting.EPS:g} * mean(I_R) per parameter" if config.contrast == "ratio" else None
        return dict(forgetting=dict(forget_classes=config.forget_classes, retain_classes=rest, contrast=config.contrast,
                                    eps=eps, samples_drawn=dict(forget=len(self.samples[0][0]),
                                                                retain=len(self.samples[1][0]))))

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

    def expected_keys(self, epoch: int) -> set[tuple]:
        """Every sweep key of one epoch (:func:`harness.results.sweep_key`): measures and their controls.

        Empty for an epoch that ``sweep_epochs`` does not sweep.
        """
        if not self.config.sweeps_after(epoch):
            return set()
        return {self.key(epoch, control_name(spec, control), c, mode, recovery) for spec in self.measures
                for control in [None, *self.config.controls] for c in self.grid
                for mode in self.config.replacements for recovery in self.recoveries}

    def _epochs(self) -> None:
        for message in self.notes:
            log.info(message)
        for note in self.evaluate.structure.notes:
            log.info("structured removal keeps the units of %s masked", note)
        missing = sorted({k[0] for e in self._epoch_numbers() for k in self.expected_keys(e) - self.done})
        if missing:
            first = self._start(missing[0])
            with progress.bar(total=self.config.epochs, initial=first, desc=f"run {self.run_id}", unit="epoch",
                              enabled=self.config.progress) as bar:
                if first or not self.config.epochs:
                    self.sweep_epoch(first)
                for epoch in range(first + 1, missing[-1] + 1):
                    start = time.perf_counter()
                    self.train(epoch)
                    self.sweep_epoch(epoch)
                    bar.set_postfix(self._epoch_postfix(), refresh=False)
                    bar.update()
                    progress.line(f"run {self.run_id}: epoch {epoch}/{self.config.epochs} in "
                                  f"{time.perf_counter() - start:.1f} s; {self._epoch_text()}", self.config.progress)
        if not self.failures:
            self._mark_complete()

    def _epoch_postfix(self) -> dict:
        last = self.history[-1]
        return dict(train_loss=f"{last['train_loss']:.4f}", val_loss=f"{last['val_loss']:.4f}")

    def _epoch_text(self) -> str:
        last = self.history[-1]
        return (f"training loss {last['train_loss']:.4f} (epoch mean), validation loss {last['val_loss']:.4f}, "
                f"accuracy {last['val_accuracy']:.4f}")

    def _start(self, first_missing: int) -> int:
        """The epoch to continue from: a restored checkpoint's, or 0 (the initial model, evaluated)."""
        if not self.config.resume:
            self.store.clear_checkpoints()
            return self._from_scratch()
        restored = self.store.restore_checkpoint(self.state, first_missing, self.note)
        if restored is None:
            if self.done:
                self.note(f"run {self.run_id}: no intact checkpoint at or before epoch {first_missing} (the first "
                          f"with missing sweeps); rerunning from the start, skipping the {len(self.done)} sweeps "
                          f"already in {self.path}")
            return self._from_scratch()
        epoch, info = restored
        self.history = info["history"]
        log.info("resumed run %s from the checkpoint of epoch %d", self.run_id, epoch)
        return epoch

    def _from_scratch(self) -> int:
        val_loss, val_accuracy = self.evaluate()
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"the validation loss before training is {val_loss}; check the data and model")
        self.history = [dict(epoch=0, val_loss=val_loss, val_accuracy=val_accuracy)]
        return 0

    def train(self, epoch: int) -> None:
        """Train one epoch, stop if it diverged, record the unthresholded losses, and checkpoint."""
        start = time.perf_counter()
        try:
            loss = self.trainer.train_epoch(self.data.x_train, self.data.y_train, epoch, self.config.progress)
            val_loss, val_accuracy = self.evaluate()
            check_divergence(val_loss, self.history[0]["val_loss"], self.config.divergence_factor)
        except (NonFiniteTraining, TrainingDiverged) as error:
            message = (f"run {self.run_id}: training diverged in epoch {epoch}: {error}; no checkpoint or rows were "
                       f"written for epoch {epoch}. Lower --learning-rate (now {self.config.learning_rate:g}).")
            log.error(message)
            raise TrainingDiverged(message) from None
        self.history.append(dict(epoch=epoch, train_loss=loss, val_loss=val_loss, val_accuracy=val_accuracy,
                                 seconds=time.perf_counter() - start))
        log.info("epoch %d: training loss %.6f, validation loss %.6f, accuracy %.4f", epoch, loss, val_loss,
                 val_accuracy)
        self.store.save_checkpoint(self.state, epoch, dict(history=self.history))

    def _mark_complete(self) -> None:
        scan = self.store.scan()
        expected = {k for e in self._epoch_numbers() for k in self.expected_keys(e)}
        if expected <= scan.done:
            self.store.mark_complete(scan, epochs=self.history)

    def score(self, spec: str, epoch: int) -> tuple[list[np.ndarray], float]:
        """Scores of one measure at this epoch, and the seconds they took.

        In a forgetting run: the specificity to the forget set (:func:`harness.forgetting.specificity`)
        of the scores on its sample and on the rest's, each checked.
        """
        start = time.perf_counter()
        scored = [check_scores(spec, self.params, self.measures[spec].score(self._context(sample, epoch)))
                  for sample in (self.samples if self.config.forget_classes is not None else [self.sample])]
        if len(scored) == 1:
            return scored[0], time.perf_counter() - start
        scores, blind = forgetting.specificity(*scored, self.config.contrast)
        if blind and spec not in self.class_blind:
            self.class_blind.add(spec)
            self.note(f"measure {spec!r} scores the forget set and the rest identically (it reads no data): it is "
                      "ranked by its own scores, most important first (harness/forgetting.py)")
        return check_scores(spec, self.params, scores), time.perf_counter() - start

    def _context(self, sample: tuple, epoch: int) -> MeasureContext:
        return MeasureContext(self.model, self.params, *sample, self.loss, seed=derived_seed(self.config.seed, epoch))

    def sweep_epoch(self, epoch: int) -> None:
        """Score every measure and sweep every condition not yet in the CSV; a failing measure is logged and skipped.

        Nothing happens after an epoch that ``sweep_epochs`` does not sweep.
        """
        if not self.config.sweeps_after(epoch):
            return
        seed = self.config.seed
        replacement = {mode: replacement_values(self.params, mode, derived_seed(seed, epoch, REPLACEMENTS.index(mode)))
                       for mode in self.config.replacements}
        if self.finetuning is not None:
            self.finetuning.start_epoch(epoch, max(parse_recovery(r).options.get("steps", 0) for r in self.recoveries))
        for spec in progress.bar(self.measures, desc=f"sweeps after epoch {epoch}", unit="measure",
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
        variants = [None, *self.config.controls]
        todo = [(c, [(v, m, r) for v in variants for m in replacement for r in self.recoveries
                     if self.key(epoch, control_name(spec, v), c, m, r) not in self.done]) for c in self.grid]
        todo = [(condition, sweeps) for condition, sweeps in todo if sweeps]
        if not todo:
            return
        scores, seconds = self.score(spec, epoch)
        for condition, sweeps in todo:
            items = self.aggregation(condition)(self.params, scores, condition["pooling"])
            rankings = {None: self.thresholder(scores, condition, epoch, items)}
            for variant, mode, recovery in sweeps:
                if variant not in rankings:
                    seed = control_seed(self.config.seed, epoch)
                    rankings[variant] = make_control(variant, rankings[None], items.layers, seed)
                rows = self.sweep_rows(rankings[variant], replacement[mode], recovery)
                bad = [r for r in rows if not math.isfinite(r["val_loss"])]
                if bad:
                    raise ValueError(f"validation loss {bad[0]['val_loss']} at threshold {bad[0]['threshold']} "
                                     f"({condition}, replacement {mode}, recovery {recovery}, control {variant}); "
                                     "the sweep's rows are not written")
                key = dict(self.row_key(epoch), measure=control_name(spec, variant), **condition, replacement=mode,
                           recovery=recovery, measure_seconds=seconds)
                main = [dict(key, **row) for row in rows]
                tables = {"results": main, "per_class": results.per_class_rows(main)} if self.config.per_class \
                    else {"results": main}
                self.rows_written += self.store.append(tables)

    def sweep_rows(self, ranking, values: list[np.ndarray], recovery: str) -> list[dict]:
        """One sweep's rows; a recovery runs as the sweep's hook (threshold by threshold, ``masked``)."""
        parsed = parse_recovery(recovery)
        if parsed.kind == "none":
            hook = None
        elif parsed.kind == "bn":
            hook = self.recalibrations[recovery]
        else:
            hook = self.finetuning.recovery(parsed.options["steps"], self.params, ranking, values, self.config.thresholds)
        method = self.config.sweep_method if hook is None else "masked"
        return sweep(self.params, ranking, values, self.config.thresholds, self.evaluate, method, recovery=hook)

    def thresholder(self, scores: list[np.ndarray], condition: dict, epoch: int, items=None) -> Thresholder:
        """Aggregate and pool the scores (unless ``items`` are given), then rank the items of one condition."""
        if items is None:
            items = self.aggregation(condition)(self.params, scores, condition["pooling"])
        return Thresholder(items, condition["scope"], condition["normalization"], derived_seed(self.config.seed, epoch),
                           self.config.threshold_rule, condition["order"])

    @staticmethod
    def key(epoch: int, spec: str, condition: dict, replacement: str, recovery: str = "none") -> tuple:
        """The sweep key (:func:`harness.results.sweep_key`) of one measure (or control), condition and replacement."""
        return results.sweep_key(dict(epoch=epoch, measure=spec, **condition, replacement=replacement,
                                      recovery=recovery))

    def row_key(self, epoch: int) -> dict:
        """The columns shared by every row of an epoch."""
        c = self.config
        return dict(run_id=self.run_id, task=c.task, model=c.model, seed=c.seed, epoch=epoch)

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
