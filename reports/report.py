"""Writing a report: every table and figure into one output folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports._utils import _slug, short_title, to_markdown
from reports.analyze import analyze, apply_where
from reports.colors import measure_colors, treatment_colors
from reports.curves import plot_curves
from reports.figures import plot_cd, plot_mean_ranks, plot_rank_heatmap, select_epochs
from reports.forgetting import forgetting_rows, forgetting_table, plot_forgetting, plot_selectivity
from reports.keys import PROTOCOL_TABLES, panel_columns
from reports.loading import load, share_unpooled
from reports.markdown import _markdown, mean_rank_rows, metric_tables
from reports.options import check_out_dir, check_report_options, check_sparsity_range  # noqa: F401  (re-exported)
from reports.outputs import input_record, output_folder, write_record
from reports.protocol import base_measure, control_of, plot_controls, plot_order


def report(
    paths_or_df, out_dir, fmt="png", epochs=None, loss_tol=0.10, acc_tol=0.01, num_classes=None, *, epoch="last",
    compare=("measure",), interval="bootstrap", alpha=0.05, metric="loss_auc", where=None, control=None, pairs=None,
    at=None, sparsity_range=None,
) -> dict:  # fmt: skip
    """Writes every table and figure, and returns them.

    Args:
        paths_or_df: CSV paths, globs or study folders (see ``load``), or an already loaded DataFrame.
        out_dir: folder for the outputs; created when absent. None: ``figures/<CSV stem or study name>``.
            Never one that holds another input's analysis (``reports.outputs``).
        fmt: figure format, "png", "svg" or "pdf".
        epochs: epochs shown in the curve figures; default first, middle, last.
        loss_tol: relative loss increase tolerated (0.10 = 10%).
        acc_tol: accuracy drop tolerated, as a fraction (0.01 = 1 percentage point).
        num_classes: class count for the chance lines; default from the runs' JSON metadata.
        epoch: epochs ranked and tested: "last" (default) or a list.
        compare: treatment columns, e.g. "measure,scope".
        interval: "bootstrap" (default) or "t", for every interval and band.
        alpha: significance level of the tests.
        metric: one or more metric names (see ``analyze``).
        where: ``["column=value[,value]", ...]`` (see ``analyze``).
        control: a control treatment (see ``analyze``).
        pairs: ``["a:b", ...]`` (see ``analyze``).
        at: sparsities of the accuracy and loss table (see ``analyze``).
        sparsity_range: ``(low, high)``: the sparsities the curve figures show; default all.

    Returns:
        ``analyze``'s tables plus ``files`` (written paths) and ``forgetting`` (``forgetting_table``; empty without
        forgetting runs, which otherwise add ``forgetting.csv`` and per figure combination ``forgetting_*`` and
        ``selectivity_*`` figures at the last epoch).

    Raises:
        ValueError: a bad option, an unwritable ``out_dir`` (both before reading any data), bad input files (see
            ``load``), or nothing to rank (see ``analyze``). Nothing is written then.
    """
    planned = {"metric": metric, "where": where, "control": control, "pairs": pairs, "at": at}
    sparsity_range = check_report_options(fmt, loss_tol, acc_tol, num_classes, sparsity_range, compare=compare,
                                          epoch=epoch, interval=interval, alpha=alpha, **planned)
    if out_dir is not None:
        check_out_dir(out_dir)  # before any input is read
    record = input_record(paths_or_df)
    out = output_folder(out_dir, paths_or_df, record)
    df = paths_or_df if isinstance(paths_or_df, pd.DataFrame) else load(paths_or_df)
    if epochs is not None:
        select_epochs(df, epochs)
    result = analyze(df, loss_tol, acc_tol, epoch, compare, interval, alpha, **planned)
    df = apply_where(df, result["options"]["where"])
    out.mkdir(parents=True, exist_ok=True)
    colors = measure_colors(df["measure"])
    files = _write_tables(out, result) + _write_figures(out, df, result, fmt, epochs, num_classes, colors,
                                                                    sparsity_range)
    forget = forgetting_table(df)
    files += _write_forgetting(out, df, forget, fmt, colors)
    files.append(write_record(out, record, result["options"] | {"fmt": fmt, "loss_tol": loss_tol, "acc_tol": acc_tol}))
    return result | {"files": files, "forgetting": forget}


def _write_forgetting(out: Path, df: pd.DataFrame, table: pd.DataFrame, fmt: str, colors: dict) -> list[Path]:
    """``forgetting.csv``, and the A/R accuracy and selectivity figures per figure combination of forgetting rows."""
    if table.empty:
        return []
    table.to_csv(out / "forgetting.csv", index=False)
    files = [out / "forgetting.csv"]
    rows = forgetting_rows(df)
    for key, part in rows.groupby(panel_columns(rows), dropna=False):
        files.append(_save(plot_forgetting(part, colors=colors), out / f"forgetting_{_slug(key)}.{fmt}"))
        files.append(_save(plot_selectivity(part, colors=colors), out / f"selectivity_{_slug(key)}.{fmt}"))
    return files


def _write_tables(out: Path, result: dict) -> list[Path]:
    """Writes every table: CSVs (ranking, conditions, tests, mean_ranks, and those not empty), ranking.md, at.md."""
    tables = {"ranking": metric_tables(result, "ranking"), "conditions": metric_tables(result, "tests"),
              "tests": metric_tables(result, "pairs"), "mean_ranks": mean_rank_rows(result),
              "excluded": metric_tables(result, "excluded"), "disagreements": result.get("disagreements"),
              "at": result.get("at")}  # fmt: skip
    tables |= {name: result.get(name) for name in PROTOCOL_TABLES}
    tables = {name: table for name, table in tables.items() if table is not None and not table.empty}
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "ranking.md").write_text(_markdown(result), encoding="utf-8")
    files = [out / f"{name}.csv" for name in tables] + [out / "ranking.md"]
    if "at" in tables:
        (out / "at.md").write_text(f"# Accuracy and loss at chosen sparsities\n\n{to_markdown(tables['at'])}", "utf-8")
        files.append(out / "at.md")
    return files


def _write_figures(out: Path, df, result: dict, fmt: str, epochs, num_classes, colors: dict,
                   sparsity_range=None) -> list[Path]:  # fmt: skip
    """Writes curves per figure combination, and per metric the rank heatmaps, CD diagrams and mean ranks."""
    interval, compare = result["options"]["interval"], result["options"]["compare"]
    shared = [c for c in compare if c in panel_columns(df)]  # compared settings drawn on shared axes
    curves = share_unpooled(df)
    files, drawn = [], {"styles_by": shared, "sparsity_range": sparsity_range}
    for key, part in curves.groupby([c for c in panel_columns(curves) if c not in shared], dropna=False):
        figures = {"loss": plot_curves(part, "val_loss", epochs, num_classes, colors, interval, **drawn)}
        if part["val_accuracy"].notna().any():
            figures["accuracy"] = plot_curves(part, "val_accuracy", epochs, num_classes, colors, interval, **drawn)
        files += [_save(fig, out / f"{kind}_{_slug(key)}.{fmt}") for kind, fig in figures.items()]
    for metric, tables in result.get("metrics", {"loss_auc": result}).items():
        prefix = "" if metric == "loss_auc" else f"{_slug([metric])}_"
        labels = treatment_colors(tables["ranking"], compare, colors)
        for key, part in tables["ranking"].groupby([c for c in panel_columns(df) if c not in compare], dropna=False):
            fig = plot_rank_heatmap(part, labels, compare)
            files.append(_save(fig, out / f"{prefix}rank_heatmap_{_slug(key)}.{fmt}"))
        files += _write_cd(out, tables, result["options"]["alpha"], fmt, labels, prefix)
        files.append(_save(plot_mean_ranks(tables["mean_ranks"], labels), out / f"{prefix}mean_ranks.{fmt}"))
    return files + _write_protocol_figures(out, df, result, fmt, colors)


def _write_protocol_figures(out: Path, df, result: dict, fmt: str, colors: dict) -> list[Path]:
    """The removal-order scatter per combination (without order), measures with their controls per combination."""
    files, order, base_colors = [], result.get("order", pd.DataFrame()), measure_colors(df["measure"].map(base_measure))
    if not order.empty:
        for key, part in order.groupby(panel_columns(order), dropna=False):
            files.append(_save(plot_order(part, base_colors), out / f"order_{_slug(key)}.{fmt}"))
    if not result.get("controls", pd.DataFrame()).empty:
        interval = result["options"]["interval"]
        for key, part in df.groupby(panel_columns(df), dropna=False):
            if (part["measure"].map(control_of) != "").any():
                fig = plot_controls(part, colors=base_colors, interval=interval)
                files.append(_save(fig, out / f"controls_{_slug(key)}.{fmt}"))
    return files


def _write_cd(out: Path, tables: dict, alpha: float, fmt: str, colors: dict, prefix: str = "") -> list[Path]:
    """A CD diagram per condition whose every pair was tested (none for a planned family of fewer pairs)."""
    tests, table = tables["tests"], tables["ranking"]
    conditions = list(tests.columns[: tests.columns.get_loc("n_seeds")])
    files = []
    for key, pvalues in tables["pvalues"].items():
        if pvalues.isna().any().any():
            continue
        rows = table[(table[conditions] == pd.Series(key, index=conditions)).all(axis=1)]
        test = tests[(tests[conditions] == pd.Series(key, index=conditions)).all(axis=1)].iloc[0]
        title = f"{short_title(tuple(zip(conditions, key, strict=True)))}; {_test_line(test)}"
        fig = plot_cd(rows.set_index("treatment")["mean_rank"], pvalues, title, colors, alpha)
        files.append(_save(fig, out / f"{prefix}cd_{_slug(key)}.{fmt}"))
    return files


def _test_line(test) -> str:
    friedman = f"Friedman p = {test['friedman_p']:.3g}" if np.isfinite(test["friedman_p"]) else "no Friedman test"
    return f"{int(test['n_seeds'])} seeds, {int(test['n_treatments'])} treatments; {friedman}"


def _save(fig, path: Path) -> Path:
    """Saves and closes ``fig``; its ``report_metadata`` (every setting) goes into the file's metadata."""
    fig.savefig(path, dpi=150, bbox_inches="tight", metadata=getattr(fig, "report_metadata", None))
    plt.close(fig)
    return path
