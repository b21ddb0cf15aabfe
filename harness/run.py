"""The experiment: train, and after every epoch score, threshold and evaluate."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import aggregations
from harness import checkpoint, results
from harness.config import RunConfig
from harness.seed import derived_seed, seed_everything
from harness.sweep import REPLACEMENTS, Evaluator, replacement_values, sweep
from harness.threshold import Thresholder
from harness.train import Trainer
from measures import MeasureContext, make_measure, prunable_params
from tasks import get_task

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
    """Every (aggregation, pooling, scope, normalization) of the grid; pooling is "none" where it has no effect."""
    for name in config.aggregations:
        pools = aggregations.get_aggregation(name).pools
        for pooling in config.poolings if pools else ["none"]:
            for scope in config.scopes:
                for normalization in config.normalizations if scope == "global" else ["none"]:
                    yield dict(aggregation=name, pooling=pooling, scope=scope, normalization=normalization)


def draw_sample(x: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw min(n, len(x)) training examples without replacement, once per run."""
    index = np.sort(np.random.default_rng(derived_seed(seed, 7)).choice(len(x), min(n, len(x)), replace=False))
    return x[index], y[index]


class RunFailed(RuntimeError):
    """One or more measures failed; the other measures' rows were written."""


def differences(old: dict, new: dict) -> dict:
    """``{name: (old, new)}`` for every parameter that differs."""
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


class Experiment:
    """One run of the grid: a model, its measures, and the CSV it appends to.

    Everything that can be validated is validated before any training: the
    config on construction, then the CSV's schema, the run's identity and
    the data. With ``config.resume`` the run continues from its latest
    checkpoint and skips every sweep already complete in the CSV.

    Args:
        config: The validated parameters.

    Raises:
        ValueError: the CSV has another schema; or it already holds this run
            and ``resume`` is off; or ``resume`` is on and the CSV holds
            only runs with other parameters (the message names the differences).
        tasks.DatasetUnavailable: the task's data cannot be found.
    """

    def __init__(self, config: RunConfig):
        self.config, self.run_id, self.path = config, config.run_id, Path(config.output)
        self.measures = {spec: make_measure(spec) for spec in config.measures}
        results.check_schema(self.path)
        self.done: set[tuple] = self._resume_keys() if config.resume else self._refuse_existing_run()
        self.failures: list[str] = []
        self.task = get_task(config.task)
        self.data = self.task.load(config.data_dir)
        seed_everything(config.seed, config.deterministic)
        self.model = self.task.build_model(config.model, self.data.x_train.shape[1:])
        self.loss = self.task.loss()
        self.params = prunable_params(self.model, config.prunable)
        self.sample = draw_sample(self.data.x_train, self.data.y_train, config.importance_samples, config.seed)
        hooks = [m for m in self.measures.values() if m.training_time]
        optimizer = self.task.optimizer_for(config.learning_rate)
        self.trainer = Trainer(self.model, self.loss, optimizer, self.params, hooks, config.batch_size, config.seed,
                               jit_compile=config.xla)
        self.evaluate = Evaluator(self.model, self.loss, self.data.x_val, self.data.y_val,
                                  classification=self.task.num_classes is not None, jit_compile=config.xla)
        self.state = checkpoint.tracked_state(self.model, optimizer, self.measures)

    def sidecar(self, suffix: str) -> Path:
        """A file beside the CSV named after this run (``.json``, ``.log``, ``.ckpt``)."""
        return results.sidecar(self.path, self.run_id, suffix)

    def _refuse_existing_run(self) -> set:
        if results.read_header(self.path) is not None and (results.read_keys(self.path)["run_id"] == self.run_id).any():
            raise ValueError(f"{self.path} already holds rows of run {self.run_id} (the same parameters). "
                             "Use --resume to continue it, or choose another --output or --seed.")
        return set()

    def _resume_keys(self) -> set[tuple]:
        if not self.sidecar(".json").exists():
            self._refuse_other_runs()
        if results.drop_truncated_line(self.path):
            warnings.warn(f"{self.path}: dropped a truncated last line left by an interrupted write.", stacklevel=2)
        return results.completed_sweeps(self.path, self.run_id, len(self.config.thresholds))

    def _refuse_other_runs(self) -> None:
        others = sorted(self.path.parent.glob(f"{self.path.stem}.*.json"), key=lambda p: p.stat().st_mtime)
        if others:
            old = json.loads(others[-1].read_text())
            diff = differences(old.get("config", {}), self.config.result_defining())
            raise ValueError(f"Cannot resume: {self.path} holds no run with these parameters (run {self.run_id}). "
                             f"Its latest run {old.get('run_id')} differs in (theirs, yours): {diff}")

    def metadata(self) -> dict:
        """The run's parameters, data facts, parameter list, package versions and git commit."""
        return dict(run_id=self.run_id, config=self.config.result_defining(), output=str(self.path),
                    num_classes=self.task.num_classes, data=self.data.info,
                    importance_samples_drawn=len(self.sample[0]),
                    params=[dict(name=p.name, shape=list(p.shape), role=p.role, kind=p.kind) for p in self.params],
                    versions=results.package_versions(), git_commit=results.git_commit(),
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat())

    def run(self) -> Path:
        """Train for ``config.epochs`` epochs, checkpointing and sweeping after each; return the CSV path.

        Raises:
            RunFailed: some measures failed (logged with tracebacks to the run's
                ``.log`` file); every other sweep was written.
        """
        if not (self.config.resume and self.sidecar(".json").exists()):
            results.write_metadata(self.sidecar(".json"), self.metadata())
        with _log_to(self.sidecar(".log")):
            self._epochs()
        if self.failures:
            raise RunFailed(f"{len(self.failures)} measure evaluation(s) failed; tracebacks in "
                            f"{self.sidecar('.log')}: " + "; ".join(self.failures))
        return self.path

    def _epochs(self) -> None:
        for note in self.evaluate.structure.notes:
            log.info("structured removal keeps the units of %s masked", note)
        first = checkpoint.restore(self.sidecar(".ckpt"), self.state) if self.config.resume else 0
        if first:
            log.info("resumed run %s from the checkpoint of epoch %d", self.run_id, first)
            self._report_lost_sweeps(first)
            if self.config.sweeps_after(first):
                self.sweep_epoch(first)
        for epoch in range(first + 1, self.config.epochs + 1):
            loss = self.trainer.train_epoch(self.data.x_train, self.data.y_train, epoch, self.config.progress)
            log.info("epoch %d: training loss %.6f", epoch, loss)
            checkpoint.save(self.sidecar(".ckpt"), self.state, epoch)
            if self.config.sweeps_after(epoch):
                self.sweep_epoch(epoch)

    def expected_keys(self, epoch: int) -> set[tuple]:
        """Every sweep key of one epoch: (epoch, measure, aggregation, pooling, scope, normalization, replacement)."""
        return {(epoch, spec, *c.values(), mode) for spec in self.measures
                for c in conditions(self.config) for mode in self.config.replacements}

    def _report_lost_sweeps(self, first: int) -> None:
        """Sweeps of epochs before the checkpoint that the CSV lacks (a measure failed then) cannot be redone."""
        lost = sorted(k for epoch in range(1, first) if self.config.sweeps_after(epoch)
                      for k in self.expected_keys(epoch) - self.done)
        for key in lost:
            self.failures.append(f"sweep {key} is missing and cannot be redone: only epoch {first}'s checkpoint is kept")
        if lost:
            log.warning("%d sweeps of epochs before %d are missing: %s", len(lost), first, lost)

    def score(self, spec: str, epoch: int) -> tuple[list[np.ndarray], float]:
        """Scores of one measure at this epoch, and the seconds they took."""
        ctx = MeasureContext(self.model, self.params, *self.sample, self.loss, seed=derived_seed(self.config.seed, epoch))
        start = time.perf_counter()
        scores = self.measures[spec].score(ctx)
        return check_scores(spec, self.params, scores), time.perf_counter() - start

    def sweep_epoch(self, epoch: int) -> None:
        """Score every measure and sweep every condition not yet in the CSV; a failing measure is logged and skipped."""
        seed = self.config.seed
        replacement = {mode: replacement_values(self.params, mode, derived_seed(seed, epoch, REPLACEMENTS.index(mode)))
                       for mode in self.config.replacements}
        for spec in tqdm(self.measures, desc=f"sweeps after epoch {epoch}", disable=not self.config.progress, leave=False):
            try:
                self.sweep_measure(spec, epoch, replacement)
            except Exception as error:  # noqa: BLE001 - one measure's failure must not stop the others
                log.exception("epoch %d, measure %r failed", epoch, spec)
                self.failures.append(f"epoch {epoch} measure {spec!r}: {error!r}")

    def sweep_measure(self, spec: str, epoch: int, replacement: dict) -> None:
        """Score one measure and append the rows of each of its sweeps still missing from the CSV."""
        todo = [(c, [m for m in replacement if (epoch, spec, *c.values(), m) not in self.done])
                for c in conditions(self.config)]
        todo = [(condition, modes) for condition, modes in todo if modes]
        if not todo:
            return
        scores, seconds = self.score(spec, epoch)
        for condition, modes in todo:
            thresholder = self.thresholder(scores, condition, epoch)
            for mode in modes:
                rows = sweep(self.params, thresholder, replacement[mode], self.config.thresholds, self.evaluate,
                             self.config.sweep_method)
                key = dict(self.row_key(epoch), measure=spec, **condition, replacement=mode, measure_seconds=seconds)
                results.append_rows(self.path, [dict(key, **row) for row in rows])

    def thresholder(self, scores: list[np.ndarray], condition: dict, epoch: int) -> Thresholder:
        """Aggregate and pool the scores, then rank the items of one condition."""
        items = aggregations.get_aggregation(condition["aggregation"])(self.params, scores, condition["pooling"])
        return Thresholder(items, condition["scope"], condition["normalization"], derived_seed(self.config.seed, epoch))

    def row_key(self, epoch: int) -> dict:
        """The columns shared by every row of an epoch."""
        c = self.config
        return dict(run_id=self.run_id, task=c.task, model=c.model, seed=c.seed, epoch=epoch)


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
    """Run the experiment ``config`` describes; return the CSV path."""
    return Experiment(config).run()
