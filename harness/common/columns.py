"""Column names and separators of the result CSVs, shared by the harness (writer) and the analysis (reader).

Imports nothing beyond the standard library, so the analysis can read them without TensorFlow.
"""

COLUMNS = [
    "run_id", "task", "model", "seed", "epoch", "measure", "aggregation", "pooling", "scope",
    "normalization", "replacement", "order", "recovery", "threshold", "sparsity", "n_replaced", "params_remaining", "flops",
    "val_loss", "val_accuracy", "measure_seconds", "sweep_seconds",
]  # fmt: skip
"""The main result CSV's columns, in the order the harness writes them."""

REQUIRED_COLUMNS = [
    "run_id", "task", "model", "seed", "epoch", "measure", "aggregation", "pooling", "scope", "normalization",
    "replacement", "threshold", "sparsity", "n_replaced", "val_loss", "val_accuracy", "measure_seconds",
    "sweep_seconds",
]  # fmt: skip
"""The columns every result CSV holds, old ones included (``order``, ``recovery``, ... came later)."""

SWEEP_KEY = ["run_id", "epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "order",
             "recovery"]
"""The columns that identify one sweep (with ``threshold``, one row)."""

PER_CLASS_COLUMNS = ["threshold", "class", "val_loss", "val_accuracy", "n_examples"]  # after the sweep key
PER_CLASS_SUFFIX = ".per_class.csv"  # data/results.csv -> data/results.per_class.csv
CONTROL_SEPARATOR = "~"  # measure~control: the rows of a matched control (harness/thresholding/controls.py)
