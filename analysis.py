"""Figures, rankings and significance tests from harness result CSVs and study folders.

Command line::

    python analysis.py data/studies/digits5 --out figures/digits5          # a study folder (its trials/*.csv)
    python analysis.py data/results.csv "data/*.csv" --out figures/ [--format svg] [--epoch last] [--epochs 1 5 10]
    python analysis.py data/studies/obd --compare measure,scope             # rank (measure x scope) jointly

Notebook::

    import analysis
    df = analysis.load("data/studies/digits5")        # a folder, CSVs or globs
    analysis.plot_curves(df[df.aggregation == "weight"])   # a Figure
    table = analysis.rank_table(df)                  # a DataFrame
    analysis.summary(table)
    result = analysis.report(df, "figures")          # every table and file
    print(analysis.format_report(result))

The code lives in the package ``reports/`` (its docstring gives the definitions: AUC, tolerated sparsity, ranks,
the tests with seeds as blocks); this file is its entry point and re-exports the public names.
"""

from __future__ import annotations

import sys
import tempfile  # noqa: F401  (tests replace tempfile.TemporaryFile through this name)

from reports.analyze import analyze
from reports.cli import main
from reports.colors import measure_colors, treatment_colors
from reports.curves import curve_stats, plot_curves
from reports.figures import plot_cd, plot_mean_ranks, plot_rank_heatmap, select_epochs
from reports.forgetting import (
    forgetting_metrics,
    forgetting_rows,
    forgetting_scores,
    forgetting_table,
    format_forgetting,
    plot_forgetting,
    plot_selectivity,
)
from reports.keys import (
    BOUNDS,
    COLUMNS,
    COMPARABLE,
    CONDITION,
    FORGETTING,
    FORMATS,
    INTERVALS,
    KEYS,
    N_RESAMPLES,
    PANEL,
    condition_columns,
    key_columns,
    panel_columns,
)
from reports.loading import load, share_unpooled
from reports.markdown import format_report
from reports.metrics import auc, run_scores, tolerated_sparsity
from reports.outputs import check_out_dir
from reports.protocol import (
    base_measure,
    control_of,
    control_table,
    order_table,
    plot_controls,
    plot_order,
    recovery_agreement,
)
from reports.ranking import mean_rank_matrix, rank_table, ranked_epochs, replicates, summary, table_from_blocks
from reports.report import report
from reports.statistics import condition_test, interval_caption, mean_intervals, rank_tests, seeds_needed, wilcoxon_holm

__all__ = [
    "BOUNDS", "COLUMNS", "COMPARABLE", "CONDITION", "FORGETTING", "FORMATS", "INTERVALS", "KEYS", "N_RESAMPLES",
    "PANEL", "analyze", "auc", "base_measure", "check_out_dir", "condition_columns", "condition_test", "control_of",
    "control_table", "curve_stats", "forgetting_metrics", "forgetting_rows", "forgetting_scores", "forgetting_table",
    "format_forgetting", "format_report", "interval_caption", "key_columns", "load", "main", "mean_intervals",
    "mean_rank_matrix", "measure_colors", "order_table", "panel_columns", "plot_cd", "plot_controls", "plot_curves",
    "plot_forgetting", "plot_mean_ranks", "plot_order", "plot_rank_heatmap", "plot_selectivity", "rank_table",
    "rank_tests", "ranked_epochs", "recovery_agreement", "replicates", "report", "run_scores", "seeds_needed",
    "select_epochs", "share_unpooled", "summary", "table_from_blocks", "tolerated_sparsity", "treatment_colors",
    "wilcoxon_holm",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
