"""Command line: ``python -m harness.experiments.localize [options]`` reproduces seed 002's update-tally experiment.

Settings come from the defaults (the seed's: groups [[1, 7], [6, 8]],
softplus, 100 hidden units, batch 1, the second half of phase 1 tallied), then a TOML
file (``--config``), then the options given here. Writes ``parameters.csv``,
``result.json`` and the figures to ``data/localize/<run_id>/`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cli import instant
from harness.common import quiet
from harness.experiments.localize import LocalizeConfig, run
from harness.experiments.localize.config import ACTIVATIONS, INPUT_SCALINGS, OUTPUT_LAYERS, TALLY_HALVES


def _groups(text: str):
    try:
        groups = json.loads(text)
    except json.JSONDecodeError:
        groups = None
    if not isinstance(groups, list):
        raise argparse.ArgumentTypeError(f"groups must be JSON such as [[1,7],[6,8]]. Received: {text!r}")
    return groups


def parser() -> argparse.ArgumentParser:
    """The argument parser; every option defaults to None so TOML values survive."""
    p = argparse.ArgumentParser(prog="python -m harness.experiments.localize", description=__doc__.replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file whose keys are the option names with underscores")
    p.add_argument("--task", help="task giving the data (default: mnist)")
    p.add_argument("--groups", type=_groups, help="two groups of two classes as JSON (default: [[1,7],[6,8]])")
    p.add_argument("--activation", help=f"hidden activation: {' '.join(ACTIVATIONS)} (default: softplus)")
    p.add_argument("--tally", help=f"half of phase 1 tallied for r: {' '.join(TALLY_HALVES)} (default: second)")
    p.add_argument("--inputs", help=f"input scaling: {' '.join(INPUT_SCALINGS)} (default: seed, [1/256, 1])")
    p.add_argument("--output-layer", help=f"output layer and loss: {' '.join(OUTPUT_LAYERS)} (default: softmax; "
                                          "sigmoid/softplus: squared error on one-hot labels)")
    for name, kind, text in [("hidden", int, "hidden units (default: 100)"), ("batch-size", int, "default: 1"),
                             ("learning-rate", float, "plain SGD step (default: 0.01)"),
                             ("phase1-examples", int, "phase-1 examples, a multiple of 4 (default: 1200)"),
                             ("fork-examples", int, "steps per fork, even (default: all the data allow)"),
                             ("fork-passes", int, "passes of each fork over its examples (default: 1)")]:
        p.add_argument(f"--{name}", type=kind, help=text)
    p.add_argument("--seeds", type=int, nargs="+", help="seeds run one after another (default: 0)")
    p.add_argument("--data-dir", help="folder with the task's data, e.g. ../shared/data/mnist")
    p.add_argument("--output", help="result folder (default: data/localize/<run_id>)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="hide progress bars")
    return p


def _records(given: dict) -> list[Path]:
    """``result.json`` of the ``--output`` folder, or of every run under ``data/localize``."""
    output = given.get("output") or instant.toml_value(given.get("config"), "output")
    return [Path(output) / "result.json"] if output else sorted(Path("data/localize").glob("*/result.json"))


def _print_summary(folder: Path) -> None:
    result = json.loads((folder / "result.json").read_text())["summary"]
    for group in ("weights", "biases"):
        r2, pearson = result[group]["r2"], result[group]["pearson_r"]
        print(f"{group}: R² mean {r2['mean']:.4f} (95% CI {r2['ci95'][0]:.4f} .. {r2['ci95'][1]:.4f}), "
              f"Pearson r mean {pearson['mean']:.4f}, {r2['n_seeds']} seeds")


def _already_complete(folder: Path, run_id: str) -> int:
    print(f"localize {run_id} is already complete in {folder}; nothing was recomputed.")
    _print_summary(folder)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return 0 when done, 2 on bad input (before training, no traceback), 130 when interrupted.

    A run this same command finished before (on this code) is reported without importing TensorFlow, and so is
    every refusal.
    """
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # --help, or argparse's one-line usage error
        return stop.code if isinstance(stop.code, int) else 2
    given = {k: v for k, v in vars(args).items() if v is not None and k != "config"}
    key = instant.request_key("localize", given, args.config)
    found = instant.find(_records({**given, "config": args.config}), key)
    if found is not None:
        return _already_complete(found[0].parent, found[1].get("run_id", "?"))
    try:  # refusals come before TensorFlow is imported
        config = LocalizeConfig.from_toml(args.config, **given) if args.config else LocalizeConfig(**given)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if _same_result(config):
        instant.remember(config.folder / "result.json", key)
        return _already_complete(config.folder, config.run_id)
    return _run(config, key)


def _run(config: LocalizeConfig, key: str) -> int:
    device = quiet.load_tensorflow()
    from tasks import DatasetUnavailable

    try:
        print(f"localize {config.run_id}: {config.activation}, groups {config.groups}, seeds {config.seeds} "
              f"-> {config.folder}")
        print(device)
        folder = run(config)
    except (ValueError, DatasetUnavailable, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no result was written", file=sys.stderr)
        return 130
    instant.remember(folder / "result.json", key)
    _print_summary(folder)
    print(f"wrote {folder}")
    return 0


def _same_result(config) -> bool:
    """Whether the result folder holds this very run (same settings) already."""
    try:
        return json.loads((config.folder / "result.json").read_text()).get("settings") == config.result_defining()
    except (OSError, ValueError, AttributeError):
        return False


if __name__ == "__main__":
    sys.exit(main())
