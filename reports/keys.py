"""Column roles of a result table: key columns, conditions, figure panels, and the constants behind them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.common.columns import CONTROL_SEPARATOR, PER_CLASS_SUFFIX  # noqa: F401  (re-exported)
from harness.common.columns import REQUIRED_COLUMNS as COLUMNS  # noqa: F401  (re-exported)
from reports.options import COMPARABLE, FORMATS, INTERVALS, KEYS, MORE_SETTINGS, SETTINGS  # noqa: F401  (re-exported)

PANEL = ["task", "model", "pooling", "scope", "normalization", "replacement"]
CONDITION = ["task", "model", "epoch", "aggregation", "pooling", "scope", "normalization", "replacement"]
RUN = ["run_id", "seed"]
VALUES = [
    "run_id", "seed", "epoch", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds",
    "sweep_seconds", "params_remaining", "flops", "num_classes",
]  # fmt: skip
FORGETTING = ["forget_accuracy", "forget_loss", "retain_accuracy", "retain_loss"]
NOT_KEYS = {*VALUES, *FORGETTING, "treatment", "reason", "metric"}
NUMERIC = ["seed", "epoch", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds"]
NOT_SETTINGS = {"seed", "output", "data_dir", "progress", "resume"}
N_RESAMPLES = 9999
BOUNDS = {"auc": (0.0, np.inf), "val_loss": (0.0, np.inf), "val_accuracy": (0.0, 1.0), "tolerated_sparsity": (0.0, 1.0)}
SPARSITY_LABEL = "sparsity (fraction of prunable weights replaced)"
METRIC_LABELS = {"val_loss": "validation loss", "val_accuracy": "validation accuracy (fraction correct)"}
CONTROL_STYLES = {"": "-", "random_matched": "--", "shuffled": ":"}
CONTROL_MARKERS = {"": "o", "random_matched": "s", "shuffled": "D"}
PROTOCOL_TABLES = {
    "order": "Removal order: mean AUC least (LeRF, lower is better) and most important first (MoRF, higher is better), "
             "gap = most - least (higher is better), ranks within each condition",
    "controls": "Measures and their matched controls: mean AUC over seeds; beats = better than the control "
                "(lower AUC, or higher with order most)",
    "recovery": "Spearman's rho between the measures' AUC rankings without recovery and with it (controls excluded), "
                "mean over seeds",
}  # fmt: skip
TESTS_LINE = "blocks = seeds; Friedman test over seeds; pairwise Wilcoxon signed-rank tests, Holm-adjusted"


def key_columns(df: pd.DataFrame) -> list[str]:
    """The key columns present: ``KEYS``, then every other text column that is not a value (settings, ...)."""
    extra = [c for c in df.columns if c not in KEYS and c not in NOT_KEYS and not c.startswith("_")]
    extra = [c for c in extra if not pd.api.types.is_numeric_dtype(df[c])]
    return [c for c in KEYS if c in df.columns] + extra


def condition_columns(df: pd.DataFrame, compare: Sequence[str] = ("measure",)) -> list[str]:
    """Key columns that are not compared, with ``epoch`` after ``model``: the columns that define a condition."""
    columns = [c for c in key_columns(df) if c not in compare]
    at = columns.index("model") + 1 if "model" in columns else 0
    return [*columns[:at], "epoch", *columns[at:]]


def panel_columns(df: pd.DataFrame) -> list[str]:
    """Key columns that select one figure of curves: all but measure and aggregation (``PANEL`` by default)."""
    return [c for c in key_columns(df) if c not in ("measure", "aggregation")]
