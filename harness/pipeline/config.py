"""The experiment's parameters, their validation, and the run id."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.constants import (
    CONTRASTS,
    CONTROLS,
    METHODS,
    NORMALIZATIONS,
    ORDERS,
    POOLINGS,
    PRUNABLE_CHOICES,
    REPLACEMENTS,
    SCOPES,
    THRESHOLD_RULES,
)
from harness.common.run_id import digest, result_defining
from harness.common.validation import check_choice, known_settings, read_toml, unknown_classes
from harness.common.validation import check_list as _check_list
from harness.common.validation import check_number as _check_number
from harness.common.validation import check_positive_int as _check_positive_int

# The plugin registries (and TensorFlow behind them) are imported on validation only, so that
# ``python -m harness --help`` and reading the defaults stay fast.
DEFAULT_THRESHOLDS = tuple(round(i / 20, 10) for i in range(21))
NOT_RESULT_DEFINING = ("output", "data_dir", "progress", "resume", "keep_checkpoints", "divergence_factor",
                       "sweep_method", "model_file")
BOOLEANS = ("deterministic", "progress", "resume", "xla", "per_class")
MAX_SEED = 2**32 - 1  # NumPy's global seed range
LIMITS = {"epochs": 100_000, "batch_size": 2**31 - 1, "importance_samples": 2**31 - 1, "keep_checkpoints": 100_000}
MAX_THRESHOLDS = 10_001  # a step of 1e-4 in [0, 1]


@dataclass
class RunConfig:
    """Everything that defines an experiment; validated on construction.

    Attributes:
        task: Registered task name.
        model: One of the task's models; None for the task's default.
        measures: Measure specs (``"fisher"``, ``"obd:hessian=exact"``); None for all registered (with
            ``epochs`` 0, all but the training-time measures).
        aggregations: Aggregation specs (``"unit"``, ``"unit:direction=out"``); None for all
            registered but ``head`` (swept when named). Written in canonical form
            (``unit:direction=in`` is ``unit``).
        poolings: Poolings of item scores (mean, sum, max, min, l2).
        scopes: ``layer``, ``global`` and/or ``output`` (per output unit; used by
            per-weight aggregations only, see ``harness.thresholding.threshold.segment_ids``).
        normalizations: Per-layer score normalisations for global scope (none, mean, max, lamp).
        replacements: ``zero`` and/or ``random``.
        orders: Removal order: ``least`` (least important first, LeRF) and/or
            ``most`` (most important first, MoRF; the CSV's ``order`` column).
            None: ``["least"]``, or ``["most"]`` in a forgetting run (most forget-specific first).
        controls: Matched controls swept beside every measure (``random_matched``,
            ``shuffled``; :mod:`harness.thresholding.controls`); their rows carry the measure
            ``<spec>~<control>``. Empty by default.
        recoveries: What runs between masking and evaluation (:mod:`harness.thresholding.recovery`):
            ``none``, ``bn`` (``bn:batches=B``) and/or ``finetune:steps=k``; the CSV's
            ``recovery`` column. Written in canonical form (``finetune:steps=50``).
            ``bn`` is skipped, with a note, on a model without BatchNormalization.
        thresholds: Fractions t in [0, 1] of prunable parameters to replace.
        threshold_rule: ``exact`` (default) or ``legacy_cutoff`` (the original
            study's ``score < cutoff``, for comparison only; see harness/thresholding/threshold.py).
        augmentation: Random augmentation of training inputs, one of the
            task's (``none``, ...); None for the model's default, else ``none``.
        epochs, batch_size, learning_rate: None for the model's, else the task's defaults.
        seed: Seeds Python, NumPy, Keras, the data order and every measure.
        importance_samples: Training examples N drawn once per run for data-driven measures
            (of ``importance_classes`` when given; N of the forget set and N of the other classes
            in a forgetting run). Fewer examples of those classes than N are refused before training.
        importance_classes: Class ids whose training examples alone feed the data-driven measures
            (those reading ``ctx.x``/``ctx.y``); None: every class. Measures that read no data
            (magnitude, random, synflow, the training-time measures) are unaffected.
        per_class: Also write the validation loss and accuracy of every class per threshold to
            ``<csv stem>.per_class.csv`` (:func:`harness.pipeline.results.per_class_table`), from the same
            evaluation pass. None: off, on in a forgetting run (which needs it).
        forget_classes: The forget set A of a selective forgetting run (seed 001): every
            measure scores each item's specificity to A against the other classes
            (:mod:`harness.experiments.forgetting`), and the sweep replaces the most A-specific first. None: no forgetting.
        contrast: How a forgetting run compares importance on A with importance on the
            other classes: ``ratio`` or ``difference`` (:func:`harness.experiments.forgetting.contrast`);
            None: ``ratio`` in a forgetting run; refused without ``forget_classes``.
        prunable: ``kernels``, ``kernels+biases``, ``all`` or ``hidden-kernels`` (all kernels but the output layer's).
        structured_bn: ``zero`` (default): a removed unit or filter also masks the prunable scale and
            shift of the BatchNormalization after it, so its output after BatchNorm is 0;
            ``keep``: they stay single weights (the behaviour before; ``aggregations/unit.py``).
            It changes results only with ``prunable = "all"``, so it enters the run id only
            there, and only as ``zero``: a ``keep`` run keeps the run id it had before.
        output: Result CSV path.
        data_dir: Folder with a local copy of the task's dataset; refused for tasks that read none.
            Not part of the run id: the same data at another path is the same run.
        deterministic: Enable TensorFlow's deterministic ops (slower on GPU).
        progress: Show progress bars.
        resume: Continue the partly written run with the same run id in ``output``.
        keep_checkpoints: Checkpoints kept, the newest epochs (``--resume`` falls back to an older one
            when the newest is damaged).
        divergence_factor: Training stops when the unthresholded validation loss after an epoch
            exceeds this factor times the loss before training (``inf``: never on this rule); a
            non-finite training or validation loss always stops it.
        sweep_epochs: Epochs after which to sweep: ``"all"``, ``"every:N"``
            (epochs N, 2N, ...) or a list of epochs in ``[1, epochs]``.
        sweep_method: ``auto``, ``masked``, ``shrunk`` or ``batched``
            (:mod:`harness.thresholding.sweep`); results agree to rtol 1e-5, so it does
            not enter the run id.
        xla: Compile the training step and the evaluation with XLA
            (``jit_compile``); off by default since it is not faster on CPUs.
        model_file: A trained model saved by Keras 3 (``.keras``), used instead of
            the task's models, on the task's data (:mod:`tasks._model_file`): its
            input and output shapes are checked against the task, and the
            model is named ``file:<file name>``. The file's SHA-256, not its path,
            enters the run id. ``epochs`` 0 scores and sweeps its weights as
            they are (training-time measures are refused); ``epochs`` N
            fine-tunes it first.

    Parsed on validation (not fields, so not in the run id):
        parsed_recoveries: ``recoveries`` as :class:`harness.thresholding.recovery_spec.Recovery` objects, in order.
        epochs_swept: The epochs ``sweep_epochs`` names (:func:`swept_epochs`).

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
    orders: list[str] | None = None
    controls: list[str] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=lambda: ["none"])
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    threshold_rule: str = "exact"
    augmentation: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    importance_samples: int = 1000
    importance_classes: list[int] | None = None
    per_class: bool | None = None
    forget_classes: list[int] | None = None
    contrast: str | None = None
    prunable: str = "kernels"
    structured_bn: str = "zero"
    output: str = "data/results.csv"
    data_dir: str | None = None
    deterministic: bool = False
    progress: bool = True
    resume: bool = False
    keep_checkpoints: int = 1
    divergence_factor: float = 10.0
    sweep_epochs: str | list[int] = "all"
    sweep_method: str = "auto"
    xla: bool = False
    model_file: str | None = None

    def __post_init__(self):
        import aggregations
        import tasks

        if not isinstance(self.task, str):
            raise ValueError(f"task must be a task name. Received: task={self.task!r}; available: {tasks.TASKS.names()}")
        task = tasks.get_task(self.task)
        if self.model_file is None:
            if self.model is not None and not isinstance(self.model, str):
                raise ValueError(f"model must be a model name. Received: model={self.model!r}; "
                                 f"available: {sorted(task.models)}")
            self.model = task.default_model if self.model is None else self.model
            check_choice(f"model for task {self.task!r}", self.model, sorted(task.models))
        else:
            self.model = _model_file_name(self.model, self.model_file)
        self.measures = self.measures if self.measures is not None else _default_measures(self.epochs)
        self.aggregations = self.aggregations if self.aggregations is not None else \
            [name for name in aggregations.AGGREGATIONS.names() if aggregations.AGGREGATIONS.get(name).by_default]
        defaults = task.training_defaults(self.model)
        for name in ("epochs", "batch_size", "learning_rate", "augmentation"):
            setattr(self, name, defaults[name] if getattr(self, name) is None else getattr(self, name))
        check_choice(f"augmentation for task {self.task!r}", self.augmentation, sorted(task.augmentations))
        _validate(self, task)
        self.thresholds = [float(t) for t in self.thresholds]  # TOML 1 and CLI 1.0 give one run_id
        self.learning_rate, self.divergence_factor = float(self.learning_rate), float(self.divergence_factor)
        self.output = os.fspath(self.output)
        self.sweep_epochs = self.sweep_epochs if isinstance(self.sweep_epochs, str) else sorted(self.sweep_epochs)

    def sweeps_after(self, epoch: int) -> bool:
        """Whether the grid is swept after ``epoch`` (see ``sweep_epochs``)."""
        return epoch in self.epochs_swept

    def result_defining(self) -> dict:
        """The parameters that define results (all but output path, progress, resume and sweep method)."""
        defining = result_defining(self, NOT_RESULT_DEFINING)
        return defining if self.model_file is None else {**defining, "model_file_sha256": self._model_sha256}

    @property
    def run_id(self) -> str:
        """12 hex digits of the SHA-256 of the result-defining parameters as canonical JSON.

        ``structured_bn`` is left out where it gives the results of before (``keep``, or ``prunable``
        other than ``all``), so those runs keep the run id they had.
        """
        defining = self.result_defining()
        if self.structured_bn == "keep" or self.prunable != "all":
            defining.pop("structured_bn")
        return digest(defining)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> RunConfig:
        """Read a TOML file whose keys are this class's fields; ``overrides`` win.

        Raises:
            ValueError: the file cannot be read, is not valid TOML (the message names the file
                and the place), or a key is not a field (the message lists the valid keys).
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        return cls(**{**known_settings(read_toml(path), valid, str(path)), **overrides})



def _validate(config: RunConfig, task) -> None:
    """Check every setting against its choices and limits, writing lists in canonical form."""
    import aggregations
    import measures

    config.measures = _check_list("measures", config.measures)
    for spec in config.measures:
        measures.make_measure(spec)  # the measure's own checks (options, class groups) as it is built
    _check_class_options(config, task)
    config.aggregations = _check_list("aggregations", config.aggregations)
    config.aggregations = _check_list("aggregations", [aggregations.get_aggregation(a, config.structured_bn).spec
                                                     for a in config.aggregations])
    for name, choices in [("pooling", POOLINGS), ("scope", SCOPES), ("normalization", NORMALIZATIONS),
                          ("replacement", REPLACEMENTS), ("order", ORDERS)]:
        setattr(config, name + "s", _check_list(name + "s", getattr(config, name + "s")))
        for value in getattr(config, name + "s"):
            check_choice(name, value, choices)
    _validate_protocol(config)
    if "global" not in config.scopes and config.normalizations != ["none"]:
        raise ValueError("normalizations apply to global scope only; add 'global' to scopes or use ['none']. "
                         f"Received: normalizations={config.normalizations}, scopes={config.scopes}")
    check_choice("prunable", config.prunable, PRUNABLE_CHOICES)
    check_choice("threshold_rule", config.threshold_rule, THRESHOLD_RULES)
    if config.threshold_rule == "legacy_cutoff" and "most" in config.orders:
        raise ValueError("threshold_rule 'legacy_cutoff' (score < cutoff) removes the least important first only. "
                         f"Received: threshold_rule={config.threshold_rule!r}, orders={config.orders}")
    config.thresholds = _check_thresholds(config.thresholds)
    for name, limit in LIMITS.items():
        if not (name == "epochs" and config.model_file is not None and _is_zero(config.epochs)):
            _check_positive_int(name, getattr(config, name), limit)
    _check_plugin_rules(config, task)
    _check_number("learning_rate", config.learning_rate, "a finite number > 0", lambda x: math.isfinite(x) and x > 0)
    _check_number("divergence_factor", config.divergence_factor, "a number > 1 (inf: never stop on this rule)",
                  lambda x: x > 1)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}]. Received: seed={config.seed!r}")
    for name in BOOLEANS:
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false. Received: {name}={getattr(config, name)!r}")
    config.epochs_swept = frozenset(swept_epochs(config.sweep_epochs, config.epochs))
    check_choice("sweep method", config.sweep_method, METHODS)
    _validate_paths(config, task)
    config._model_sha256 = _check_model_file(config.model_file, task)

def _validate_protocol(config: RunConfig) -> None:
    """Controls (a possibly empty list of choices) and recoveries (specs, made canonical)."""
    from harness.thresholding.recovery_spec import parse_recovery

    if not isinstance(config.controls, (list, tuple)):
        raise ValueError(f"controls must be a list of strings (may be empty). Received: controls={config.controls!r}")
    config.controls = _check_list("controls", config.controls) if config.controls else []
    for value in config.controls:
        check_choice("control", value, CONTROLS)
    config.parsed_recoveries = [parse_recovery(spec) for spec in _check_list("recoveries", config.recoveries)]
    config.recoveries = _check_list("recoveries", [recovery.spec for recovery in config.parsed_recoveries])

def _validate_paths(config: RunConfig, task) -> None:
    """The output path and the data folder: types, and a data folder only for tasks that read one."""
    if not isinstance(config.output, (str, os.PathLike)) or not os.fspath(config.output):
        raise ValueError(f"output must be a CSV file path. Received: output={config.output!r}")
    if config.data_dir is not None and not isinstance(config.data_dir, str):
        raise ValueError(f"data_dir must be a folder path. Received: data_dir={config.data_dir!r}")
    if config.data_dir is not None and not task.reads_data_dir:
        raise ValueError(f"Task {config.task!r} reads no data folder; remove data_dir. "
                         f"Received: data_dir={config.data_dir!r}")


def check_classes(name: str, values, task) -> list[int]:
    """A non-empty list of distinct class ids of ``task``, sorted.

    Raises:
        ValueError: not such a list, a task without classes, or an id outside ``[0, num_classes)``;
            names the value and the valid classes.
    """
    if task.num_classes is None:
        raise ValueError(f"{name} needs a classification task; task {task.name!r} has no classes. "
                         f"Received: {name}={values!r}")
    values = _check_list(name, values, int, "class ids")
    unknown = unknown_classes(values, task.num_classes)
    if unknown:
        raise ValueError(f"{name} names classes {unknown} that task {task.name!r} does not have; valid classes: "
                         f"0..{task.num_classes - 1}. Received: {name}={values}")
    return sorted(values)


def _check_class_options(config: RunConfig, task) -> None:
    """Validate and resolve ``importance_classes``, ``per_class``, ``forget_classes``, ``contrast`` and ``orders``."""
    if config.importance_classes is not None:
        config.importance_classes = check_classes("importance_classes", config.importance_classes, task)
    if config.forget_classes is None:
        if config.contrast is not None:
            raise ValueError("contrast applies to forgetting runs only; set forget_classes too. "
                             f"Received: contrast={config.contrast!r}, forget_classes=None")
        config.orders = ["least"] if config.orders is None else config.orders
        config.per_class = False if config.per_class is None else config.per_class
    else:
        _check_forgetting(config, task)
    if config.per_class is True and task.num_classes is None:
        raise ValueError(f"per_class needs a classification task; task {task.name!r} has no classes. "
                         "Received: per_class=True")


def _check_forgetting(config: RunConfig, task) -> None:
    """A forgetting run: a forget set that leaves other classes, per-class rows, a contrast.

    Whether the contrast suits the measures is checked by :func:`_check_plugin_rules`.
    """
    forget = config.forget_classes = check_classes("forget_classes", config.forget_classes, task)
    if len(forget) == task.num_classes:
        raise ValueError(f"forget_classes must leave at least one other class of task {task.name!r}. "
                         f"Received: forget_classes={forget}")
    if config.importance_classes is not None:
        raise ValueError("a forgetting run draws its own samples (forget set and the rest); remove importance_classes. "
                         f"Received: importance_classes={config.importance_classes}, forget_classes={forget}")
    if config.per_class is False:
        raise ValueError(f"a forgetting run records per-class rows; per_class must be true. Received: per_class=False, "
                         f"forget_classes={forget}")
    config.per_class, config.contrast = True, config.contrast or "ratio"
    config.orders = ["most"] if config.orders is None else config.orders
    check_choice("contrast", config.contrast, CONTRASTS)


def _check_plugin_rules(config: RunConfig, task) -> None:
    """The rules that combine what the measures and aggregations declare with the other settings.

    One set of rules and messages, :func:`harness.cli.plugin_checks.check_plugins`, serves this check and the one
    made before TensorFlow is imported: signed scores with ``lamp`` or the ``ratio`` contrast, a grouped measure's
    classes and forgetting target, scope ``output`` with pooling aggregations, training-time measures with
    ``epochs`` 0.
    """
    from harness.cli.plugin_checks import check_plugins

    settings = {name: getattr(config, name) for name in ("measures", "aggregations", "forget_classes", "contrast",
                                                         "normalizations", "scopes")}
    check_plugins({**settings, "epochs": 0 if _is_zero(config.epochs) else config.epochs}, task.num_classes, task.name)


def _model_file_name(model, model_file) -> str:
    """The model's name in rows, ``file:<file name>``; a task model named beside a file is refused."""
    from tasks._model_file import check_model_path

    if model is not None and not (isinstance(model, str) and model.startswith("file:")):
        raise ValueError(f"model and model_file are exclusive: the file is the model. Received: model={model!r}, "
                         f"model_file={model_file!r}")
    return f"file:{check_model_path(model_file).name}"


def _default_measures(epochs) -> list[str]:
    """Every registered measure; with ``epochs`` 0 (nothing trains), every one but the training-time measures."""
    import measures

    names = measures.MEASURES.names()
    return [n for n in names if not measures.MEASURES.get(n).training_time] if _is_zero(epochs) else names


def _is_zero(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _check_model_file(model_file, task) -> str | None:
    """Load the model file and check its shapes against the task; return its SHA-256 (None without a file)."""
    if model_file is None:
        return None
    from tasks._model_file import check_model_shapes, file_sha256, load_model_file

    model = load_model_file(model_file)
    check_model_shapes(model, task.input_shape, task.num_classes, task.name, model_file)
    del model
    return file_sha256(os.path.expanduser(model_file))


def _check_thresholds(thresholds) -> list:
    values = _check_list("thresholds", thresholds, (int, float), "numbers")
    if len(values) > MAX_THRESHOLDS:
        raise ValueError(f"thresholds may hold at most {MAX_THRESHOLDS} values. Received: {len(values)} thresholds")
    if not all(0.0 <= t <= 1.0 for t in values):
        raise ValueError(f"thresholds must lie in [0, 1]. Received: thresholds={values}")
    return values


def swept_epochs(spec, epochs: int) -> set[int]:
    """The epochs ``sweep_epochs`` names: ``"all"``, ``"every:N"`` (N, 2N, ... up to ``epochs``) or a list.

    With ``epochs`` 0 (a model file scored without training) the one sweep is after "epoch 0": ``{0}``.

    Raises:
        ValueError: any other value, N not a positive integer, or a listed
            epoch outside ``[1, epochs]`` or repeated; with ``epochs`` 0, anything but ``"all"``.
    """
    valid = "'all', 'every:N' with N a positive integer, or a list of epochs"
    if epochs == 0:  # a model file scored as it is: one sweep, "after epoch 0"
        if spec != "all":
            raise ValueError(f"with epochs 0 the only sweep is of the given weights; sweep_epochs must be 'all'. "
                             f"Received: sweep_epochs={spec!r}")
        return {0}
    if isinstance(spec, str):
        if spec == "all":
            return set(range(1, epochs + 1))
        name, _, step = spec.partition(":")
        if name != "every" or not step.isdigit() or int(step) == 0:
            raise ValueError(f"sweep_epochs must be {valid}. Received: sweep_epochs={spec!r}")
        return set(range(int(step), epochs + 1, int(step)))
    values = _check_list("sweep_epochs", spec, int, "epochs") if isinstance(spec, (list, tuple)) else None
    if values is None or not all(isinstance(e, int) and not isinstance(e, bool) and 1 <= e <= epochs for e in values):
        raise ValueError(f"sweep_epochs must be {valid} in [1, {epochs}]. Received: sweep_epochs={spec!r}")
    return set(values)
