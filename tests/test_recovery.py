"""One writer per run, a CSV written twice, damaged checkpoints: each resumed to the complete, duplicate-free CSV."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from tasks import TASKS

pytestmark = pytest.mark.slow  # every test here trains and resumes runs end to end

ROOT = Path(__file__).resolve().parents[1]
KEY = ["epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "threshold"]
SETTINGS = dict(epochs=2, measures=["magnitude", "random"], aggregations=["unit"], thresholds=[0.0, 0.5, 1.0],
                importance_samples=16, keep_checkpoints=2)
ARGV = ["--epochs", "2", "--measures", "magnitude", "random", "--aggregations", "unit", "--thresholds", "0", "0.5", "1",
        "--importance-samples", "16", "--keep-checkpoints", "2", "--no-progress"]
RUN_ID = RunConfig(**SETTINGS).run_id


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete run with the checkpoints of both epochs kept."""
    out = tmp_path_factory.mktemp("finished") / "r.csv"
    assert main([*ARGV, "--output", str(out)]) == 0
    return out


def copy_run(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished.parent, tmp_path / "run")
    return tmp_path / "run" / finished.name


def forget_completion(out: Path) -> None:
    """What a crash before the end leaves: the metadata without its ``complete`` marker."""
    meta_path = results.sidecar(out, RUN_ID, ".json")
    meta = json.loads(meta_path.read_text())
    del meta["complete"]
    meta_path.write_text(json.dumps(meta))


def body_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def assert_same_rows(got: Path, reference: Path) -> pd.DataFrame:
    ref, frame = pd.read_csv(reference), pd.read_csv(got)
    assert not frame.duplicated(KEY).any()
    assert len(frame) == len(ref) == 2 * 2 * 3
    merged = ref.merge(frame, on=KEY, suffixes=("_ref", "_got"))
    assert len(merged) == len(ref)
    np.testing.assert_allclose(merged["val_loss_got"], merged["val_loss_ref"], rtol=1e-5)
    np.testing.assert_allclose(merged["val_accuracy_got"], merged["val_accuracy_ref"], atol=1e-9)
    return frame


@pytest.fixture
def no_data_loading(monkeypatch):
    def refuse(self, data_dir=None):
        raise AssertionError("data were loaded")

    for name in TASKS.names():
        monkeypatch.setattr(TASKS.get(name), "load", refuse)


HOLDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from harness.pipeline.results import RunStore
    store = RunStore({csv!r}, {run_id!r})
    store.acquire()
    print("locked", flush=True)
    sys.stdin.read()
    store.release()
""")


def test_a_second_process_on_the_same_run_is_refused_at_once(finished, tmp_path, capsys, no_data_loading):
    out = copy_run(finished, tmp_path)
    forget_completion(out)  # a partly written run: the second process would otherwise continue it
    before = {p.name: p.read_bytes() for p in out.parent.iterdir() if p.is_file() and p.suffix != ".lock"}
    script = HOLDER.format(root=str(ROOT), csv=str(out), run_id=RUN_ID)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main([*ARGV, "--output", str(out), "--resume"]) == 3
    finally:
        holder.communicate("", timeout=60)
    err = capsys.readouterr().err
    assert f"run {RUN_ID} is already being written to {out} by PID {holder.pid} on" in err
    assert {p.name: p.read_bytes() for p in out.parent.iterdir() if p.is_file() and p.suffix != ".lock"} == before
    assert results.lock_path(results.sidecar(out, RUN_ID, "")).read_text() == ""  # released, and emptied


def test_resume_on_a_csv_written_twice_keeps_every_complete_sweep_once(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    forget_completion(out)
    header, *rows = out.read_text().splitlines()
    frame = pd.read_csv(finished)
    incomplete = ((frame.epoch == 1) & (frame.measure == "random") & (frame.threshold == 1.0)).to_numpy()
    half = ((frame.epoch == 2) & (frame.measure == "magnitude") & (frame.threshold == 0.5)).to_numpy()
    first_copy = [r for r, drop in zip(rows, incomplete) if not drop]
    second_copy = [r for r, drop in zip(rows, incomplete | half) if not drop]  # a sweep complete once, partly twice
    out.write_text("\n".join([header, *first_copy, *second_copy]) + "\n")
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    assert "removed 10 duplicate rows, the rows of 1 incomplete sweep(s) of run" in capsys.readouterr().err
    assert_same_rows(out, finished)
    unchanged = [r for r, redo in zip(rows, (frame.epoch == 1) & (frame.measure == "random")) if not redo]
    assert set(unchanged) <= set(body_lines(out))  # kept as written (timings included): not recomputed
    assert json.loads(results.sidecar(out, RUN_ID, ".json").read_text())["complete"]["rows"] == {"results": 12}


def test_a_complete_csv_written_twice_is_deduplicated_when_run_again(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    header, *rows = out.read_text().splitlines()
    out.write_text("\n".join([header, *rows, *rows]) + "\n")
    assert main([*ARGV, "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "removed 12 duplicate rows" in captured.err and "is already complete" in captured.out
    assert out.read_text() == finished.read_text()


def truncate(fraction):
    def damage(folder: Path):
        data = next(folder.glob("epoch-2/ckpt.data-*"))
        data.write_bytes(data.read_bytes()[: int(fraction * data.stat().st_size)])

    return damage


def unlink(pattern):
    def damage(folder: Path):
        for path in folder.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    return damage


def cut_pointer(folder: Path):
    latest = folder / "latest.json"
    latest.write_text(latest.read_text()[:10])


@pytest.mark.parametrize("damage,message", [
    (unlink("epoch-2/ckpt.index"), "epoch-2 is damaged (ckpt.index is missing)"),
    (truncate(0.5), "epoch-2 is damaged (ckpt.data-00000-of-00001 has"),
    (truncate(0.0), "epoch-2 is damaged (ckpt.data-00000-of-00001 has 0 of its"),
    (unlink("epoch-2"), None),
    (cut_pointer, "latest.json is unreadable"),
    (unlink("epoch-*/ckpt.index"), "no intact checkpoint at or before epoch 2"),
], ids=["index deleted", "data cut to half", "data cut to zero", "newest folder deleted", "latest.json truncated",
        "every checkpoint damaged"])
def test_a_damaged_checkpoint_falls_back_and_the_run_completes(finished, tmp_path, capsys, damage, message):
    out = copy_run(finished, tmp_path)
    forget_completion(out)
    out.write_text("\n".join(line for line in out.read_text().splitlines() if ",digits,mlp,0,2," not in line) + "\n")
    assert len(pd.read_csv(out)) == 6  # crashed after epoch 2's checkpoint, before its sweeps
    damage(results.sidecar(out, RUN_ID, ".ckpt"))
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message:
        assert message in err and len([line for line in err.splitlines() if message in line]) == 1
    assert_same_rows(out, finished)


def test_the_run_lock_and_the_csv_lock_are_out_of_sight_beside_the_csv(finished):
    names = {p.name for p in finished.parent.iterdir()}
    assert names == {"r.csv", ".locks", *[f"r.{RUN_ID}{s}" for s in (".ckpt", ".json", ".log")]}
    assert sorted(os.listdir(finished.parent / ".locks")) == sorted(["r.csv.lock", f"r.{RUN_ID}.lock"])
    assert sorted(os.listdir(results.sidecar(finished, RUN_ID, ".ckpt"))) == ["epoch-1", "epoch-2", "latest.json"]
