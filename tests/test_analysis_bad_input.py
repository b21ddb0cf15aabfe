"""Bad input to analysis.py: one table of cases, each run in-process through the command line entry point.

Each case gives the entry point, its argv (``{tmp}`` is the case's folder), a fragment of the expected error, the exit
status, and is checked to print no traceback, to change no file and to create no output folder.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis


@dataclass(frozen=True)
class Case:
    id: str
    entry: str
    argv: tuple
    message: str
    status: int = 1


CASES = [
    Case("missing file", "analysis", ("{tmp}/nothing.csv",), "No file matches '{tmp}/nothing.csv'"),
    Case("folder without CSVs", "analysis", ("{tmp}/empty",), "No result CSVs in folder {tmp}/empty"),
    Case("PNG as CSV", "analysis", ("{tmp}/image.png",), "{tmp}/image.png is not a result CSV: not UTF-8 text"),
    Case("random bytes", "analysis", ("{tmp}/random.csv",), "{tmp}/random.csv is not a result CSV"),
    Case("empty CSV", "analysis", ("{tmp}/empty.csv",), "{tmp}/empty.csv has no rows"),
    Case("missing columns", "analysis", ("{tmp}/columns.csv",), "{tmp}/columns.csv is missing columns ['val_loss']"),
    Case("non-number", "analysis", ("{tmp}/text.csv",), "column 'val_loss' holds a non-number on line 2: 'high'"),
    Case("bad metadata", "analysis", ("{tmp}/meta/good.csv",), "good.r0.json is not a run's metadata JSON"),
    Case("duplicate keys", "analysis", ("{tmp}/good.csv", "{tmp}/copy.csv"), "result keys appear more than once"),
    Case("all NaN", "analysis", ("{tmp}/nan.csv",), "Nothing can be ranked at the ranked epochs"),
    Case("repeated seed", "analysis", ("{tmp}/good.csv", "{tmp}/rerun.csv"), "Seed 0 appears in runs ['r0', 'x0']"),
    Case("out is a file", "analysis", ("{tmp}/good.csv", "--out", "{tmp}/good.csv"), "{tmp}/good.csv is a file"),
    Case("epoch word", "analysis", ("{tmp}/no.csv", "--epoch", "first"), "epoch must be 'last' or a list of epoch"),
    Case("epoch negative", "analysis", ("{tmp}/no.csv", "--epoch", "-1"), "Received: epoch=['-1']"),
    Case("epoch absent", "analysis", ("{tmp}/good.csv", "--epoch", "7"), "Epochs [7] are not in the results"),
    Case("curve epochs absent", "analysis", ("{tmp}/good.csv", "--epochs", "7"), "available: [1, 2]. Received: [7]"),
    Case("compare unknown", "analysis", ("{tmp}/no.csv", "--compare", "measure,x"), "compare takes distinct columns"),
    Case("compare twice", "analysis", ("{tmp}/no.csv", "--compare", "scope,scope"), "Received: compare=['scope', 'sc"),
    Case("compare absent", "analysis", ("{tmp}/good.csv", "--compare", "order"), "compare columns ['order'] are not"),
    Case("alpha", "analysis", ("{tmp}/no.csv", "--alpha", "1.5"), "alpha must lie in (0, 1). Received: alpha=1.5"),
    Case("loss tolerance", "analysis", ("{tmp}/no.csv", "--loss-tol", "-1"), "Tolerances must be >= 0"),
    Case("format", "analysis", ("{tmp}/good.csv", "--format", "jpg"), "invalid choice: 'jpg'", status=2),
    Case("interval", "analysis", ("{tmp}/good.csv", "--interval", "z"), "invalid choice: 'z'", status=2),
]


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


def _inputs(tmp: Path) -> None:
    """Writes every input file the cases name."""
    good = _frame()
    good.to_csv(tmp / "good.csv", index=False)
    good.to_csv(tmp / "copy.csv", index=False)
    _frame("x0").to_csv(tmp / "rerun.csv", index=False)
    good.assign(val_loss=np.nan).to_csv(tmp / "nan.csv", index=False)
    good.drop(columns="val_loss").to_csv(tmp / "columns.csv", index=False)
    good.astype({"val_loss": object}).assign(val_loss="high").to_csv(tmp / "text.csv", index=False)
    (tmp / "empty.csv").write_text("")
    (tmp / "empty").mkdir()
    (tmp / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)))
    (tmp / "random.csv").write_bytes(np.random.default_rng(3).bytes(2048))
    (tmp / "meta").mkdir()
    good.to_csv(tmp / "meta" / "good.csv", index=False)
    (tmp / "meta" / "good.r0.json").write_text('{"num_classes": 10, "config": {"seed"')


def _snapshot(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _call(entry: str, argv: list) -> int:
    module = {"analysis": analysis}[entry]
    try:
        return module.main(argv)
    except SystemExit as exit_:  # argparse
        return exit_.code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, capsys):
    _inputs(tmp_path)
    before = _snapshot(tmp_path)
    argv = [a.format(tmp=tmp_path) for a in case.argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "figures")]
    status = _call(case.entry, argv + out)
    err = capsys.readouterr().err
    assert status == case.status, err
    assert case.message.format(tmp=tmp_path) in err.strip().splitlines()[-1]
    assert "Traceback" not in err and (case.status == 2 or len(err.strip().splitlines()) == 1)
    assert _snapshot(tmp_path) == before and not (tmp_path / "figures").exists()


def test_read_only_out_folder_named_before_loading(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anyway: make the probe fail as a read-only folder would
        monkeypatch.setattr(analysis.tempfile, "TemporaryFile", _refuse)
    status = analysis.main([str(tmp_path / "not-read.csv"), "--out", str(locked / "figures")])
    err = capsys.readouterr().err
    assert status == 1 and err.strip() == (
        f"error: Cannot write to folder {locked} (output folder {locked / 'figures'}): Permission denied"
    )
    assert not (locked / "figures").exists()


def _refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_same_file_twice_is_not_an_error(tmp_path, capsys):
    _frame().to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "good.r0.json").write_text(json.dumps({"num_classes": 10}))
    argv = [str(tmp_path / "good.csv"), str(tmp_path / "*.csv"), "--out", str(tmp_path / "fig"), "--format", "svg"]
    assert analysis.main(argv) == 0
    assert "no test is possible" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "fig" / "ranking.csv")["n_seeds"].eq(1).all()
