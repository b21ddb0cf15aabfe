"""analysis.py input handling beyond the shared bad-input table (tests/test_bad_input.py): a read-only output folder
and a file named twice; refusals that need no data come before pandas, SciPy and matplotlib are imported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis


def _frame(run_id="r0", seed=0):
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



def test_read_only_out_folder_named_before_loading(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anyway: make the probe fail as a read-only folder would
        monkeypatch.setattr(analysis.tempfile, "TemporaryFile", _refuse)
    status = analysis.main([str(tmp_path / "not-read.csv"), "--out", str(locked / "figures")])
    err = capsys.readouterr().err
    assert status == 2 and err.strip() == (
        f"error: Cannot write output folder {locked / 'figures'}: Permission denied ({locked}). Choose another path."
    )
    assert not (locked / "figures").exists()


def _refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


@pytest.mark.slow
def test_same_file_twice_is_not_an_error(tmp_path, capsys):
    _frame().to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "good.r0.json").write_text(json.dumps({"num_classes": 10}))
    argv = [str(tmp_path / "good.csv"), str(tmp_path / "*.csv"), "--out", str(tmp_path / "fig"), "--format", "svg"]
    assert analysis.main(argv) == 0
    assert "no test is possible" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "fig" / "ranking.csv")["n_seeds"].eq(1).all()


# The analysis options' bad-input table: argv, the message (a substring of the one stderr line), the exit status
# (2: bad input, as for the harness).
# "{tmp}/no.csv" does not exist: options are refused before any file is read.
BAD_OPTIONS = [
    (["{tmp}/no.csv", "--metric", "loss"], "Unknown metric 'loss'; available: ['loss_auc', 'accuracy_auc'", 2),
    (["{tmp}/no.csv", "--metric", "accuracy_at:1.5"], "must be a number in [0, 1]. Received: metric='accuracy_at:1.5'", 2),
    (["{tmp}/no.csv", "--metric", "loss_at:-0.1"], "Received: metric='loss_at:-0.1'", 2),
    (["{tmp}/no.csv", "--metric", "accuracy_at:x"], "Received: metric='accuracy_at:x'", 2),
    (["{tmp}/no.csv", "--at", "0.5", "1.2"], "at takes sparsities in [0, 1]. Received: at=['0.5', '1.2']", 2),
    (["{tmp}/no.csv", "--at", "half"], "at takes sparsities in [0, 1]. Received: at=['half']", 2),
    (["{tmp}/no.csv", "--where", "scope"], "where takes column=value[,value], each column once. Received: where=['sc", 2),
    (["{tmp}/no.csv", "--compare", "colour"], "compare takes distinct columns among ['measure', 'model', 'task'", 2),
    (["{tmp}/no.csv", "--pairs", "obd"], "pairs take 'a:b' with two different treatments. Received: pairs=['obd']", 2),
    (["{tmp}/no.csv", "--pairs", "obd:obd"], "Received: pairs=['obd:obd']", 2),
    (["{tmp}/no.csv", "--control", "obd", "--pairs", "obd:random"], "Give control or pairs, not both", 2),
    (["{tmp}/good.csv", "--where", "colour=red"], "where column 'colour' is not in the results; available: ['task'", 2),
    (["{tmp}/good.csv", "--where", "scope=nowhere"], "where scope=nowhere: ['nowhere'] not in the results; scope takes "
                                                     "['layer']", 2),
    (["{tmp}/good.csv", "--compare", "recovery"], "compare columns ['recovery'] are not in the results", 2),
    (["{tmp}/good.csv", "--control", "nobody"], "Treatments ['nobody'] are not in the results (compare=measure); "
                                                "available: ['magnitude', 'obd', 'random']", 2),
    (["{tmp}/good.csv", "--pairs", "obd:nobody"], "Treatments ['nobody'] are not in the results", 2),
    (["{tmp}/good.csv", "--compare", "model", "--control", "obd"], "Treatments ['obd'] are not in the results "
                                                                   "(compare=model); available: ['mlp']", 2),
    (["{tmp}/short.csv", "--metric", "accuracy_at:0.9"], "sparsity 0.9 lies outside the measured sparsities [0, 0.5]", 2),
    (["{tmp}/short.csv", "--at", "0.9"], "accuracy_at:0.9: sparsity 0.9 lies outside", 2),
    (["{tmp}/good.csv", "--metric"], "expected at least one argument", 2),
    (["{tmp}/no.csv", "--classes", "0"], "classes must be an integer >= 2 (the chance line). Received: classes=0", 2),
    (["{tmp}/no.csv", "--sparsity-range", "0.9", "0.8"], "sparsity_range takes LO HI with 0 <= LO < HI <= 1", 2),
    (["{tmp}/negative.csv"], "negative.csv: column 'sparsity' must be finite and in [0, 1]; line 3 holds -5", 2),
    (["{tmp}/nan.csv"], "nan.csv: column 'threshold' must be finite and in [0, 1]; line 2 holds nan", 2),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("argv, message, status", BAD_OPTIONS, ids=[" ".join(c[0][1:]) for c in BAD_OPTIONS])
def test_bad_analysis_options_one_line_and_nothing_written(tmp_path, capsys, argv, message, status):
    _frame().to_csv(tmp_path / "good.csv", index=False)
    _frame().query("sparsity <= 0.5").to_csv(tmp_path / "short.csv", index=False)
    _frame().assign(sparsity=lambda d: np.where(np.arange(len(d)) == 1, -5.0, d.sparsity)).to_csv(
        tmp_path / "negative.csv", index=False)
    _frame().assign(threshold=lambda d: np.where(np.arange(len(d)) == 0, np.nan, d.threshold)).to_csv(
        tmp_path / "nan.csv", index=False)
    out = tmp_path / "figures"
    try:
        code = analysis.main([a.format(tmp=tmp_path) for a in argv] + ["--out", str(out)])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == status and message in err, err
    assert len(err.splitlines()) == 1 or "usage:" in err  # argparse's usage errors print the usage first
    assert not out.exists()


@pytest.mark.slow
def test_default_out_is_named_by_the_input_and_never_replaces_another_inputs_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    _frame().to_csv(tmp_path / "good.csv", index=False)
    _frame().assign(val_loss=lambda d: d.val_loss + 1).to_csv(tmp_path / "other" / "good.csv", index=False)
    assert analysis.main(["good.csv", "--format", "svg"]) == 0
    first = json.loads((tmp_path / "figures" / "good" / "inputs.json").read_text())
    assert first["inputs"] == ["../../good.csv"]  # relative to the folder
    before = (tmp_path / "figures" / "good" / "ranking.csv").read_bytes()
    assert analysis.main(["other/good.csv", "--format", "svg"]) == 0  # same stem, other input: a new folder
    assert (tmp_path / "figures" / "good" / "ranking.csv").read_bytes() == before
    assert json.loads((tmp_path / "figures" / "good-2" / "inputs.json").read_text())["inputs"] == [
        "../../other/good.csv"]
    assert analysis.main(["good.csv", "--format", "svg"]) == 0  # the same input again: its own folder
    assert not (tmp_path / "figures" / "good-3").exists()


@pytest.mark.slow
def test_explicit_out_holding_another_inputs_analysis_is_refused(tmp_path, capsys):
    _frame().to_csv(tmp_path / "a.csv", index=False)
    _frame().to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "fig"
    assert analysis.main([str(tmp_path / "a.csv"), "--out", str(out), "--format", "svg"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert analysis.main([str(tmp_path / "b.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"Output folder {out} holds the analysis of ['../a.csv']" in err and "Give another --out" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "notes.txt").write_text("mine")
    assert analysis.main([str(tmp_path / "a.csv"), "--out", str(tmp_path / "loose")]) == 2
    assert "holds files of no recorded analysis" in capsys.readouterr().err


def test_a_cut_off_last_line_is_dropped_and_its_sweep_excluded_visibly(tmp_path, capsys):
    path = tmp_path / "cut.csv"
    _frame().to_csv(path, index=False)
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind(",", 0, len(text) - 60)])  # cut inside the last row
    df = analysis.load(path)
    notices = df.attrs["notices"]
    assert notices[0].startswith(f"{path}: the last line is cut off") and "dropped" in notices[0]
    assert notices[1].startswith("1 incomplete sweeps (missing thresholds) excluded: run_id=r0, epoch=2, "
                                 "measure=random")
    assert len(df) == len(_frame()) - 5  # the cut sweep's 5 rows
    result = analysis.analyze(df)
    assert set(result["ranking"].query("epoch == 2")["treatment"]) == {"magnitude", "obd"}
    assert "Notice: " + notices[0] in analysis.format_report(result)


def test_rows_that_disagree_with_their_runs_metadata_refuse_the_run(tmp_path):
    frame = pd.concat([_frame("r0", 0), _frame("r1", 1)])
    frame.loc[(frame.run_id == "r1") & (frame.measure == "obd"), "task"] = "mnist"  # relabelled rows
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    for run, seed in (("r0", 0), ("r1", 1)):
        meta = {"num_classes": 10, "config": {"task": "digits", "model": "mlp", "seed": seed}}
        (tmp_path / f"mixed.{run}.json").write_text(json.dumps(meta))
    df = analysis.load(tmp_path / "mixed.csv")
    assert set(df["run_id"]) == {"r0"}
    (notice,) = df.attrs["notices"]
    assert "run r1 refused: line" in notice and "has task=mnist but the run's metadata says task=digits" in notice


@pytest.mark.slow
def test_non_finite_losses_are_named_before_ranking_and_never_ranked(tmp_path, capsys):
    frame = pd.concat([_frame("r0", 0), _frame("r1", 1), _frame("r2", 2)])
    cut = (frame.run_id == "r1") & (frame.measure == "obd") & (frame.epoch == 2) & (frame.threshold > 0.7)
    frame.loc[cut, "val_loss"] = np.inf  # loss_auc would be inf; tolerated_sparsity would stop before it
    frame.loc[(frame.run_id == "r0") & (frame.measure == "random") & (frame.threshold == 0), "val_accuracy"] = np.nan
    frame.to_csv(tmp_path / "nonfinite.csv", index=False)
    argv = [str(tmp_path / "nonfinite.csv"), "--out", str(tmp_path / "fig"), "--format", "svg"]
    assert analysis.main([*argv, "--metric", "loss_auc", "tolerated_sparsity", "accuracy_auc"]) == 0
    out = capsys.readouterr().out
    notice = ("4 rows with a non-finite val_loss or val_accuracy: 3 curves not ranked by any metric (excluded): "
              "run_id=r0, epoch=1, measure=random, aggregation=weight, pooling=none, scope=layer: thresholds [0] "
              "(val_accuracy nan); run_id=r0, epoch=2, measure=random")  # fmt: skip
    assert f"Notice: {notice}" in out and "measure=obd, aggregation=weight, pooling=none, scope=layer: thresholds " \
        "[0.75, 1] (val_loss inf)" in out
    assert notice in (tmp_path / "fig" / "ranking.md").read_text()
    excluded = pd.read_csv(tmp_path / "fig" / "excluded.csv")
    for metric in ("loss_auc", "tolerated_sparsity", "accuracy_auc"):  # every metric excludes both seeds by name
        rows = excluded[excluded.metric == metric].sort_values("seed")
        assert rows[["seed", "reason"]].values.tolist() == [[0, "non-finite scores for ['random']"],
                                                            [1, "non-finite scores for ['obd']"]], metric
    ranking = pd.read_csv(tmp_path / "fig" / "ranking.csv")
    assert ranking.groupby("epoch")["n_seeds"].unique().map(list).to_dict() == {1: [2], 2: [1]}  # seed 2 (and 1)
    assert np.isfinite(ranking["mean"]).all()


def test_non_finite_losses_make_every_metric_of_their_curve_nan():
    frame = pd.concat([_frame("r0", 0), _frame("r1", 1)]).assign(num_classes=np.nan)
    frame.loc[(frame.run_id == "r1") & (frame.measure == "obd") & (frame.threshold == 1), "val_loss"] = np.nan
    result = analysis.analyze(frame, metric=["tolerated_sparsity", "loss_at:0.5", "accuracy_auc"])
    (notice,) = result["notices"]
    assert notice.startswith("2 rows with a non-finite val_loss or val_accuracy: 2 curves not ranked by any metric")
    assert "run_id=r1, epoch=2, measure=obd, aggregation=weight, pooling=none, scope=layer: thresholds [1] " \
        "(val_loss nan)" in notice
    scores = result["scores"].set_index(["run_id", "epoch", "measure"])
    columns = ["auc", "tolerated_sparsity", "loss_at:0.5", "accuracy_auc"]
    assert scores.loc[("r1", 2, "obd"), columns].isna().all()
    assert np.isfinite(scores.drop(index=[("r1", 1, "obd"), ("r1", 2, "obd")])[columns].to_numpy(float)).all()
    for tables in result["metrics"].values():
        assert tables["excluded"][["seed", "reason"]].values.tolist() == [[1, "non-finite scores for ['obd']"]]
    assert f"Notice: {notice}" in analysis.format_report(result)


def test_a_run_without_accuracy_is_not_non_finite(tmp_path):
    frame = _frame().assign(val_accuracy=np.nan)  # a task without accuracy: the column is empty throughout
    result = analysis.analyze(frame.assign(num_classes=np.nan))
    assert result["notices"] == [] and result["excluded"].empty


SWEPT = {"task": "digits", "model": "mlp", "measures": ["magnitude", "obd", "random"], "aggregations": ["weight"],
         "poolings": ["mean"], "scopes": ["layer"], "normalizations": ["none"], "replacements": ["zero"],
         "thresholds": [0.0, 0.25, 0.5, 0.75, 1.0], "epochs": 2}  # fmt: skip


@pytest.mark.parametrize("column, value, said", [
    ("aggregation", "unit", "has aggregation=unit but the run's metadata says aggregation=weight (5 such rows)"),
    ("measure", "fisher", "has measure=fisher but the run's metadata says measure=one of ['magnitude', 'obd', 'random']"),
    ("measure", "fisher~shuffled", "has measure=fisher~shuffled but"),
    ("pooling", "max", "has pooling=max but the run's metadata says pooling=one of ['mean', 'none']"),
    ("scope", "global", "has scope=global but the run's metadata says scope=layer"),
    ("replacement", "random", "has replacement=random"),
    ("threshold", 0.3, "has threshold=0.3 but the run's metadata says threshold=one of [0.0, 0.25, 0.5, 0.75, 1.0] "
                       "(1 such rows)"),
    ("epoch", 3, "has epoch=3 but the run's metadata says epoch=at most 2 (5 such rows)"),
])  # fmt: skip
def test_rows_outside_what_their_run_swept_refuse_the_run(tmp_path, column, value, said):
    frame = pd.concat([_frame("r0", 0), _frame("r1", 1)]).reset_index(drop=True)
    change = (frame.run_id == "r1") & (frame.epoch == 2) & (frame.measure == "obd")
    frame[column] = frame[column].astype(object)
    frame.loc[change & ((frame.threshold == 0.25) if column == "threshold" else True), column] = value
    frame.to_csv(tmp_path / "r.csv", index=False)
    for run, seed in (("r0", 0), ("r1", 1)):
        (tmp_path / f"r.{run}.json").write_text(json.dumps({"num_classes": 10, "config": SWEPT | {"seed": seed}}))
    df = analysis.load(tmp_path / "r.csv")
    assert set(df["run_id"]) == {"r0"}
    (notice,) = df.attrs["notices"]
    assert f"{tmp_path / 'r.csv'}: run r1 refused: line " in notice and said in notice, notice


def test_controls_and_unpooled_rows_agree_with_their_runs_metadata(tmp_path):
    frame = _frame("r0", 0)
    frame = pd.concat([frame, frame[frame.measure == "obd"].assign(measure="obd~shuffled")])
    frame.to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "r.r0.json").write_text(json.dumps({"num_classes": 10, "config": SWEPT | {"seed": 0}}))
    df = analysis.load(tmp_path / "r.csv")
    assert df.attrs["notices"] == [] and len(df) == len(frame)


# Refusals that need no data run before pandas, SciPy or matplotlib are imported: every row of BAD_OPTIONS that names
# the missing no.csv, inputs that match nothing, an output folder that is a file, and ledgers that cannot be read.
LIGHT = [(["analysis", *argv, "--out", "{tmp}/figures"], message, status)
         for argv, message, status in BAD_OPTIONS if argv[0] == "{tmp}/no.csv"] + [
    (["analysis", "{tmp}/no.csv", "--out", "{tmp}/figures"], "No file matches '{tmp}/no.csv'", 2),
    (["analysis", "{tmp}/empty", "--out", "{tmp}/figures"], "No result CSVs in folder {tmp}/empty", 2),
    (["analysis", "{tmp}/no.csv", "--out", "{tmp}/file.txt"], "Cannot write output folder {tmp}/file.txt: Not a "
                                                              "directory", 2),
    (["analysis", "{tmp}/no.csv", "--epoch", "first"], "epoch must be 'last' or a list of epoch numbers", 2),
    (["analysis", "{tmp}/no.csv", "--format", "jpg"], "invalid choice: 'jpg'", 2),
    (["claims", "{tmp}/none.toml"], "cannot read the claims ledger {tmp}/none.toml", 2),
    (["claims", "{tmp}/file.txt"], "no [[claim]] table in {tmp}/file.txt", 2),
]  # fmt: skip
HEAVY = ("pandas", "scipy", "matplotlib", "numpy", "tensorflow")
RUN_LIGHT = """
import contextlib, io, json, sys
import analysis
from reports import claims
rows = []
for entry, *argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = (analysis.main if entry == "analysis" else claims.main)(argv)
        except SystemExit as stop:
            status = stop.code
    rows.append([status, err.getvalue()])
print(json.dumps({"rows": rows, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_refusals_needing_no_data_import_no_pandas_scipy_or_matplotlib(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x = 1\n")
    argvs = [[a.replace("{tmp}", str(tmp_path)) for a in argv] for argv, _, _ in LIGHT]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", RUN_LIGHT, json.dumps(argvs)], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=60, check=True)  # fmt: skip
    found = json.loads(done.stdout)
    assert set(HEAVY).isdisjoint(found["modules"]), set(HEAVY) & set(found["modules"])
    for (argv, message, status), (code, err) in zip(LIGHT, found["rows"], strict=True):
        lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
        assert code == status and len(lines) == 1 and message.replace("{tmp}", str(tmp_path)) in lines[0], (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file.txt"]  # nothing written
