"""analysis.py input handling beyond the shared bad-input table (tests/test_bad_input.py): a read-only output folder
and a file named twice."""

import json
import os

import numpy as np
import pandas as pd

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
