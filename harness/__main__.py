"""Command line: ``python -m harness [options]`` runs one experiment.

Settings come from the defaults, then a TOML file (``--config``), then the
options given here. ``python -m harness --list`` shows what is registered.
"""

from __future__ import annotations

import argparse
import signal
import sys

import aggregations
import measures
import tasks
from harness.config import RunConfig
from harness.run import RunFailed, run

LIST_OPTIONS = {
    "measures": "measure specs, e.g. fisher obd:hessian=exact (default: all registered)",
    "aggregations": "aggregations (default: all registered)",
    "poolings": "item poolings: mean sum max min l2 (default: mean)",
    "scopes": "layer and/or global (default: layer)",
    "normalizations": "per-layer normalisation for global scope: none mean max (default: none)",
    "replacements": "zero and/or random (default: zero)",
}


def parser() -> argparse.ArgumentParser:
    """The argument parser; every option defaults to None so TOML values survive."""
    p = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file whose keys are the option names with underscores")
    p.add_argument("--list", action="store_true", help="list registered tasks, models, measures, aggregations")
    p.add_argument("--task", help="task name (default: digits)")
    p.add_argument("--model", help="model of the task (default: the task's default)")
    for name, text in LIST_OPTIONS.items():
        p.add_argument(f"--{name}", nargs="+", help=text)
    p.add_argument("--thresholds", nargs="+", type=float, help="fractions in [0, 1] (default: 0, 0.05, ..., 1)")
    for name, kind in [("epochs", int), ("batch-size", int), ("learning-rate", float), ("seed", int),
                       ("importance-samples", int)]:
        p.add_argument(f"--{name}", type=kind)
    p.add_argument("--prunable", help="kernels (default), kernels+biases or all")
    p.add_argument("--output", help="result CSV (default: data/results.csv)")
    p.add_argument("--data-dir", help="folder holding a local copy of the task's dataset")
    p.add_argument("--deterministic", action="store_true", default=None, help="deterministic TensorFlow ops")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="hide progress bars")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run with the same run id")
    p.add_argument("--sweep-epochs", nargs="+", help="epochs to sweep after: all (default), every:N, or a list of epochs")
    p.add_argument("--sweep-method", help="auto (default), masked, shrunk or batched (see harness/sweep.py)")
    p.add_argument("--xla", action="store_true", default=None, help="compile training and evaluation with XLA")
    return p


def registered() -> str:
    """A listing of every registered plugin."""
    lines = [f"tasks: {tasks.TASKS.names()}"]
    lines += [f"  {name} models: {sorted(tasks.get_task(name).models)}" for name in tasks.TASKS.names()]
    lines += [f"measures: {measures.MEASURES.names()}", f"aggregations: {aggregations.AGGREGATIONS.names()}"]
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Merge the TOML file (if any) and the given options into a validated config."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "list")}
    if "sweep_epochs" in given:
        given["sweep_epochs"] = sweep_epochs_arg(given["sweep_epochs"])
    return RunConfig.from_toml(args.config, **given) if args.config else RunConfig(**given)


def sweep_epochs_arg(tokens: list[str]) -> str | list[int]:
    """``--sweep-epochs`` as RunConfig takes it: one word (``all``, ``every:5``) or a list of epochs.

    Raises:
        ValueError: several words that are not all integers.
    """
    if len(tokens) == 1 and not tokens[0].isdigit():
        return tokens[0]
    if not all(token.isdigit() for token in tokens):
        raise ValueError(f"sweep_epochs must be 'all', 'every:N' or a list of epochs. Received: sweep_epochs={tokens}")
    return [int(token) for token in tokens]


def _stop_on_sigterm(signum, frame):
    """Turn SIGTERM into KeyboardInterrupt, raised between Python statements, so no row is half-written."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status.

    0: done. 1: some measures failed (the others' rows are written). 2: bad
    input, reported before training with no traceback. 130: interrupted by
    Ctrl-C or SIGTERM; every completed sweep is in the CSV.
    """
    args = parser().parse_args(argv)
    if args.list:
        print(registered())
        return 0
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    config = None
    try:
        config = config_from_args(args)
        print(f"run {config.run_id}: task={config.task} model={config.model} epochs={config.epochs} "
              f"measures={config.measures} aggregations={config.aggregations} -> {config.output}")
        path = run(config)
    except (ValueError, tasks.DatasetUnavailable, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = config.output if config else "the CSV"
        print(f"interrupted: every completed sweep is in {where}; continue with --resume", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
