"""The command line of analysis.py.

Every option, the output folder and the input paths are checked (``reports.options``) before pandas, SciPy or
matplotlib are imported, so a refusal that needs no data takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys

from reports.options import (
    COMPARABLE,
    FORMATS,
    INTERVALS,
    METRIC_NAMES,
    check_out_dir,
    check_report_options,
    expand_paths,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Figures, rankings and tests (seeds as blocks) from harness result CSVs or study folders.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", help="result CSVs, globs, or study folders (their trials/*.csv)")
    parser.add_argument("--out", help="output folder (default: figures/<CSV stem or study name>; never another "
                        "input's analysis folder)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="figure format")
    parser.add_argument("--epoch", nargs="+", default=["last"], help="epochs ranked and tested: 'last' or numbers")
    parser.add_argument("--epochs", type=int, nargs="+", help="epochs drawn in the curve figures (first, middle, last)")
    parser.add_argument("--compare", default="measure", help=f"treatment columns, comma-separated, among {COMPARABLE}")
    parser.add_argument("--interval", default="bootstrap", choices=INTERVALS, help="95%% interval over seeds")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument("--loss-tol", type=float, default=0.10, help="relative loss increase tolerated")
    parser.add_argument("--acc-tol", type=float, default=0.01, help="accuracy drop tolerated, fraction")
    parser.add_argument("--classes", type=int, help="class count for the chance line (default: run metadata)")
    parser.add_argument("--metric", nargs="+", default=["loss_auc"],
                        help=f"metrics ranked and tested, the first the headline one, among {METRIC_NAMES}")
    parser.add_argument("--at", nargs="+", help="sparsities of the accuracy and loss table (at.csv, at.md)")
    parser.add_argument("--where", nargs="+", help="keep only rows with column=value[,value] (several allowed)")
    parser.add_argument("--control", help="test each treatment against this one only (k-1 tests, Holm over those)")
    parser.add_argument("--pairs", nargs="+", help="test only these pairs of treatments, a:b (Holm over them)")
    parser.add_argument("--sparsity-range", nargs=2, metavar=("LO", "HI"), help="sparsities shown in the curves")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status: 0 done, 2 bad input or nothing to rank (one line on stderr)."""
    args = _parser().parse_args(argv)
    planned = {"metric": args.metric, "where": args.where, "control": args.control, "pairs": args.pairs, "at": args.at}
    try:
        _check_before_reading(args, planned)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import matplotlib  # the heavy modules only now: a refusal above needs none of them

    matplotlib.use("Agg")
    from reports.markdown import format_report
    from reports.report import report

    try:
        result = report(args.paths, args.out, args.format, args.epochs, args.loss_tol, args.acc_tol, args.classes,
                        epoch=args.epoch, compare=args.compare, interval=args.interval, alpha=args.alpha, **planned,
                        sparsity_range=args.sparsity_range)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(result))
    return 0


def _check_before_reading(args: argparse.Namespace, planned: dict) -> None:
    """``report``'s checks that need no data, in its order: the options, the output folder, the input paths.

    Raises:
        ValueError: a bad option or an unwritable output folder (``reports.options``).
        FileNotFoundError: a path, glob or folder that matches no result CSV.
    """
    check_report_options(args.format, args.loss_tol, args.acc_tol, args.classes, args.sparsity_range,
                         compare=args.compare, epoch=args.epoch, interval=args.interval, alpha=args.alpha, **planned)
    if args.out is not None:
        check_out_dir(args.out)
    expand_paths(args.paths)
