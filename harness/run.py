"""The experiment: train, and after every epoch score, threshold and evaluate."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import aggregations
from harness import results
from harness.config import RunConfig
from harness.seed import derived_seed, seed_everything
from harness.sweep import Evaluator, replacement_values, sweep
from harness.threshold import Thresholder
from harness.train import Trainer
from measures import MeasureContext, make_measure, prunable_params
from tasks import get_task


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


class Experiment:
    """One run of the grid: a model, its measures, and the CSV it appends to.

    Everything that can be validated is validated before any training: the
    config on construction, then the CSV's schema and the data.

    Args:
        config: The validated parameters.

    Raises:
        ValueError: the CSV has another schema, or already holds this run
            (same parameters) and ``resume`` is off.
        tasks.DatasetUnavailable: the task's data cannot be found.
    """

    def __init__(self, config: RunConfig):
        self.config, self.run_id, self.path = config, config.run_id, Path(config.output)
        self.measures = {spec: make_measure(spec) for spec in config.measures}
        results.check_schema(self.path)
        self._refuse_existing_run()
        self.task = get_task(config.task)
        self.data = self.task.load(config.data_dir)
        seed_everything(config.seed, config.deterministic)
        self.model = self.task.build_model(config.model, self.data.x_train.shape[1:])
        self.loss = self.task.loss()
        self.params = prunable_params(self.model, config.prunable)
        self.sample = draw_sample(self.data.x_train, self.data.y_train, config.importance_samples, config.seed)
        hooks = [m for m in self.measures.values() if m.training_time]
        self.trainer = Trainer(self.model, self.loss, self.task.optimizer_for(config.learning_rate), self.params,
                               hooks, config.batch_size, config.seed)
        self.evaluate = Evaluator(self.model, self.loss, self.data.x_val, self.data.y_val,
                                  classification=self.task.num_classes is not None)

    def _refuse_existing_run(self) -> None:
        if self.config.resume or results.read_header(self.path) is None:
            return
        if (pd.read_csv(self.path, usecols=["run_id"], dtype=str)["run_id"] == self.run_id).any():
            raise ValueError(f"{self.path} already holds rows of run {self.run_id} (the same parameters). "
                             "Use --resume to continue it, or choose another --output or --seed.")

    def metadata(self) -> dict:
        """The run's parameters, data facts, parameter list and package versions."""
        return dict(run_id=self.run_id, config=self.config.result_defining(), output=str(self.path),
                    num_classes=self.task.num_classes, data=self.data.info,
                    importance_samples_drawn=len(self.sample[0]),
                    params=[dict(name=p.name, shape=list(p.shape), role=p.role, kind=p.kind) for p in self.params],
                    versions=results.package_versions(), git_commit=results.git_commit(),
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat())

    def run(self) -> Path:
        """Train for ``config.epochs`` epochs, sweeping after each; return the CSV path."""
        results.write_metadata(results.sidecar(self.path, self.run_id, ".json"), self.metadata())
        for epoch in range(1, self.config.epochs + 1):
            self.trainer.train_epoch(self.data.x_train, self.data.y_train, epoch, self.config.progress)
            self.sweep_epoch(epoch)
        return self.path

    def score(self, spec: str, epoch: int) -> tuple[list[np.ndarray], float]:
        """Scores of one measure at this epoch, and the seconds they took."""
        ctx = MeasureContext(self.model, self.params, *self.sample, self.loss, seed=derived_seed(self.config.seed, epoch))
        start = time.perf_counter()
        scores = self.measures[spec].score(ctx)
        return check_scores(spec, self.params, scores), time.perf_counter() - start

    def sweep_epoch(self, epoch: int) -> None:
        """Score every measure and sweep every condition; append each sweep's rows."""
        seed = self.config.seed
        replacement = {mode: replacement_values(self.params, mode, derived_seed(seed, epoch, i))
                       for i, mode in enumerate(self.config.replacements)}
        grid = list(conditions(self.config))
        for spec in tqdm(self.measures, desc=f"sweeps after epoch {epoch}", disable=not self.config.progress, leave=False):
            scores, seconds = self.score(spec, epoch)
            for condition in grid:
                items = aggregations.get_aggregation(condition["aggregation"])(self.params, scores, condition["pooling"])
                thresholder = Thresholder(items, condition["scope"], condition["normalization"], derived_seed(seed, epoch))
                for mode, values in replacement.items():
                    rows = sweep(self.params, thresholder, values, self.config.thresholds, self.evaluate)
                    key = dict(self.row_key(epoch), measure=spec, **condition, replacement=mode, measure_seconds=seconds)
                    results.append_rows(self.path, [dict(key, **row) for row in rows])

    def row_key(self, epoch: int) -> dict:
        """The columns shared by every row of an epoch."""
        c = self.config
        return dict(run_id=self.run_id, task=c.task, model=c.model, seed=c.seed, epoch=epoch)


def run(config: RunConfig) -> Path:
    """Run the experiment ``config`` describes; return the CSV path."""
    return Experiment(config).run()
