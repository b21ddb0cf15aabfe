"""The analysis's options and input paths, checked before any data is read and before pandas, SciPy or matplotlib.

Imports nothing beyond the standard library and ``harness.common`` (itself TensorFlow-free), so that
``python analysis.py`` and ``python -m reports.claims`` refuse a bad option in a fraction of a second. The heavy
modules (``reports.analyze``, ``reports.metrics``, ``reports.report``, ...) call these same checks, so a message is
the same from the command line and from a notebook.

Choices: ``FORMATS``, ``INTERVALS``, ``COMPARABLE`` (the columns ``--compare`` may name, built from ``KEYS``,
``SETTINGS`` and ``MORE_SETTINGS``) and ``METRIC_NAMES`` (``--metric``; ``Metric`` is one parsed metric).
"""

from __future__ import annotations

import glob
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.common.columns import PER_CLASS_SUFFIX
from harness.common.paths import check_writable

KEYS = ["task", "model", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "order", "recovery"]
SETTINGS = ["epochs", "batch_size", "learning_rate", "importance_samples", "prunable", "deterministic"]
MORE_SETTINGS = ["threshold_rule", "augmentation", "contrast", "importance_classes", "sweep_epochs", "xla"]
COMPARABLE = ["measure", "model", "task", *(k for k in KEYS if k not in ("measure", "model", "task")), *SETTINGS,
              *MORE_SETTINGS, "forget_classes"]  # fmt: skip
FORMATS, INTERVALS = ("png", "svg", "pdf"), ("bootstrap", "t")


@dataclass(frozen=True)
class Metric:
    """A metric a ranking is about: its name, its score column, its direction, its range and its label."""

    name: str
    column: str
    lower_is_better: bool
    bounds: tuple
    label: str
    at: float | None = None


METRIC_NAMES = ["loss_auc", "accuracy_auc", "accuracy_at:S", "loss_at:S", "tolerated_sparsity"]
_FIXED = {
    "loss_auc": Metric("loss_auc", "auc", True, (0.0, math.inf), "loss AUC"),
    "accuracy_auc": Metric("accuracy_auc", "accuracy_auc", False, (0.0, 1.0), "accuracy AUC"),
    "tolerated_sparsity": Metric("tolerated_sparsity", "tolerated_sparsity", False, (0.0, 1.0), "tolerated sparsity"),
}


def parse_metric(text) -> Metric:
    """The ``Metric`` named by ``text`` (``loss_auc``, ``accuracy_at:0.9``, ...); a ``Metric`` is returned as is.

    Raises:
        ValueError: an unknown name, or S not a number in [0, 1]; names the value and the choices.
    """
    if isinstance(text, Metric):
        return text
    name = str(text).strip()
    if name in _FIXED:
        return _FIXED[name]
    match = re.fullmatch(r"(accuracy|loss)_at:(.*)", name)
    if not match:
        raise ValueError(f"Unknown metric {name!r}; available: {METRIC_NAMES}. Received: metric={name!r}")
    try:
        at = float(match.group(2))
    except ValueError:
        at = float("nan")
    if not 0.0 <= at <= 1.0:
        raise ValueError(f"The sparsity S of {match.group(1)}_at:S must be a number in [0, 1]. Received: metric={name!r}")
    accuracy = match.group(1) == "accuracy"
    return Metric(f"{match.group(1)}_at:{at:g}", f"{match.group(1)}_at:{at:g}", not accuracy,
                  (0.0, 1.0) if accuracy else (0.0, math.inf), f"{match.group(1)} at {at:g}", at)  # fmt: skip


def parse_metrics(names) -> list[Metric]:
    """Distinct metrics, in the order given; a comma-separated string or a list (see ``parse_metric``)."""
    names = [n for n in names.split(",")] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"metric takes one or more of {METRIC_NAMES}. Received: metric=[]")
    return list(dict.fromkeys(parse_metric(n) for n in names))


def check_tolerances(loss_tol: float, acc_tol: float) -> None:
    """Raises ValueError unless both tolerances are >= 0 (NaN is refused)."""
    if not (loss_tol >= 0 and acc_tol >= 0):
        raise ValueError(f"Tolerances must be >= 0. Received: loss_tol={loss_tol}, acc_tol={acc_tol}")


def check_classes(num_classes) -> None:
    """Raises ValueError unless ``num_classes`` is None or an integer >= 2 (the chance line needs two classes)."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"classes must be an integer >= 2 (the chance line). Received: classes={num_classes!r}")


def check_sparsity_range(sparsity_range) -> tuple[float, float] | None:
    """``(low, high)`` as floats with 0 <= low < high <= 1, or None.

    Raises:
        ValueError: not two numbers in that order; names the value received.
    """
    if sparsity_range is None:
        return None
    try:
        low, high = (float(v) for v in sparsity_range)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"sparsity_range takes LO HI with 0 <= LO < HI <= 1. Received: sparsity_range={sparsity_range}")
    return low, high


def check_options(compare, epoch, interval, alpha, metric="loss_auc", where=None, control=None, pairs=None,
                  at=None) -> dict:  # fmt: skip
    """Normalises and checks every option of ``analyze`` before any data is read; raises ValueError naming the choices.

    Returns:
        ``compare`` (list), ``epoch``, ``interval``, ``alpha``, ``metrics`` (``Metric`` list), ``where`` (column ->
        values), ``control``, ``pairs`` (tuple of pairs), ``at`` (sorted sparsities).
    """
    compare = [c.strip() for c in compare.split(",")] if isinstance(compare, str) else list(compare)
    unknown = [c for c in compare if c not in COMPARABLE]
    if not compare or unknown or len(set(compare)) != len(compare):
        raise ValueError(f"compare takes distinct columns among {COMPARABLE}. Received: compare={compare}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}. Received: interval={interval!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1). Received: alpha={alpha}")
    if control is not None and pairs:
        raise ValueError(f"Give control or pairs, not both. Received: control={control!r}, pairs={list(pairs)}")
    return {"compare": compare, "epoch": _parse_epoch(epoch), "interval": interval, "alpha": alpha,
            "metrics": parse_metrics([metric] if isinstance(metric, str) else metric), "where": parse_where(where),
            "control": control, "pairs": parse_pairs(pairs), "at": _parse_at(at)}  # fmt: skip


def check_report_options(fmt, loss_tol, acc_tol, num_classes, sparsity_range, **options) -> tuple[float, float] | None:
    """Every check of ``reports.report.report``'s options, in its order; returns the parsed ``sparsity_range``.

    Args:
        fmt: the figure format, one of ``FORMATS``.
        loss_tol: relative loss increase tolerated, >= 0.
        acc_tol: accuracy drop tolerated, >= 0.
        num_classes: None or an integer >= 2.
        sparsity_range: None or ``(low, high)`` (see ``check_sparsity_range``).
        **options: ``check_options``'s arguments by name.

    Raises:
        ValueError: the first bad option, named with its value and the valid choices.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}. Received: fmt={fmt!r}")
    check_tolerances(loss_tol, acc_tol)
    check_classes(num_classes)
    check_options(**options)
    return check_sparsity_range(sparsity_range)


def _parse_at(at) -> list[float]:
    values = [] if at is None else [at] if isinstance(at, int | float | str) else list(at)
    try:
        parsed = sorted({float(v) for v in values})
    except (TypeError, ValueError):
        parsed = [float("nan")]
    if not all(0.0 <= v <= 1.0 for v in parsed):
        raise ValueError(f"at takes sparsities in [0, 1]. Received: at={values}")
    return parsed


def _parse_epoch(epoch):
    values = [epoch] if isinstance(epoch, str | int) else list(epoch)
    if values == ["last"]:
        return "last"
    try:
        parsed = sorted({int(v) for v in values})
    except (TypeError, ValueError):
        parsed = None
    if not parsed or any(e < 0 for e in parsed) or any(isinstance(v, float) and v != int(v) for v in values):
        raise ValueError(f"epoch must be 'last' or a list of epoch numbers. Received: epoch={epoch!r}")
    return parsed


def parse_where(where) -> dict:
    """``["scope=layer", "measure=obd,magnitude"]`` -> ``{"scope": ["layer"], "measure": ["obd", "magnitude"]}``.

    Raises:
        ValueError: an entry is not ``column=value[,value]``, or a column is named twice.
    """
    parsed = {}
    for text in [where] if isinstance(where, str) else list(where or ()):
        column, sep, values = str(text).partition("=")
        names = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not column.strip() or not names or column.strip() in parsed:
            raise ValueError(f"where takes column=value[,value], each column once. Received: where={list(where)}")
        parsed[column.strip()] = names
    return parsed


def parse_pairs(pairs) -> tuple:
    """``["a:b", "c:d"]`` -> ``(("a", "b"), ("c", "d"))``.

    Raises:
        ValueError: an entry is not two distinct non-empty names joined by ":".
    """
    parsed = []
    for text in pairs or ():
        a, sep, b = str(text).partition(":")
        if not sep or not a.strip() or not b.strip() or a.strip() == b.strip() or ":" in b:
            raise ValueError(f"pairs take 'a:b' with two different treatments. Received: pairs={list(pairs)}")
        parsed.append((a.strip(), b.strip()))
    return tuple(parsed)


def check_out_dir(out_dir) -> Path:
    """Checks that ``out_dir`` is a folder that can be written (or created), writing nothing.

    Raises:
        ValueError: it is a file, or its nearest existing folder cannot be written (``harness.common.paths.check_writable``:
            ``Cannot write output folder <out_dir>: <reason> (<folder>). Choose another path.``).
    """
    check_writable(out_dir, f"output folder {out_dir}")
    return Path(out_dir)


def expand_paths(patterns: list) -> list[str]:
    """Expands folders and globs, in order; every pattern must match; a file met twice is kept once.

    Raises:
        ValueError: no pattern given.
        FileNotFoundError: a pattern matches no result CSV (or only per-class companions); names it.
    """
    if not patterns:
        raise ValueError("No result CSVs given. Received: paths=[]")
    files = {}
    for pattern in map(str, patterns):
        for match in _matches(pattern):
            files.setdefault(os.path.realpath(match), match)
    return list(files.values())


def _matches(pattern: str) -> list[str]:
    """Result CSVs of a folder or glob; per-class companions are read with their result CSV, not on their own."""
    folder = Path(pattern)
    if folder.is_dir():
        inner = folder / "trials" if (folder / "trials").is_dir() else folder
        matches = sorted(str(p) for p in inner.glob("*.csv") if p.is_file() and not p.name.endswith(PER_CLASS_SUFFIX))
        if not matches:
            raise FileNotFoundError(f"No result CSVs in folder {inner}")
        return matches
    found = sorted(glob.glob(pattern))
    matches = [m for m in found if not m.endswith(PER_CLASS_SUFFIX)]
    if found and not matches:
        raise FileNotFoundError(f"{pattern!r} matches only per-class companion CSVs (*{PER_CLASS_SUFFIX}); give "
                                "their result CSVs")
    if not matches:
        raise FileNotFoundError(f"No file matches {pattern!r}")
    return matches
