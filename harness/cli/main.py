"""``python -m harness [options]``: one experiment, or a study; the options are defined in :mod:`harness.cli.options`.

Bad input is refused before TensorFlow is imported (:mod:`harness.cli.inputs`),
a finished run is reported without it (:mod:`harness.cli.instant`), and a study
is handed to :mod:`harness.study.driver`.
"""

from __future__ import annotations

import argparse
import signal
import sys

import tomllib

from harness.cli import catalog, instant
from harness.cli.options import STUDY_OPTIONS, parser, sweep_epochs_arg
from harness.common import quiet
from harness.pipeline.config import RunConfig


def is_study(args: argparse.Namespace) -> bool:
    """Whether a study option is given, or the TOML file has a ``[grid]`` or ``[study]`` table."""
    if any(getattr(args, name.replace("-", "_")) is not None for name in STUDY_OPTIONS):
        return True
    try:
        with open(args.config or "", "rb") as f:
            return bool({"grid", "study"} & set(tomllib.load(f)))
    except (OSError, ValueError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return False  # no file: a single run; an unreadable one is reported by the run's own error


def given_options(args: argparse.Namespace) -> dict:
    """The options given on the command line, as ``RunConfig`` takes them."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "list")}
    if "sweep_epochs" in given:
        given["sweep_epochs"] = sweep_epochs_arg(given["sweep_epochs"])
    return given


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Merge the TOML file (if any) and the given options into a validated config."""
    given = given_options(args)
    return RunConfig.from_toml(args.config, **given) if args.config else RunConfig(**given)


def _stop_on_sigterm(signum, frame):
    """Turn SIGTERM into KeyboardInterrupt, raised between Python statements, so no row is half-written."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (listed in ``--help``).

    ``--help`` and ``--list`` import no TensorFlow.
    """
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # --help, or argparse's one-line usage error
        return stop.code if isinstance(stop.code, int) else 2
    if args.list:
        print(catalog.listing())
        return 0
    return _run(args)


def _already_complete(args: argparse.Namespace) -> str | None:
    """The report of a run this same command finished before (on this code), found without TensorFlow."""
    try:
        return instant.complete_run(given_options(args), args.config, RunConfig.output)
    except ValueError:  # a malformed --sweep-epochs: reported by the ordinary path
        return None


def _run(args: argparse.Namespace) -> int:
    from harness.cli.inputs import check_args  # refusals need no TensorFlow: checked before it is imported

    try:
        check_args(args)
    except ValueError as error:
        return _fail(error, 2)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if is_study(args):
        from harness.study.driver import run_from_args  # only studies import the study layer and Ray

        return run_from_args(args)
    done = _already_complete(args)
    if done is not None:
        print(done)
        return 0
    device = quiet.load_tensorflow()
    from harness.pipeline.experiment import RunFailed, TrainingDiverged, run
    from harness.pipeline.results import RunLocked, sidecar
    from tasks import DatasetUnavailable

    config = None
    try:
        config = config_from_args(args)
        print(f"run {config.run_id}: task={config.task} model={config.model} epochs={config.epochs} "
              f"measures={config.measures} aggregations={config.aggregations} -> {config.output}")
        print(device)
        run(config)
        instant.remember(sidecar(config.output, config.run_id, ".json"),
                         instant.request_key("run", given_options(args), args.config))
    except RunLocked as error:
        return _fail(error, 3)
    except TrainingDiverged as error:
        return _fail(error, 4)
    except (ValueError, DatasetUnavailable, OSError) as error:
        return _fail(error, 2)
    except RunFailed as error:
        return _fail(error, 1)
    except KeyboardInterrupt:
        where = config.output if config else "the CSV"
        print(f"interrupted: every completed sweep is in {where}; continue with --resume", file=sys.stderr)
        return 130
    return 0


def _fail(error: Exception, status: int) -> int:
    print(f"error: {error}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
