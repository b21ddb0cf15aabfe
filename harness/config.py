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
from harness.sweep import REPLACEMENTS
from harness.threshold import NORMALIZATIONS, SCOPES, THRESHOLD_RULES, check_choice
from measures._base import PRUNABLE_CHOICES

DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 21), 10))
NOT_RESULT_DEFINING = ("output", "progress", "resume")


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
        threshold_rule: ``exact`` (default) or ``legacy_cutoff`` (the original
            study's ``score < cutoff``, for comparison only; see harness/threshold.py).
        augmentation: Random augmentation of training inputs, one of the
            task's (``none``, ...); None for the model's default, else ``none``.
        epochs, batch_size, learning_rate: None for the model's, else the task's defaults.
        seed: Seeds Python, NumPy, Keras, the data order and every measure.
        importance_samples: Training examples N drawn once per run for data-driven measures.
        prunable: ``kernels``, ``kernels+biases`` or ``all``.
        output: Result CSV path.
        data_dir: Folder with a local copy of the task's dataset.
        deterministic: Enable TensorFlow's deterministic ops (slower on GPU).
        progress: Show progress bars.
        resume: Continue the run with the same run id in ``output``.

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
    threshold_rule: str = "exact"
    augmentation: str | None = None
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

    def __post_init__(self):
        task = tasks.get_task(self.task)
        self.model = self.model or task.default_model
        check_choice(f"model for task {self.task!r}", self.model, sorted(task.models))
        self.measures = list(self.measures) if self.measures is not None else measures.MEASURES.names()
        self.aggregations = list(self.aggregations) if self.aggregations is not None else aggregations.AGGREGATIONS.names()
        defaults = task.training_defaults(self.model)
        for name in ("epochs", "batch_size", "learning_rate", "augmentation"):
            setattr(self, name, defaults[name] if getattr(self, name) is None else getattr(self, name))
        check_choice(f"augmentation for task {self.task!r}", self.augmentation, sorted(task.augmentations))
        self._validate()
        self.thresholds = [float(t) for t in self.thresholds]  # TOML 1 and CLI 1.0 give one run_id
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
        check_choice("threshold_rule", self.threshold_rule, THRESHOLD_RULES)
        _check_thresholds(self.thresholds)
        for name in ("epochs", "batch_size", "importance_samples"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. Received: learning_rate={self.learning_rate}")

    def result_defining(self) -> dict:
        """The parameters that define results (all but output path, progress and resume)."""
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
