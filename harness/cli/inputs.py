"""Checks of the command line and the TOML file that need no TensorFlow, run before anything heavy is imported.

``python -m harness`` calls :func:`check_args` first: a bad value is refused
in one line, naming the option or file and the value, in well under a second
and before any file, folder or lock is created. What needs the plugins
themselves (a measure's options, combinations of measures and scopes) is
checked from the plugins' declarations (:mod:`harness.cli.plugin_checks`), and
again by :class:`harness.pipeline.config.RunConfig` once they are imported, still
before any data is loaded. Names are read from the plugin files
(:mod:`harness.cli.catalog`) plus any registry already imported (plugins
registered at run time).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from pathlib import Path
from types import SimpleNamespace

from harness.cli import catalog
from harness.cli.options import sweep_epochs_arg
from harness.cli.plugin_checks import check_plugins
from harness.common import constants
from harness.common.paths import check_writable
from harness.common.validation import check_choice, read_toml
from harness.common.validation import check_list as _check_list
from harness.common.validation import check_number as _check_number
from harness.common.validation import check_positive_int as _check_positive_int
from harness.pipeline.config import BOOLEANS, LIMITS, MAX_SEED, RunConfig, _check_thresholds, check_classes, swept_epochs
from harness.study.spec import (
    AXES,
    DEFAULT_STORAGE,
    ENGINE_KEYS,
    STUDY_KEYS,
    Engine,
    check_address,
    check_name,
    parse_seeds,
    read_record,
)
from harness.thresholding.recovery_spec import parse_recovery

FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
NAME_LISTS = ("measures", "aggregations", "poolings", "scopes", "normalizations", "replacements", "orders")
CLASS_LISTS = ("importance_classes", "forget_classes")
TEXTS = ("task", "model", "threshold_rule", "augmentation", "contrast", "prunable", "sweep_method")
CHOICES = {"threshold_rule": ("threshold_rule", constants.THRESHOLD_RULES),
           "sweep_method": ("sweep method", constants.METHODS), "contrast": ("contrast", constants.CONTRASTS)}
REGISTRIES = {"task": ("tasks", "TASKS"), "measure": ("measures", "MEASURES"),
              "aggregation": ("aggregations", "AGGREGATIONS")}


def check_setting(name: str, value) -> None:
    """The type and size of one ``RunConfig`` setting, without its plugins.

    Raises:
        ValueError: names the setting, the value and what is valid (the limit, for sizes).
    """
    if value is None and name in ("model", "measures", "aggregations", "orders", "augmentation", "epochs",
                                  "batch_size", "learning_rate", "importance_classes", "per_class",
                                  "forget_classes", "contrast", "data_dir"):
        return
    if name in NAME_LISTS:
        _check_list(name, value)
    elif name == "recoveries":
        _check_recoveries(value)
    elif name == "controls":
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"controls must be a list of strings (may be empty). Received: controls={value!r}")
        if value:
            _check_list(name, value)
    elif name in CLASS_LISTS:
        _check_list(name, value, int, "class ids")
    elif name == "thresholds":
        _check_thresholds(value)
    elif name == "task" and not isinstance(value, str):
        raise ValueError(f"task must be a task name. Received: task={value!r}; available: {known('task')}")
    elif name in TEXTS:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a name. Received: {name}={value!r}")
    elif name in LIMITS:
        _check_positive_int(name, value, LIMITS[name])
    elif name == "learning_rate":
        _check_number(name, value, "a finite number > 0", lambda x: math.isfinite(x) and x > 0)
    elif name == "divergence_factor":
        _check_number(name, value, "a number > 1 (inf: never stop on this rule)", lambda x: x > 1)
    elif name == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, {MAX_SEED}]. Received: seed={value!r}")
    elif name in BOOLEANS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false. Received: {name}={value!r}")
    elif name in ("output", "data_dir"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a path. Received: {name}={value!r}")
    elif name == "sweep_epochs":
        _check_sweep_epochs(value)


def _check_recoveries(value) -> None:
    """Each recovery spec parses (:func:`~harness.thresholding.recovery_spec.parse_recovery`); no two are the same."""
    _check_list("recoveries", value)
    _check_list("recoveries", [parse_recovery(spec).spec for spec in value])


def _check_sweep_epochs(value) -> None:
    if isinstance(value, str):
        swept_epochs(value, 1)  # 'all' or 'every:N': valid for any number of epochs
        return
    if not isinstance(value, (list, tuple)) or not value or len(value) > LIMITS["epochs"] or not all(
            isinstance(e, int) and not isinstance(e, bool) and 1 <= e <= LIMITS["epochs"] for e in value):
        raise ValueError("sweep_epochs must be 'all', 'every:N' or a list of epochs in "
                         f"[1, {LIMITS['epochs']}]. Received: sweep_epochs={value!r}")


@functools.cache
def _declared(kind: str) -> tuple:
    """The plugins of ``kind`` declared in their files (parsed once per process)."""
    return tuple(catalog.plugins(kind))


def known(kind: str) -> list[str]:
    """Names of ``kind`` declared in the plugin files, plus those of its registry if it is imported already."""
    names = {p.name for p in _declared(kind)}
    module, registry = REGISTRIES[kind]
    if module in sys.modules and hasattr(sys.modules[module], registry):
        names |= set(getattr(sys.modules[module], registry).names())
    return sorted(names)


def task_facts(name) -> dict:
    """A task's ``num_classes`` and ``reads_data_dir``, read from its file (from its registry if imported).

    Raises:
        ValueError: an unknown task; lists the tasks.
    """
    if not isinstance(name, str):
        raise ValueError(f"task must be a task name. Received: task={name!r}; available: {known('task')}")
    check_choice("task", name, known("task"))
    attributes = next((p.attributes for p in _declared("task") if p.name == name), None)
    if "tasks" in sys.modules or attributes is None or not isinstance(attributes.get("num_classes"), int):
        import tasks

        task = tasks.get_task(name)
        return dict(num_classes=task.num_classes, reads_data_dir=task.reads_data_dir)
    return dict(num_classes=attributes["num_classes"], reads_data_dir=attributes["reads_data_dir"])


def check_names(settings: dict) -> None:
    """Plugin and grid names (task, model, measures, aggregations, scopes, ...) against their choices.

    Raises:
        ValueError: ``Unknown <what> 'x'; available: [...]``, or a measure spec without its name.
    """
    task = settings.get("task", RunConfig.task)
    check_choice("task", task, known("task"))
    attributes = next((p.attributes for p in _declared("task") if p.name == task), None)
    if attributes is not None and settings.get("model") is not None:
        models = sorted(attributes.get("models", []))
        if models and "tasks" not in sys.modules:  # models registered at run time join the imported registry
            check_choice(f"model for task {task!r}", settings["model"], models)
    for spec in settings.get("measures") or []:
        name = spec.partition(":")[0].strip()
        if not name:
            raise ValueError(f"A measure spec needs the measure's name before ':' (e.g. fisher:kind=true). "
                             f"Received: measures={settings['measures']!r}")
        check_choice("measure", name, known("measure"))
    for spec in settings.get("aggregations") or []:  # unit:direction=out: the options are checked with the plugin
        check_choice("aggregation", spec.partition(":")[0].strip(), known("aggregation"))
    for option in ("poolings", "scopes", "normalizations", "replacements", "orders", "controls"):
        for value in settings.get(option) or []:
            check_choice(option[:-1], value, catalog.grid_choices(option))
    if "prunable" in settings:
        check_choice("prunable", settings["prunable"], catalog.grid_choices("prunable"))
    if settings.get("recoveries"):  # canonical specs, as the run records them: bn and bn:batches=20 are one
        _check_list("recoveries", [parse_recovery(spec).spec for spec in settings["recoveries"]])
    for name, (what, choices) in CHOICES.items():
        if settings.get(name) is not None:
            check_choice(what, settings[name], choices)
    check_combinations(settings)
    if attributes is not None and settings.get("data_dir") is not None and not attributes["reads_data_dir"]:
        raise ValueError(f"Task {task!r} reads no data folder; remove data_dir. Received: data_dir={settings['data_dir']!r}")
    check_class_lists(settings, task)
    _check_structured_bn(settings.get("structured_bn", "zero"))
    check_plugins(settings, task_facts(task)["num_classes"], task)


def _check_structured_bn(value) -> None:
    """The run's ``structured_bn``, with :func:`aggregations.get_aggregation`'s message."""
    choices = catalog.constant("aggregations/_units.py", "STRUCTURED_BN")
    if value not in choices:
        raise ValueError(f"Unknown structured_bn {value!r}; available: {list(choices)}. Received: structured_bn={value!r}")


def check_combinations(settings: dict) -> None:
    """Settings that exclude each other; the same rules, and messages, as :class:`harness.pipeline.config.RunConfig`."""
    scopes, normalizations = settings.get("scopes", ["layer"]), settings.get("normalizations", ["none"])
    if "global" not in scopes and normalizations != ["none"]:
        raise ValueError("normalizations apply to global scope only; add 'global' to scopes or use ['none']. "
                         f"Received: normalizations={normalizations}, scopes={scopes}")
    rule, orders = settings.get("threshold_rule"), settings.get("orders") or []
    if rule == "legacy_cutoff" and "most" in orders:
        raise ValueError("threshold_rule 'legacy_cutoff' (score < cutoff) removes the least important first only. "
                         f"Received: threshold_rule={rule!r}, orders={orders}")
    forget = settings.get("forget_classes")
    if forget is not None and settings.get("importance_classes") is not None:
        raise ValueError("a forgetting run draws its own samples (forget set and the rest); remove importance_classes. "
                         f"Received: importance_classes={settings['importance_classes']}, forget_classes={sorted(forget)}")
    if forget is not None and settings.get("per_class") is False:
        raise ValueError("a forgetting run records per-class rows; per_class must be true. Received: per_class=False, "
                         f"forget_classes={sorted(forget)}")


def check_class_lists(settings: dict, task: str) -> None:
    """``importance_classes`` and ``forget_classes`` name classes the task has; ``contrast`` needs a forgetting run."""
    facts = task_facts(task)
    holder = SimpleNamespace(name=task, num_classes=facts["num_classes"])
    for name in CLASS_LISTS:
        if settings.get(name) is not None:
            check_classes(name, settings[name], holder)
    forget = settings.get("forget_classes")
    if forget is None and settings.get("contrast") is not None:
        raise ValueError("contrast applies to forgetting runs only; set forget_classes too. "
                         f"Received: contrast={settings['contrast']!r}, forget_classes=None")
    if forget is not None and len(set(forget)) == facts["num_classes"]:
        raise ValueError(f"forget_classes must leave at least one other class of task {task!r}. "
                         f"Received: forget_classes={sorted(forget)}")


def check_output(output: str) -> None:
    """The result CSV: a text CSV of this harness's columns, or a new file in a folder that can be written.

    An existing CSV in a read-only folder passes: its run may be complete (reported, exit 0).
    """
    from harness.pipeline.results import RunStore, results_table

    path = Path(output)
    RunStore(path, "-").check_output()
    if not path.exists():
        check_writable(path.parent, f"beside {output}")
    elif path.is_file():
        results_table(path).read()  # a ragged or damaged CSV is refused, naming the file and line


def check_study(options: dict, source: str) -> None:
    """The ``[study]`` table or study options: name, storage, workers, address, gpus_per_trial, max_retries, dashboard.

    Raises:
        ValueError: names the key and its value.
    """
    unknown = sorted(set(options) - set(STUDY_KEYS))
    if unknown:
        raise ValueError(f"Unknown [study] key(s) {unknown} in {source}; available: {list(STUDY_KEYS)}")
    check_name(options.get("name"))
    storage = options.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage):
        raise ValueError(f"storage must be a folder path. Received: storage={storage!r}")
    address = options.get("address")
    host, _, port = address.removeprefix("ray://").rpartition(":") if isinstance(address, str) else ("", "", "")
    if address not in (None, "auto") and (not host or not port.isdigit()):
        raise ValueError(f"address must be 'auto', host:port or ray://host:port. Received: address={address!r}")
    Engine(**{k: options[k] for k in ENGINE_KEYS if k in options})


def check_study_record(options: dict) -> None:
    """A named study's ``study.json``, if there is one, must be a study record (which study is checked later)."""
    if options.get("name") is None:
        return
    path = Path(options.get("storage", DEFAULT_STORAGE)).resolve() / options["name"] / "study.json"
    if not path.is_file():
        return
    read_record(path)


def check_grid_table(grid, source: str) -> dict:
    """The ``[grid]`` table: axes that are settings, each a non-empty list of values each valid for that setting."""
    if not isinstance(grid, dict):
        raise ValueError(f"grid in {source} must be a table of axes, e.g. [grid] then seed = [0, 1]. "
                         f"Received: grid={grid!r}")
    for axis, values in grid.items():
        if axis not in AXES:
            raise ValueError(f"Unknown grid axis {axis!r} in {source}; available: {AXES}")
        if isinstance(values, (str, dict)) or not isinstance(values, list) or not values:
            raise ValueError(f"grid axis {axis!r} must be a non-empty list of values. Received: {axis}={values!r}")
        for value in values:
            check_setting(axis, value)
    return grid


def check_args(args, study: bool = False) -> None:
    """Every check of the parsed options and their TOML file that needs no TensorFlow.

    Args:
        args: ``python -m harness`` options, parsed.
        study: Always a study (``python -m harness.study``), else one when a study option or table is given.

    Raises:
        ValueError: one line naming the option (or file) and the value.
    """
    source = args.config or "the command line"
    values = read_toml(args.config) if args.config else {}
    grid, table = values.pop("grid", None), values.pop("study", None)
    for content, label in [(grid, "grid"), (table, "study")]:
        if content is not None and not isinstance(content, dict):
            raise ValueError(f"{label} in {source} must be a table ([{label}] and its keys). "
                             f"Received: {label}={content!r}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown} in {source}; available: {FIELDS}")
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "list")}
    options = dict(table or {}) | {k: given.pop(k) for k in list(given) if k in STUDY_KEYS or k == "seeds"}
    settings = values | given
    if "sweep_epochs" in given:
        settings["sweep_epochs"] = sweep_epochs_arg(given["sweep_epochs"])
    for name, value in settings.items():
        if not (name == "epochs" and value == 0 and settings.get("model_file") is not None):  # scoring a file only
            check_setting(name, value)
    check_names(settings)
    if study or grid is not None or table is not None or options:
        _check_study_args(settings, grid or {}, options, source)
    else:
        check_output(settings.get("output", RunConfig.output))


def _check_study_args(settings: dict, grid: dict, options: dict, source: str) -> None:
    """A study's grid, ``[study]`` table and options (seeds, storage, an existing study.json, a reachable address)."""
    seeds = options.pop("seeds", None)
    if seeds is not None and "seed" in settings:
        raise ValueError(f"give --seed or --seeds, not both. Received: seed={settings['seed']}, seeds={seeds!r}")
    check_grid_table(grid, source)
    check_study(options, source)
    if seeds is not None:
        parse_seeds(seeds)
    if "storage" in options:
        check_writable(Path(options["storage"]), f"to storage {options['storage']}")
    check_study_record(options)
    check_address(options.get("address"))  # within 3 s, before TensorFlow (the study checks again before Ray)
