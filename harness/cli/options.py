"""The options of ``python -m harness`` (and ``python -m harness.study``): the parser and their conversions.

Apart from :mod:`harness.cli.main`, so that ``python -m harness.study`` and the
pre-TensorFlow checks (:mod:`harness.cli.inputs`) use the same parser without
importing the entry point. TensorFlow-free.
"""

from __future__ import annotations

import argparse
import dataclasses

from harness.cli import catalog
from harness.pipeline.config import RunConfig

DESCRIPTION = """Command line: ``python -m harness [options]`` runs one experiment.

Settings come from the defaults, then a TOML file (``--config``), then the
options given here. ``python -m harness --list`` shows the registered tasks,
models, measures with their options, aggregations and the grid's choices.
A finished run is reported complete and not recomputed; a partly written one
continues with ``--resume``.
With a study option (``--seeds 0-9``, ``--workers 2``, ...) or a TOML with a
``[grid]`` or ``[study]`` table, it runs a study instead (see ``harness.study.driver``).
"""
EXIT_STATUS = """exit status:
  0    done, or the run was already complete
  1    some measures failed; the others' rows are written
  2    bad input, reported before any data is loaded
  3    the same run or study is being written by another process
  4    training diverged; no rows were written for that epoch
  130  interrupted (Ctrl-C, SIGTERM); every completed sweep is in the CSV"""


def _default(name: str):
    f = {f.name: f for f in dataclasses.fields(RunConfig)}[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _list_options() -> dict[str, str]:
    choices = {name: " ".join(catalog.grid_choices(name)) for name in catalog.GRID_CHOICES}
    return {
        "measures": "measure specs, e.g. fisher obd:hessian=exact (default: every registered measure; see --list)",
        "aggregations": "aggregation specs, e.g. unit unit:direction=out filter:direction=group head (default: every "
                        "registered one but head; 'filter' is skipped on models without conv layers, where its items are "
                        "single weights as in 'weight'; see --list)",
        "poolings": f"item poolings: {choices['poolings']} (default: {' '.join(_default('poolings'))})",
        "scopes": f"{choices['scopes']} ('output': per output unit, per-weight aggregations only) "
                  f"(default: {' '.join(_default('scopes'))})",
        "normalizations": f"per-layer normalisation for global scope: {choices['normalizations']} "
                          f"(default: {' '.join(_default('normalizations'))})",
        "replacements": f"{choices['replacements']} (default: {' '.join(_default('replacements'))})",
        "orders": f"removal order, {choices['orders']}: least (LeRF) and/or most (MoRF) important first "
                  "(default: least; most in a forgetting run)",
        "recoveries": "before each evaluation: none, bn (bn:batches=B; BatchNorm statistics recomputed) and/or "
                      f"finetune:steps=k (k steps, mask fixed) (default: {' '.join(_default('recoveries'))})",
    }


STUDY_OPTIONS = {
    "seeds": (str, "run a study: one trial per seed, e.g. 0-9 or 0,3,5"),
    "workers": (int, "study: trials at a time (default: the core count)"),
    "name": (str, "study: folder name under --storage (default: task-model-seeds-<6 digits of the study id>, "
                  "e.g. digits-mlp-seeds0-4-97e849; with --config: the study id)"),
    "storage": (str, "study: folder holding studies, on storage every node sees (default: data/studies)"),
    "address": (str, "study: join a Ray cluster: auto or ray://host:port (default: start Ray locally)"),
    "gpus-per-trial": (float, "study: GPUs reserved per trial, fractions allowed (default: 0, TensorFlow on CPU)"),
    "max-retries": (int, "study: reruns of a trial whose worker died, resuming its checkpoint (default: 2)"),
    "dashboard": (bool, "study: start Ray's dashboard on 127.0.0.1 with a local Ray (needs ray[default]; "
                  "default: off)"),
}


def plain(text: str) -> str:
    """Docstring text as help text: without reStructuredText's double backticks."""
    return text.replace("``", "")


def parser(prog: str = "python -m harness", description: str = DESCRIPTION) -> argparse.ArgumentParser:
    """The argument parser; every option defaults to None so TOML values survive (defaults are in the help)."""
    p = argparse.ArgumentParser(prog=prog, description=plain(description), epilog=EXIT_STATUS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file whose keys are the option names with underscores")
    p.add_argument("--list", action="store_true", help="list tasks, models, measures and their options, "
                   "aggregations, poolings, scopes, normalizations and replacements")
    p.add_argument("--task", help=f"task name (default: {_default('task')})")
    p.add_argument("--model", help="model of the task (default: the task's default; see --list)")
    p.add_argument("--model-file", help="a trained Keras 3 model (.keras) used on the task's data instead of --model; "
                   "--epochs 0 scores and sweeps it as it is, --epochs N fine-tunes it first (SHA-256 in the run id)")
    for name, text in _list_options().items():
        p.add_argument(f"--{name}", nargs="+", help=text)
    p.add_argument("--controls", nargs="*", help=f"matched controls swept beside each measure, rows measure~control: "
                   f"{' '.join(catalog.grid_choices('controls'))} (default: none)")
    p.add_argument("--thresholds", nargs="+", type=float, help="fractions in [0, 1] (default: 0 0.05 ... 1)")
    for name, kind in [("epochs", int), ("batch-size", int), ("learning-rate", float)]:
        p.add_argument(f"--{name}", type=kind, help="(default: the task's; see --list)"
                       + ("; 0 with --model-file: no training" if name == "epochs" else ""))
    p.add_argument("--seed", type=int, help=f"integer in [0, 2**32 - 1] (default: {_default('seed')})")
    p.add_argument("--importance-samples", type=int, help="training examples drawn once for data-driven "
                   f"measures, at most the training set (default: {_default('importance_samples')})")
    p.add_argument("--importance-classes", nargs="+", type=int, help="class ids whose training examples alone feed "
                   "the data-driven measures (default: every class)")
    p.add_argument("--per-class", action="store_true", default=None, help="also write per-class validation loss and "
                   "accuracy per threshold to <csv stem>.per_class.csv (on in a forgetting run)")
    p.add_argument("--forget-classes", nargs="+", type=int, help="selective forgetting: replace the weights most "
                   "specific to these classes first (see harness/experiments/forgetting.py)")
    p.add_argument("--contrast", help="forgetting: ratio (default) or difference of importance on the forget set and "
                   "on the other classes")
    p.add_argument("--prunable", help=f"{' or '.join(catalog.grid_choices('prunable'))} "
                   f"(default: {_default('prunable')})")
    p.add_argument("--structured-bn", help="zero (default): a removed unit or filter also masks the prunable "
                   "BatchNorm scale and shift after it; keep: they stay single weights (the behaviour before)")
    p.add_argument("--output", help=f"result CSV (default: {_default('output')})")
    p.add_argument("--data-dir", help="folder holding a local copy of the task's dataset (not part of the run id)")
    p.add_argument("--threshold-rule", help="exact (default) or legacy_cutoff (the original study's score < cutoff)")
    p.add_argument("--augmentation", help="training augmentation of the task, e.g. none or seed003 (mnist; see --list)")
    p.add_argument("--deterministic", action="store_true", default=None, help="deterministic TensorFlow ops")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="hide progress bars")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue the partly written run with the same run id")
    p.add_argument("--keep-checkpoints", type=int, help="checkpoints kept, the newest epochs "
                   f"(default: {_default('keep_checkpoints')})")
    p.add_argument("--divergence-factor", type=float, help="stop when the validation loss after an epoch exceeds "
                   f"this factor times the loss before training; inf: never (default: {_default('divergence_factor'):g})")
    p.add_argument("--sweep-epochs", nargs="+", help="epochs to sweep after: all (default), every:N, or a list of epochs")
    p.add_argument("--sweep-method", help="auto (default), masked, shrunk or batched (see harness/thresholding/sweep.py)")
    p.add_argument("--xla", action="store_true", default=None, help="compile training and evaluation with XLA")
    study = p.add_argument_group("studies (many runs on Ray; re-running the same command resumes)")
    for name, (kind, text) in STUDY_OPTIONS.items():
        flag = dict(action="store_true", default=None) if kind is bool else dict(type=kind)
        study.add_argument(f"--{name}", help=text, **flag)
    return p


def sweep_epochs_arg(tokens: list[str]) -> str | list[int]:
    """``--sweep-epochs`` as RunConfig takes it: one word (``all``, ``every:5``) or a list of epochs.

    Raises:
        ValueError: several words that are not all integers.
    """
    def number(token: str) -> bool:
        return token.isascii() and token.isdigit()

    if len(tokens) == 1 and not number(tokens[0]):
        return tokens[0]
    if not all(number(token) for token in tokens):
        raise ValueError(f"sweep_epochs must be 'all', 'every:N' or a list of epochs. Received: sweep_epochs={tokens}")
    return [int(token) for token in tokens]
