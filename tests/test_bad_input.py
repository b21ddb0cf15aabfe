"""Bad input, every entry point, one table.

Each row runs in-process through a command-line entry point and must end with
a one-line error holding the expected fragment (the value, and the valid
choices where there are some), the expected exit status, no data loaded, no
traceback, and every file in the folder unchanged (none created either).

A row is ``(entry point, arguments, message fragment, exit status)``, plus
optionally ``{file name: bytes}`` created in the folder beforehand. Arguments
are an argv list, or TOML text (``str`` or ``bytes``) written to ``exp.toml``
and passed as ``--config``. ``{tmp}`` in an argument is the case's folder.
Every new option adds its bad values here; another command line adds itself
to ``ENTRY_POINTS`` and its rows to ``CASES``.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from harness.cli.main import main as harness_main
from harness.experiments.localize.__main__ import main as localize_main
from harness.pipeline import results
from reports.claims import main as claims_main
from tasks import TASKS
from tests.helpers import model_file_bytes


def harness_cli(argv: list[str], tmp: Path) -> int:
    return harness_main(["--output", str(tmp / "results.csv"), "--no-progress", *argv])


def study_cli(argv: list[str], tmp: Path) -> int:
    """A study through ``python -m harness``; its folder goes under the case's folder."""
    return harness_main([*argv, "--storage", str(tmp), "--no-progress"])


def analysis_cli(argv: list[str], tmp: Path) -> int:
    """``python analysis.py``, with ``--out`` in the case's folder unless the case names one."""
    out = [] if "--out" in argv else ["--out", str(tmp / "figures")]
    try:
        return analysis.main([*argv, *out])
    except SystemExit as stop:  # argparse's usage errors
        return stop.code


def localize_cli(argv: list[str], tmp: Path) -> int:
    """``python -m harness.experiments.localize``, writing under the case's folder."""
    try:
        return localize_main([*argv, "--output", str(tmp / "localize"), "--no-progress"])
    except SystemExit as stop:  # argparse's usage errors
        return stop.code


def claims_cli(argv: list[str], tmp: Path) -> int:
    """``python -m reports.claims LEDGER``."""
    return claims_main(argv)


ENTRY_POINTS = {"harness": harness_cli, "study": study_cli, "analysis": analysis_cli, "localize": localize_cli,
                "claims": claims_cli}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
RANDOM_BYTES = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
OTHER_SCHEMA = b"a,b\n1,2\n"
DIGITS_KERAS = model_file_bytes()  # a digits-shaped MLP ending in a softmax, as model.save writes it
CUSTOM_KERAS = model_file_bytes(custom_module="lab_layers.gates")  # names a layer class of a module that is not there
EMPTY_ZIP = b"PK\x05\x06" + bytes(18)  # a valid zip archive holding nothing

CASES = [
    # measures and their options
    ("harness", ["--measures", "obd:foo=1"],
     "Unknown option(s) ['foo'] of measure 'obd'; available: ['hessian', 'samples', 'max_params']", 2),
    ("harness", ["--measures", "fisher:kind=true,kind=empirical"], "Measure option 'kind' is given twice", 2),
    ("harness", ["--measures", "fishr"], "Unknown measure 'fishr'; available: ['fisher', ", 2),
    ("harness", ["--measures", "obd:hessian=diag"],
     "Measure 'obd': hessian must be one of ['ggn', 'hutchinson', 'exact']. Received: hessian='diag'", 2),
    ("harness", ["--measures", "obd:samples"], "Measure options are written name:key=value", 2),
    ("harness", ["--measures", "magnitude:foo=1"], "Measure 'magnitude' takes no options. Received: 'magnitude:foo=1'", 2),
    ("harness", ["--measures", "random", "random"], "measures has duplicates", 2),
    ('harness', 'measures = "fisher"\n', "measures must be a non-empty list of strings. Received: measures='fisher'", 2),
    ("harness", "measures = [1]\n", "measures must be a list of strings. Received: measures=[1]", 2),
    # the grid
    ("harness", ["--task", "cifar100"], "Unknown task 'cifar100'; available: ['cifar10', 'digits', 'mnist']", 2),
    ("harness", 'task = ["digits"]\n', "task must be a task name. Received: task=['digits']; available: [", 2),
    ("harness", ["--model", "resnet"], "Unknown model for task 'digits' 'resnet'; available: ['mlp', 'vit']", 2),
    ("harness", ["--aggregations", "neuron"],
     "Unknown aggregation 'neuron'; available: ['filter', 'head', 'unit', 'weight']", 2),
    ("harness", ["--aggregations", "unit:direction=sideways"],
     "Aggregation 'unit': direction must be one of ['in', 'out', 'group']. Received: direction='sideways'", 2),
    ("harness", ["--aggregations", "filter:direction=OUT"], "Aggregation 'filter': direction must be one of ['in',", 2),
    ("harness", ["--aggregations", "weight:direction=out"],
     "Aggregation 'weight' takes no options. Received: 'weight:direction=out'", 2),
    ("harness", ["--aggregations", "unit:dir=out"], "Unknown option(s) ['dir'] of aggregation 'unit'; available: ['dir", 2),
    ("harness", ["--aggregations", "unit:direction"], "Aggregation options are written name:key=value", 2),
    ("harness", ["--aggregations", "unit", "unit:direction=in"], "aggregations has duplicates", 2),
    ("harness", ["--structured-bn", "drop"], "Unknown structured_bn 'drop'; available: ['zero', 'keep']", 2),
    ("harness", "structured_bn = 0\n", "Unknown structured_bn 0; available: ['zero', 'keep']. Received: structured_bn=0", 2),
    ("harness", ["--poolings", "median"], "Unknown pooling 'median'; available: ['mean', 'sum', 'max', 'min', 'l2']", 2),
    ("harness", ["--scopes", "model"], "Unknown scope 'model'; available: ['layer', 'global', 'output']", 2),
    ("harness", ["--scopes", "global", "--normalizations", "z"],
     "Unknown normalization 'z'; available: ['none', 'mean', 'max', 'lamp']", 2),
    ("harness", ["--normalizations", "max"], "normalizations apply to global scope only", 2),
    ("harness", ["--measures", "grasp", "--scopes", "global", "--normalizations", "lamp"],
     "normalization 'lamp' squares item scores and needs non-negative ones; measures ['grasp']", 2),
    ("harness", ["--scopes", "output", "--aggregations", "unit"], "scope 'output' ranks single weights", 2),
    ("harness", ["--measures", "taylor:accumulation=epoch"], "accumulation must be one of ['batch', 'example']", 2),
    ("harness", ["--measures", "update_tally:groups=2"], "Measure 'update_tally': groups must be a list of at least two "
     "non-empty lists of class ids >= 0, e.g. [[1, 7], [6, 8]]. Received: groups=2", 2),
    ("harness", ["--measures", "update_tally:target=1"],
     "Measure 'update_tally': target needs groups. Received: target=1, groups=None", 2),
    ("harness", ["--measures", "update_tally:groups=[[1,12],[3]]"], "names classes [12] that task 'digits' does not", 2),
    ("harness", ["--orders", "sideways"], "Unknown order 'sideways'; available: ['least', 'most']", 2),
    ("harness", ["--orders", "least", "most", "--threshold-rule", "legacy_cutoff"],
     "threshold_rule 'legacy_cutoff' (score < cutoff) removes the least important first only", 2),
    # classes: importance from a subset, per-class rows, forgetting
    ("harness", ["--importance-classes", "12"], "importance_classes names classes [12] that task 'digits' does not "
     "have; valid classes: 0..9. Received: importance_classes=[12]", 2),
    ("harness", "importance_classes = []\n", "importance_classes must be a non-empty list of class ids. "
     "Received: importance_classes=[]", 2),
    ("harness", ["--importance-classes", "3", "3"], "importance_classes has duplicates. Received: importance_classes=[3, 3]",
     2),
    ("harness", ["--importance-classes", "x"], "argument --importance-classes: invalid int value: 'x'", 2),
    ("harness", 'per_class = "yes"\n', "per_class must be true or false. Received: per_class='yes'", 2),
    ("harness", ["--forget-classes", "-1"], "forget_classes names classes [-1] that task 'digits' does not have; "
     "valid classes: 0..9", 2),
    ("harness", "forget_classes = []\n", "forget_classes must be a non-empty list of class ids. Received: "
     "forget_classes=[]", 2),
    ("harness", ["--forget-classes", *"0123456789"], "forget_classes must leave at least one other class", 2),
    ("harness", ["--contrast", "ratio"], "contrast applies to forgetting runs only; set forget_classes too", 2),
    ("harness", ["--forget-classes", "7", "--contrast", "odds"], "Unknown contrast 'odds'; available: ['ratio', "
     "'difference']", 2),
    ("harness", ["--forget-classes", "7", "--measures", "grasp"], "contrast 'ratio' divides importances and needs "
     "non-negative ones; measures ['grasp']", 2),
    ("harness", ["--forget-classes", "7", "--importance-classes", "7"], "a forgetting run draws its own samples", 2),
    ("harness", "forget_classes = [7]\nper_class = false\n", "a forgetting run records per-class rows; per_class "
     "must be true", 2),
    ("harness", ["--forget-classes", "7", "--measures", "update_tally:groups=[[1,7],[6,8]]"],
     "in a forgetting run its target group must be the forget set. Received: forget_classes=[7]", 2),
    ("harness", ["--forget-classes", "7", "--contrast", "difference", "--scopes", "global", "--normalizations", "lamp"],
     "contrast 'difference' gives signed scores", 2),
    ("harness", ["--controls", "random"], "Unknown control 'random'; available: ['random_matched', 'shuffled']", 2),
    ("harness", ["--controls", "shuffled", "shuffled"], "controls has duplicates", 2),
    ("harness", 'controls = "shuffled"\n',
     "controls must be a list of strings (may be empty). Received: controls='shuffled'", 2),
    ("harness", "controls = [true]\n", "controls must be a list of strings. Received: controls=[True]", 2),
    ("harness", ["--recoveries", "retrain"], "Unknown recovery 'retrain'; available: ['none', 'bn', 'finetune']", 2),
    ("harness", ["--recoveries", "finetune"], "recovery 'finetune' needs steps=k, a positive integer (e.g. finetune:"
     "steps=50). Received: recovery='finetune'", 2),
    ("harness", ["--recoveries", "finetune:steps=0"], "steps must be a positive integer. Received: "
     "recovery='finetune:steps=0'", 2),
    ("harness", ["--recoveries", "finetune:steps=-5"], "Received: recovery='finetune:steps=-5'", 2),
    ("harness", ["--recoveries", "finetune:steps=2.5"], "Received: recovery='finetune:steps=2.5'", 2),
    ("harness", ["--recoveries", "finetune:lr=1,steps=5"], "Bad option 'lr=1' of recovery 'finetune'; options: "
     "['steps']", 2),
    ("harness", ["--recoveries", "finetune:steps=5,steps=6"], "Bad option 'steps=6' of recovery 'finetune'", 2),
    ("harness", ["--recoveries", "bn:steps=5"], "Bad option 'steps=5' of recovery 'bn'; options: ['batches']", 2),
    ("harness", ["--recoveries", "bn:batches"], "Bad option 'batches' of recovery 'bn'", 2),
    ("harness", ["--recoveries", "none:steps=1"], "Bad option 'steps=1' of recovery 'none'; options: []", 2),
    ("harness", ["--recoveries", "finetune:steps=5", "finetune:steps=05"], "recoveries has duplicates. Received: "
     "recoveries=['finetune:steps=5', 'finetune:steps=5']", 2),
    ("harness", "recoveries = [1]\n", "recoveries must be a list of strings. Received: recoveries=[1]", 2),
    ("harness", "recoveries = []\n", "recoveries must be a non-empty list of strings. Received: recoveries=[]", 2),
    # refused by the check before TensorFlow (harness.cli.inputs), which reads recoveries before the task's name
    ("harness", ["--task", "nosuch", "--recoveries", "bn:batches=0"], "batches must be a positive integer. Received: "
     "recovery='bn:batches=0'", 2),
    ("harness", ["--threshold-rule", "floor"], "Unknown threshold_rule 'floor'; available: ['exact', 'legacy_cutoff']", 2),
    ("harness", ["--replacements", "noise"], "Unknown replacement 'noise'; available: ['zero', 'random']", 2),
    ("harness", ["--prunable", "weights"],
     "Unknown prunable 'weights'; available: ['kernels', 'kernels+biases', 'all', 'hidden-kernels']",
     2),
    ("harness", ["--thresholds", "0", "1.5"], "thresholds must lie in [0, 1]. Received: thresholds=[0.0, 1.5]", 2),
    ("harness", ["--thresholds", "nan"], "thresholds must lie in [0, 1]. Received: thresholds=[nan]", 2),
    ("harness", 'thresholds = ["0", "0.5"]\n', "thresholds must be a list of numbers. Received: thresholds=['0', '0.5']",
     2),
    # numbers
    ("harness", ["--learning-rate", "inf"], "learning_rate must be a finite number > 0. Received: learning_rate=inf", 2),
    ("harness", ["--learning-rate", "nan"], "learning_rate must be a finite number > 0. Received: learning_rate=nan", 2),
    ("harness", ["--learning-rate", "0"], "Received: learning_rate=0.0", 2),
    ("harness", ["--seed", "-1"], "seed must be an integer in [0, 4294967295]. Received: seed=-1", 2),
    ("harness", ["--seed", str(2**64)], f"seed must be an integer in [0, 4294967295]. Received: seed={2**64}", 2),
    ("harness", ["--seed", "2**64"], "argument --seed: invalid int value: '2**64'", 2),
    ("harness", "seed = true\n", "seed must be an integer in [0, 4294967295]. Received: seed=True", 2),
    ("harness", ["--epochs", "0"], "epochs must be a positive integer. Received: epochs=0", 2),
    ("harness", ["--epochs", "x"], "argument --epochs: invalid int value: 'x'", 2),
    # a model from a file
    ("harness", ["--model-file", "{tmp}/none.keras"],
     "model_file does not exist or is not a file. Received: model_file='{tmp}/none.keras'", 2),
    ("harness", ["--model-file", "{tmp}/m.h5"], "model_file must be a .keras file", 2, {"m.h5": RANDOM_BYTES}),
    ("harness", ["--model-file", "{tmp}/bad.keras"], "model_file is not a Keras 3 .keras archive (not a zip file)", 2,
     {"bad.keras": RANDOM_BYTES}),
    ("harness", ["--model-file", "{tmp}/e.keras"], "model_file could not be loaded (", 2, {"e.keras": EMPTY_ZIP}),
    ("harness", ["--task", "mnist", "--model-file", "{tmp}/m.keras"],
     "model_file's input shape (64,) does not match task 'mnist', whose examples have shape (28, 28, 1)", 2,
     {"m.keras": DIGITS_KERAS}),
    ("harness", ["--model-file", "{tmp}/c.keras"],
     "model_file uses custom objects that cannot be imported: ['lab_layers.gates.GatedDense']", 2,
     {"c.keras": CUSTOM_KERAS}),
    ("harness", ["--model-file", "{tmp}/m.keras", "--epochs", "0", "--measures", "si", "magnitude"],
     "the training-time measures ['si'] observe training steps and are refused", 2, {"m.keras": DIGITS_KERAS}),
    ("harness", ["--model-file", "{tmp}/m.keras", "--epochs", "0", "--sweep-epochs", "1"],
     "with epochs 0 the only sweep is of the given weights; sweep_epochs must be 'all'", 2, {"m.keras": DIGITS_KERAS}),
    ("harness", ["--model", "mlp", "--model-file", "{tmp}/m.keras"], "model and model_file are exclusive", 2,
     {"m.keras": DIGITS_KERAS}),
    ("harness", ["--model-file", "{tmp}/m.keras", "--epochs", "-1"], "epochs must be a positive integer", 2,
     {"m.keras": DIGITS_KERAS}),
    # a measure that cannot score the model (refused before the data load)
    ("harness", ["--model", "vit", "--measures", "magnitude", "synflow"],
     "measure 'synflow' cannot score model 'vit': synflow supports layers", 2),
    ("harness", ["--batch-size", "-3"], "batch_size must be a positive integer. Received: batch_size=-3", 2),
    ("harness", ["--importance-samples", "0"], "importance_samples must be a positive integer", 2),
    ("harness", ["--keep-checkpoints", "0"], "keep_checkpoints must be a positive integer. Received: keep_checkpoints=0",
     2),
    ("harness", ["--divergence-factor", "1"], "divergence_factor must be a number > 1 (inf: never stop on this rule). "
     "Received: divergence_factor=1.0", 2),
    ("harness", ["--divergence-factor", "nan"], "Received: divergence_factor=nan", 2),
    # booleans given as text or numbers
    ("harness", 'deterministic = "yes"\n', "deterministic must be true or false. Received: deterministic='yes'", 2),
    ("harness", "resume = 1\n", "resume must be true or false. Received: resume=1", 2),
    ("harness", 'deterministic = "false"\n', "deterministic must be true or false. Received: deterministic='false'", 2),
    # the config file
    ("harness", "task = digits\n", "exp.toml is not valid TOML: Invalid value (at line 1, column 8)", 2),
    ("harness", b"task = \"\xff\xfe\"\n", "exp.toml is not valid TOML", 2),
    ("harness", 'tsak = "digits"\n', "Unknown setting(s) ['tsak'] in ", 2),
    ("harness", ["--config", "{tmp}/missing.toml"], "Cannot read the config file {tmp}/missing.toml: No such file", 2),
    ("harness", ["--bogus"], "unrecognized arguments: --bogus", 2),
    # paths
    ("harness", ["--data-dir", "{tmp}"], "Task 'digits' reads no data folder; remove data_dir. Received: data_dir=", 2),
    ("harness", ["--output", "{tmp}/image.png"], "{tmp}/image.png is not a UTF-8 text CSV", 2, {"image.png": PNG}),
    ("harness", ["--output", "{tmp}/noise.csv"], "{tmp}/noise.csv is not a UTF-8 text CSV", 2,
     {"noise.csv": RANDOM_BYTES}),
    ("harness", ["--output", "{tmp}/tail.csv"], "{tmp}/tail.csv is not a UTF-8 text CSV", 2,
     {"tail.csv": results.format_rows([], header=True).encode() + RANDOM_BYTES}),
    ("harness", ["--output", "{tmp}/nul.csv"], "{tmp}/nul.csv is not a UTF-8 text CSV (a NUL byte at", 2,
     {"nul.csv": results.format_rows([], header=True).encode() + b"run\0"}),
    ("harness", ["--output", "{tmp}/other.csv"], "{tmp}/other.csv has other columns than this harness writes", 2,
     {"other.csv": OTHER_SCHEMA}),
    ("harness", ["--output", "{tmp}"], "{tmp} is a folder; the output must be a CSV file path", 2),
    ("harness", ["--output", "{tmp}/blocked/r.csv"], "Cannot write beside {tmp}/blocked/r.csv", 2,
     {"blocked": b"a file where a folder should be"}),
    ("harness", ["--output", "{tmp}/read-only/r.csv"], "Cannot write beside {tmp}/read-only/r.csv: Permission denied",
     2, {"read-only/": b""}),
    # studies (python -m harness with a study option): refused before Ray starts
    ("study", ["--seeds", "0-x"], "seeds must look like 0-9 or 0,3,5 or 0-4,10-14. Received: seeds='0-x'", 2),
    ("study", ["--seeds", "0-2", "--seed", "4"], "give --seed or --seeds, not both", 2),
    ("study", ["--seeds", "0-1", "--name", "a/b"], "name must be one folder name (no '/'). Received: name='a/b'", 2),
    ("study", ["--seeds", "0-1", "--scopes", "sideways"],
     "Unknown scope 'sideways'; available: ['layer', 'global', 'output']", 2),
    ("study", ["--seeds", "0-1", "--recoveries", "bn:batches=0"], "batches must be a positive integer", 2),
    ("study", ["--workers", "2", "--max-retries", "-2"], "Received: max_retries=-2", 2),
    ("study", ["--seeds", "0-1", "--workers", "0"], "workers must be a positive integer. Received: workers=0", 2),
    ("study", 'epochs = 1\n[grid]\nseed = [0, 1]\n[study]\ndashboard = "yes"\n',
     "dashboard must be true or false. Received: dashboard='yes'", 2),
    # analysis.py
    ("analysis", ["{tmp}/nothing.csv"], "No file matches '{tmp}/nothing.csv'", 2),
    ("analysis", ["{tmp}/empty"], "No result CSVs in folder {tmp}/empty", 2),
    ("analysis", ["{tmp}/image.png"], "{tmp}/image.png is not a result CSV: not UTF-8 text", 2),
    ("analysis", ["{tmp}/random.csv"], "{tmp}/random.csv is not a result CSV", 2),
    ("analysis", ["{tmp}/empty.csv"], "{tmp}/empty.csv has no rows", 2),
    ("analysis", ["{tmp}/columns.csv"], "{tmp}/columns.csv is missing columns ['val_loss']", 2),
    ("analysis", ["{tmp}/text.csv"], "column 'val_loss' holds a non-number on line 2: 'high'", 2),
    ("analysis", ["{tmp}/meta/good.csv"], "good.r0.json is not a run's metadata JSON", 2),
    ("analysis", ["{tmp}/good.csv", "{tmp}/copy.csv"], "result keys appear more than once", 2),
    ("analysis", ["{tmp}/forget/good.csv"], "holds forgetting runs ['r0'] but their per-class CSV "
     "{tmp}/forget/good.per_class.csv is missing", 2),
    ("analysis", ["{tmp}/only.per_class.csv"], "matches only per-class companion CSVs (*.per_class.csv)", 2),
    ("analysis", ["{tmp}/nan.csv"], "Nothing can be ranked at the ranked epochs", 2),
    ("analysis", ["{tmp}/good.csv", "{tmp}/rerun.csv"], "Seed 0 appears in runs ['r0', 'x0']", 2),
    ("analysis", ["{tmp}/good.csv", "--out", "{tmp}/good.csv"], "Cannot write output folder {tmp}/good.csv: Not a "
     "directory ({tmp}/good.csv). Choose another path.", 2),
    ("analysis", ["{tmp}/no.csv", "--epoch", "first"], "epoch must be 'last' or a list of epoch", 2),
    ("analysis", ["{tmp}/no.csv", "--epoch", "-1"], "Received: epoch=['-1']", 2),
    ("analysis", ["{tmp}/good.csv", "--epoch", "7"], "Epochs [7] are not in the results", 2),
    ("analysis", ["{tmp}/good.csv", "--epochs", "7"], "available: [1, 2]. Received: [7]", 2),
    ("analysis", ["{tmp}/no.csv", "--compare", "measure,x"], "compare takes distinct columns", 2),
    ("analysis", ["{tmp}/no.csv", "--compare", "scope,scope"], "Received: compare=['scope', 'sc", 2),
    ("analysis", ["{tmp}/good.csv", "--compare", "order"], "compare columns ['order'] are not", 2),
    ("analysis", ["{tmp}/good.csv", "--compare", "recovery"], "compare columns ['recovery'] are not", 2),
    ("analysis", ["{tmp}/no.csv", "--alpha", "1.5"], "alpha must lie in (0, 1). Received: alpha=1.5", 2),
    ("analysis", ["{tmp}/no.csv", "--loss-tol", "-1"], "Tolerances must be >= 0", 2),
    ("analysis", ["{tmp}/good.csv", "--format", "jpg"], "invalid choice: 'jpg'", 2),
    ("analysis", ["{tmp}/good.csv", "--interval", "z"], "invalid choice: 'z'", 2),
    # types of every TOML key and table, sizes with their limit, messages naming the option or file
    ("harness", "grid = [1, 2]\n", "grid in {tmp}/exp.toml must be a table ([grid] and its keys). Received: grid=[1, 2]",
     2),
    ("harness", 'grid = ""\n', "grid in {tmp}/exp.toml must be a table ([grid] and its keys). Received: grid=''", 2),
    ("harness", 'study = ""\n', "study in {tmp}/exp.toml must be a table ([study] and its keys). Received: study=''",
     2),
    ("harness", "[study]\nstorage = 5\n", "storage must be a folder path. Received: storage=5", 2),
    ("harness", "[grid]\nseed = 3\n", "grid axis 'seed' must be a non-empty list of values. Received: seed=3", 2),
    ("harness", "[grid]\nepochs = [1, 0]\n", "epochs must be a positive integer. Received: epochs=0", 2),
    ("harness", "[grid]\nsead = [1]\n", "Unknown grid axis 'sead' in {tmp}/exp.toml", 2),
    ("harness", 'model = ""\n', "Unknown model for task 'digits' ''; available: ['mlp', 'vit']", 2),
    ("harness", "model = 3\n", "model must be a name. Received: model=3", 2),
    ("harness", "epochs = 9223372036854775807\n",
     "epochs must be at most 100000. Received: epochs=9223372036854775807", 2),
    ("harness", ["--epochs", "1000000000000"], "epochs must be at most 100000. Received: epochs=1000000000000", 2),
    ("harness", ["--batch-size", str(2**40)], f"batch_size must be at most {2**31 - 1}. Received: batch_size={2**40}",
     2),
    ("harness", "thresholds = [" + ", ".join(str(i / 20000) for i in range(10002)) + "]\n",
     "thresholds may hold at most 10001 values. Received: 10002 thresholds", 2),
    ("harness", "learning_rate = \"0.1\"\n", "learning_rate must be a finite number > 0. Received: learning_rate='0.1'",
     2),
    ("harness", "data_dir = 5\n", "data_dir must be a path. Received: data_dir=5", 2),
    ("harness", "sweep_epochs = [1, true]\n", "sweep_epochs must be 'all', 'every:N' or a list of epochs", 2),
    ("harness", ["--sweep-epochs", "²"], "Received: sweep_epochs='²'", 2),
    ("harness", ["--sweep-epochs", "1", "²"], "Received: sweep_epochs=['1', '²']", 2),
    ("harness", ["--measures", ":kind=true"], "A measure spec needs the measure's name before ':' (e.g. fisher:kind="
     "true). Received: measures=[':kind=true']", 2),
    ("harness", ["--output", "/proc/r.csv"], "Cannot write beside /proc/r.csv", 2),
    ("harness", ["--output", "{tmp}/ragged.csv"], "{tmp}/ragged.csv cannot be read as a CSV (Error tokenizing data", 2,
     {"ragged.csv": results.format_rows([], header=True).encode() + b"a,b\n" + b"1," * 30 + b"\n"}),
    ("harness", ["--output", "{tmp}/epochs.csv"], "{tmp}/epochs.csv line 2 has epoch 'x', not a whole number", 2,
     {"epochs.csv": results.format_rows([dict.fromkeys(results.COLUMNS, "x") | dict(run_id="r")], header=True).encode()}),
    # studies: seeds, engine settings, storage, address, study.json
    ("study", ["--seeds", "0-5000000000"], "seeds must lie in [0, 4294967295]. Received: seeds='0-5000000000'", 2),
    ("study", ["--seeds", "0-100000"], "seeds name more than 100000 trials", 2),
    ("study", ["--seeds", "0-²"], "seeds must look like 0-9", 2),
    ("study", ["--seeds", "0-1", "--gpus-per-trial", "nan"], "Received: gpus_per_trial=nan", 2),
    ("study", ["--seeds", "0-1", "--gpus-per-trial", "inf"], "Received: gpus_per_trial=inf", 2),
    ("study", ["--seeds", "0-1", "--address", "nowhere"],
     "address must be 'auto', host:port or ray://host:port. Received: address='nowhere'", 2),
    ("study", ["--seeds", "0-1", "--measures", "magnitude", "--address", "ray://127.0.0.1:1"],
     "Cannot reach the Ray cluster at ray://127.0.0.1:1 within 3 s", 2),
    ("harness", ["--seeds", "0-1", "--storage", "{tmp}/blocked/s"], "Cannot write to storage {tmp}/blocked/s", 2,
     {"blocked": b"a file where a folder should be"}),
    ("study", ["--seeds", "0-1", "--measures", "magnitude", "--name", "s"],
     "{tmp}/s/study.json is not a study record (no study_id)", 2, {"s/study.json": b"{}"}),
    ("study", ["--seeds", "0-1", "--measures", "magnitude", "--name", "s"],
     "{tmp}/s/study.json is not a study record (a JSON list, not an object)", 2, {"s/study.json": b"[]"}),
    ("study", ["--seeds", "0-1", "--measures", "magnitude", "--name", "s"],
     "{tmp}/s/study.json is unreadable (Expecting value", 2, {"s/study.json": b"{\"study_id\": "}),
    # options and facts declared on the plugin classes, checked before TensorFlow is imported
    ("harness", ["--measures", "fisher:kind=x"],
     "Measure 'fisher': kind must be one of ['empirical', 'true']. Received: kind='x'", 2),
    ("harness", ["--measures", "wanda:norm=l1"], "Measure 'wanda': norm must be one of ['rms', 'l2']. Received: norm='l1'",
     2),
    ("harness", ["--measures", "obd:samples=0"],
     "Measure 'obd': samples must be a positive integer. Received: samples=0", 2),
    ("harness", 'measures = ["obd:max_params=2.5"]\n',
     "Measure 'obd': max_params must be a positive integer. Received: max_params=2.5", 2),
    ("harness", ["--measures", "taylor:batch_size=true"],
     "Measure 'taylor': batch_size must be a positive integer. Received: batch_size='true'", 2),
    ("harness", ["--measures", "si:xi=0"], "Measure 'si': xi must be a finite number > 0. Received: xi=0", 2),
    ("harness", ["--measures", "si:xi=nan"], "Measure 'si': xi must be a finite number > 0. Received: xi=nan", 2),
    ("harness", ["--measures", "si:groups=[[1],[2]],target=3"],
     "Measure 'si': target must be a group index in 0..1. Received: target=3", 2),
    ("harness", ["--measures", "update_tally:groups=[[1,2],[2,3]]"],
     "Measure 'update_tally': groups must be disjoint; class(es) [2] appear more than once", 2),
    ("harness", ["--measures", "si:groups=[[1,12],[3]]"], "Measure 'si:groups=[[1,12],[3]]' names classes [12]", 2),
    ("harness", ["--measures", "weight_change:groups=[[1],[2]]"],
     "Measure 'weight_change' takes no options. Received: 'weight_change:groups=[[1],[2]]'", 2),
    ("harness", ["--measures", "obd:hessian=exact", "magnitude", "--scopes", "global", "--normalizations", "lamp"],
     "needs non-negative ones; measures ['obd:hessian=exact'] give signed scores", 2),
    ("harness", ["--scopes", "global", "--normalizations", "lamp"],
     "needs non-negative ones; measures ['grasp'] give signed scores", 2),
    ("harness", ["--forget-classes", "7", "--measures", "magnitude", "obd:hessian=hutchinson"],
     "contrast 'ratio' divides importances and needs non-negative ones; measures ['obd:hessian=hutchinson']", 2),
    ("harness", ["--forget-classes", "7", "--measures", "si:groups=[[7],[1]],target=1"],
     "Measure 'si:groups=[[7],[1]],target=1' scores the share of group [1]; in a forgetting run", 2),
    ("harness", ["--scopes", "output", "--aggregations", "unit:direction=out", "filter:direction=in"],
     "applies to per-weight aggregations only (e.g. 'weight'). Received: aggregations=['unit:direction=out', 'filter']",
     2),
    ("harness", ["--aggregations", "unit:direction=1"],
     "Aggregation 'unit': direction must be one of ['in', 'out', 'group']. Received: direction=1", 2),
    ("harness", ["--aggregations", "head:heads=2"], "Aggregation 'head' takes no options. Received: 'head:heads=2'", 2),
    ("harness", ["--model-file", "{tmp}/m.keras", "--epochs", "0", "--measures", "momentum"],
     "the training-time measures ['momentum'] observe training steps and are refused", 2, {"m.keras": DIGITS_KERAS}),
    ("study", ["--seeds", "0-1", "--measures", "fisher:kind=x"], "Measure 'fisher': kind must be one of", 2),
    ("study", ["--seeds", "0-1", "--recoveries", "bn", "bn:batches=20"],
     "recoveries has duplicates. Received: recoveries=['bn', 'bn']", 2),
    # python -m harness.experiments.localize
    ("localize", ["--learning-rate", "inf"], "learning_rate must be a finite number > 0. Received: learning_rate=inf", 2),
    ("localize", ["--groups", "null"], "groups must be JSON such as [[1,7],[6,8]]. Received: 'null'", 2),
    ("localize", ["--task", "digits", "--data-dir", "{tmp}/missing"],
     "Task 'digits' reads no data folder; remove data_dir. Received: data_dir=", 2),
    ("localize", ["--hidden", str(10**10)], "hidden must be at most 100000. Received: hidden=10000000000", 2),
    ("localize", "task = digits\n", "exp.toml is not valid TOML: Invalid value (at line 1, column 8)", 2),
    # python -m harness.experiments.localize (seed 002)
    ("localize", ["--output-layer", "tanh"], "Unknown output_layer 'tanh'; available: ['softmax', 'sigmoid', 'softplus']",
     2),
    ("localize", ["--fork-passes", "0"], "fork_passes must be a positive integer. Received: fork_passes=0", 2),
    # python -m reports.claims (the claims ledger)
    ("claims", ["{tmp}/none.toml"], "cannot read the claims ledger {tmp}/none.toml", 2),
    ("claims", ["{tmp}/ledger.toml"], "verdict must be one of ['supported', 'not supported', 'inconclusive']. "
     "Received: verdict='maybe'", 2, {"ledger.toml": b'[[claim]]\nid = "x"\nkind = "ranking"\nverdict = "maybe"\n'}),
    ("claims", ["{tmp}/ledger.toml"], "no [[claim]] table in {tmp}/ledger.toml", 2, {"ledger.toml": b"x = 1\n"}),
]


def case_id(case) -> str:
    args = case[1] if isinstance(case[1], list) else [f"toml:{case[1]!r}"]
    return f"{case[0]} " + " ".join(args)[:60]


def tier(case) -> pytest.param:
    """Rows of the lighter entry points and the harness's TOML rows run in the quick tier; the rest are slow."""
    quick = case[0] in ("analysis", "localize", "claims") or (case[0] == "harness" and not isinstance(case[1], list))
    return pytest.param(case, id=case_id(case), marks=[] if quick else [pytest.mark.slow])


@pytest.fixture
def no_data_loading(monkeypatch):
    def refuse(self, data_dir=None):
        raise AssertionError("data were loaded")

    for name in TASKS.names():
        monkeypatch.setattr(TASKS.get(name), "load", refuse)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def analysis_frame(run_id: str = "r0", seed: int = 0) -> pd.DataFrame:
    """A small valid result: three measures, two epochs, five thresholds."""
    t = np.linspace(0, 1, 5)
    parts = [
        pd.DataFrame({"run_id": run_id, "task": "digits", "model": "mlp", "seed": seed, "epoch": epoch, "measure": m,
                      "aggregation": "weight", "pooling": "none", "scope": "layer", "normalization": "none",
                      "replacement": "zero", "threshold": t, "sparsity": t, "n_replaced": (t * 10).astype(int),
                      "val_loss": 0.3 + k * t, "val_accuracy": 0.9 - 0.1 * k * t, "measure_seconds": 0.1,
                      "sweep_seconds": 0.1})
        for k, m in enumerate(["magnitude", "obd", "random"], start=1) for epoch in (1, 2)
    ]  # fmt: skip
    return pd.concat(parts)[analysis.COLUMNS]


def analysis_inputs(tmp: Path) -> None:
    """Every input file the analysis cases name."""
    good = analysis_frame()
    good.to_csv(tmp / "good.csv", index=False)
    good.to_csv(tmp / "copy.csv", index=False)
    analysis_frame("x0").to_csv(tmp / "rerun.csv", index=False)
    good.assign(val_loss=np.nan).to_csv(tmp / "nan.csv", index=False)
    good.drop(columns="val_loss").to_csv(tmp / "columns.csv", index=False)
    good.astype({"val_loss": object}).assign(val_loss="high").to_csv(tmp / "text.csv", index=False)
    (tmp / "empty.csv").write_text("")
    (tmp / "empty").mkdir()
    (tmp / "image.png").write_bytes(PNG)
    (tmp / "random.csv").write_bytes(RANDOM_BYTES)
    (tmp / "meta").mkdir()
    good.to_csv(tmp / "meta" / "good.csv", index=False)
    (tmp / "meta" / "good.r0.json").write_text('{"num_classes": 10, "config": {"seed"')
    (tmp / "forget").mkdir()
    good.to_csv(tmp / "forget" / "good.csv", index=False)
    (tmp / "forget" / "good.r0.json").write_text('{"num_classes": 10, "config": {"forget_classes": [1]}}')
    good.to_csv(tmp / "only.per_class.csv", index=False)


def prepare(tmp: Path, files: dict) -> None:
    """An existing result CSV of another run, its metadata, and the case's own files."""
    row = dict.fromkeys(results.COLUMNS, 0) | dict(run_id="other", task="digits", model="mlp", measure="magnitude")
    results.append_rows(tmp / "results.csv", [row])
    results.write_metadata(tmp / "results.other.json", {"run_id": "other", "config": {}})
    for name, content in files.items():
        if name.endswith("/"):
            (tmp / name).mkdir()
            (tmp / name).chmod(0o555)
        else:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(content)


@pytest.mark.parametrize("case", [tier(case) for case in CASES])
def test_bad_input_is_refused_in_one_line_before_anything_is_loaded_or_written(case, tmp_path, capsys, monkeypatch,
                                                                               no_data_loading):
    entry, args, message, status, *files = case
    files = files[0] if files else {}
    if any(name.endswith("/") for name in files) and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    prepare(tmp_path, files)
    if entry == "analysis":
        analysis_inputs(tmp_path)
    if entry == "study":  # bad input must be refused before the study engine or Ray is imported
        for module in ("ray", "harness.study.engine"):
            monkeypatch.setitem(sys.modules, module, None)
    if not isinstance(args, list):
        (tmp_path / "exp.toml").write_bytes(args.encode() if isinstance(args, str) else args)
        args = ["--config", "{tmp}/exp.toml"]
    before = snapshot(tmp_path)
    try:
        assert ENTRY_POINTS[entry]([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path) == status
    finally:
        for folder in tmp_path.iterdir():
            folder.chmod(0o755) if folder.is_dir() else None
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert message.replace("{tmp}", str(tmp_path)) in err.strip().splitlines()[-1]
    assert snapshot(tmp_path) == before


# Refusals before TensorFlow: every harness and study row is refused with TensorFlow, Keras and Ray unimportable,
# but the rows that must read a model (a .keras file, or a model built to ask a measure whether it can score it) or
# reach a Ray cluster.
NEEDS_TENSORFLOW = ("--model-file", "synflow", "ray://")
BLOCKED = """
import contextlib, io, json, sys, time
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    tried = False

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "ray"):
            Block.tried = True
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, Block())
from harness.cli.main import main

found = []
for argv in json.loads(sys.stdin.read()):
    Block.tried, err, start = False, io.StringIO(), time.perf_counter()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as error:
            code = f"{type(error).__name__}: {error}"
    found.append(dict(code=code, err=err.getvalue(), tensorflow=Block.tried, seconds=time.perf_counter() - start))
print(json.dumps(found))
"""


@pytest.mark.slow
def test_refusals_come_before_tensorflow_is_imported(tmp_path):
    import json
    import statistics
    import subprocess

    read_only = os.geteuid() == 0  # root writes into read-only folders: those rows are not refused
    rows = [case for case in CASES if case[0] in ("harness", "study")
            and not (read_only and any(name.endswith("/") for name in (case[4:] or [{}])[0]))]
    argvs, folders = [], []
    for i, (entry, args, _, _, *files) in enumerate(rows):
        folder = tmp_path / str(i)
        folder.mkdir()
        prepare(folder, files[0] if files else {})
        if not isinstance(args, list):
            (folder / "exp.toml").write_bytes(args.encode() if isinstance(args, str) else args)
            args = ["--config", "{tmp}/exp.toml"]
        args = [a.replace("{tmp}", str(folder)) for a in args]
        extra = ["--storage", str(folder), "--no-progress"] if entry == "study" else []
        argvs.append(["--output", str(folder / "results.csv"), "--no-progress", *args] if entry == "harness"
                     else [*args, *extra])
        folders.append((folder, snapshot(folder)))
    done = subprocess.run([sys.executable, "-c", BLOCKED], input=json.dumps(argvs), capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stderr
    results_ = json.loads(done.stdout)
    for folder, _ in folders:
        for path in folder.iterdir():
            path.chmod(0o755) if path.is_dir() else None
    heavy = {case_id(case) for case, result in zip(rows, results_) if result["tensorflow"]}
    allowed = {case_id(case) for case in rows if isinstance(case[1], list)
               and any(k in a for a in case[1] for k in NEEDS_TENSORFLOW)}
    assert heavy <= allowed, f"imported TensorFlow before refusing: {sorted(heavy - allowed)}"
    for case, result, (folder, before) in zip(rows, results_, folders):
        if result["tensorflow"]:
            continue
        last = result["err"].strip().splitlines()[-1]
        assert (result["code"], "Traceback" in result["err"]) == (case[3], False), (case_id(case), result)
        assert case[2].replace("{tmp}", str(folder)) in last, case_id(case)
        assert snapshot(folder) == before, case_id(case)
    assert statistics.median(r["seconds"] for r in results_) < 1
