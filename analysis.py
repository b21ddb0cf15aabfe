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
the tests with seeds as blocks); this file is its entry point and re-exports the public names. Each name is imported
from its module on first use (PEP 562), so that ``python analysis.py`` refuses a bad option before pandas, SciPy or
matplotlib are imported.
"""

from __future__ import annotations

import sys
import tempfile  # noqa: F401  (tests replace tempfile.TemporaryFile through this name)

from harness.common.lazy import lazy_attributes

_MODULES = {
    "reports.analyze": ["analyze"],
    "reports.cli": ["main"],
    "reports.colors": ["measure_colors", "treatment_colors"],
    "reports.curves": ["curve_stats", "plot_curves"],
    "reports.figures": ["plot_cd", "plot_mean_ranks", "plot_rank_heatmap", "select_epochs"],
    "reports.forgetting": ["forgetting_metrics", "forgetting_rows", "forgetting_scores", "forgetting_table",
                           "format_forgetting", "plot_forgetting", "plot_selectivity"],
    "reports.keys": ["BOUNDS", "COLUMNS", "COMPARABLE", "CONDITION", "FORGETTING", "FORMATS", "INTERVALS", "KEYS",
                     "N_RESAMPLES", "PANEL", "condition_columns", "key_columns", "panel_columns"],
    "reports.loading": ["load", "share_unpooled"],
    "reports.markdown": ["format_report"],
    "reports.metrics": ["auc", "run_scores", "tolerated_sparsity"],
    "reports.options": ["check_out_dir"],
    "reports.protocol": ["base_measure", "control_of", "control_table", "order_table", "plot_controls", "plot_order",
                         "recovery_agreement"],
    "reports.ranking": ["mean_rank_matrix", "rank_table", "ranked_epochs", "replicates", "summary",
                        "table_from_blocks"],
    "reports.report": ["report"],
    "reports.statistics": ["condition_test", "interval_caption", "mean_intervals", "rank_tests", "seeds_needed",
                           "wilcoxon_holm"],
}  # fmt: skip
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_attributes("analysis", _WHERE, globals())

if __name__ == "__main__":
    from reports.cli import main

    sys.exit(main())
