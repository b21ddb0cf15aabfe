"""The experiment's parameters, their validation, and the run id."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomllib

import aggregations
import measures
import tasks
from aggregations import POOLINGS
from harness.sweep import METHODS, REPLACEMENTS
from harness.threshold import NORMALIZATIONS, SCOPES, check_choice
from measures._base import PRUNABLE_CHOICES

DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 21), 10))
NOT_RESULT_DEFINING = ("output", "progress", "resume", "sweep_method")


@dataclass
class RunConfig:
    """Everything that defines an experiment; validated on construction.

    Attributes:
        task: Registered task name.
        model: One of the task's models; None for the task's default.
        measures: Measure specs (``"fisher"``, ``"obd:hessian=exact"``); None for all registered.
        aggregations: Aggregation names; None for all registered.
        poolings: Poolings of item scores (mean, sum, max, min, l2).
        scopes: ``layer`` and/or ``global``.
        normalizations: Per-layer score normalisations for global scope (none, mean, max).
        replacements: ``zero`` and/or ``random``.
        thresholds: Fractions t in [0, 1] of prunable parameters to replace.
        epochs, batch_size, learning_rate: None for the task's defaults.
        seed: Seeds Python, NumPy, Keras, the data order and every measure.
        importance_samples: Training examples N drawn once per run for data-driven measures.
        prunable: ``kernels``, ``kernels+biases`` or ``all``.
        output: Result CSV path.
        data_dir: Folder with a local copy of the task's dataset.
        deterministic: Enable TensorFlow's deterministic ops (slower on GPU).
        progress: Show progress bars.
        resume: Continue the run with the same run id in ``output``.
        sweep_epochs: Epochs after which to sweep: ``"all"``, ``"every:N"``
            (epochs N, 2N, ...) or a list of epochs in ``[1, epochs]``.
        sweep_method: ``auto``, ``masked``, ``shrunk`` or ``batched``
            (:mod:`harness.sweep`); results agree to rtol 1e-5, so it does
            not enter the run id.
        xla: Compile the training step and the evaluation with XLA
            (``jit_compile``); off by default since it is not faster on CPUs.

    Raises:
        ValueError: any value is invalid; the message quotes it and lists the choices.
    """

    task: str = "digits"
    model: str | None = None
    measures: list[str] | None = None
    aggregations: list[str] | None = None
    poolings: list[str] = field(default_factory=lambda: ["mean"])
    scopes: list[str] = field(default_factory=lambda: ["layer"])
    normalizations: list[str] = field(default_factory=lambda: ["none"])
    replacements: list[str] = field(default_factory=lambda: ["zero"])
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    importance_samples: int = 1000
    prunable: str = "kernels"
    output: str = "data/results.csv"
    data_dir: str | None = None
    deterministic: bool = False
    progress: bool = True
    resume: bool = False
    sweep_epochs: str | list[int] = "all"
    sweep_method: str = "auto"
    xla: bool = False

    def __post_init__(self):
        task = tasks.get_task(self.task)
        self.model = self.model or task.default_model
        check_choice(f"model for task {self.task!r}", self.model, sorted(task.models))
        self.measures = list(self.measures) if self.measures is not None else measures.MEASURES.names()
        self.aggregations = list(self.aggregations) if self.aggregations is not None else aggregations.AGGREGATIONS.names()
        self.epochs = task.epochs if self.epochs is None else self.epochs
        self.batch_size = task.batch_size if self.batch_size is None else self.batch_size
        self.learning_rate = task.learning_rate if self.learning_rate is None else self.learning_rate
        self._validate()
        self.thresholds = [float(t) for t in self.thresholds]  # TOML 1 and CLI 1.0 give one run_id
        self.sweep_epochs = self.sweep_epochs if isinstance(self.sweep_epochs, str) else sorted(self.sweep_epochs)
        self.learning_rate = float(self.learning_rate)

    def _validate(self) -> None:
        for spec in _check_list("measures", self.measures):
            measures.make_measure(spec)
        aggregations.AGGREGATIONS.check(_check_list("aggregations", self.aggregations))
        for name, values, choices in [("pooling", self.poolings, POOLINGS), ("scope", self.scopes, SCOPES),
                                      ("normalization", self.normalizations, NORMALIZATIONS),
                                      ("replacement", self.replacements, REPLACEMENTS)]:
            for value in _check_list(name + "s", values):
                check_choice(name, value, choices)
        if "global" not in self.scopes and self.normalizations != ["none"]:
            raise ValueError("normalizations apply to global scope only; add 'global' to scopes or use ['none']. "
                             f"Received: normalizations={self.normalizations}, scopes={self.scopes}")
        check_choice("prunable", self.prunable, PRUNABLE_CHOICES)
        _check_thresholds(self.thresholds)
        for name in ("epochs", "batch_size", "importance_samples"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. Received: learning_rate={self.learning_rate}")
        swept_epochs(self.sweep_epochs, self.epochs)
        check_choice("sweep method", self.sweep_method, METHODS)
        if not isinstance(self.xla, bool):
            raise ValueError(f"xla must be true or false. Received: xla={self.xla!r}")

    def sweeps_after(self, epoch: int) -> bool:
        """Whether the grid is swept after ``epoch`` (see ``sweep_epochs``)."""
        return epoch in swept_epochs(self.sweep_epochs, self.epochs)

    def result_defining(self) -> dict:
        """The parameters that define results (all but output path, progress, resume and sweep method)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_RESULT_DEFINING}

    @property
    def run_id(self) -> str:
        """12 hex digits of the SHA-256 of the result-defining parameters as canonical JSON."""
        text = json.dumps(self.result_defining(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> RunConfig:
        """Read a TOML file whose keys are this class's fields; ``overrides`` win.

        Raises:
            ValueError: a key is not a field; the message lists the valid keys.
        """
        with open(path, "rb") as f:
            values = tomllib.load(f)
        return cls(**{**_known_fields(values, str(path)), **overrides})


def _known_fields(values: dict, source: str) -> dict:
    valid = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown} in {source}; available: {valid}")
    return values


def _check_list(name: str, values) -> list:
    if isinstance(values, str) or not values:
        raise ValueError(f"{name} must be a non-empty list. Received: {name}={values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates. Received: {name}={list(values)}")
    return list(values)


def _check_thresholds(thresholds) -> None:
    values = _check_list("thresholds", thresholds)
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 <= t <= 1.0 for t in values):
        raise ValueError(f"thresholds must lie in [0, 1]. Received: thresholds={values}")


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def swept_epochs(spec, epochs: int) -> set[int]:
    """The epochs ``sweep_epochs`` names: ``"all"``, ``"every:N"`` (N, 2N, ... up to ``epochs``) or a list.

    Raises:
        ValueError: any other value, N not a positive integer, or a listed
            epoch outside ``[1, epochs]`` or repeated.
    """
    valid = "'all', 'every:N' with N a positive integer, or a list of epochs"
    if isinstance(spec, str):
        if spec == "all":
            return set(range(1, epochs + 1))
        name, _, step = spec.partition(":")
        if name != "every" or not step.isdigit() or int(step) == 0:
            raise ValueError(f"sweep_epochs must be {valid}. Received: sweep_epochs={spec!r}")
        return set(range(int(step), epochs + 1, int(step)))
    values = _check_list("sweep_epochs", spec) if isinstance(spec, (list, tuple)) else None
    if values is None or not all(isinstance(e, int) and not isinstance(e, bool) and 1 <= e <= epochs for e in values):
        raise ValueError(f"sweep_epochs must be {valid} in [1, {epochs}]. Received: sweep_epochs={spec!r}")
    return set(values)
