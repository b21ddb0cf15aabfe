"""No dead ends: every damaged checkpoint, a full disk, a read-only complete run; each ends in the reference rows.

A finished tiny digits run (two epochs, both checkpoints kept) is copied, cut
back to what a crash after epoch 2's checkpoint leaves (epoch 1's rows only),
damaged, and continued with ``--resume``: it must end with exactly the
reference rows, no traceback, and (where the damage is reported) one line.
"""

import errno
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline import checkpoint, results
from tests.test_recovery import ARGV, RUN_ID, assert_same_rows, copy_run, forget_completion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete run with the checkpoints of both epochs kept."""
    out = tmp_path_factory.mktemp("finished") / "r.csv"
    assert main([*ARGV, "--output", str(out)]) == 0
    return out


def crashed_after_epoch_2_checkpoint(finished: Path, tmp_path: Path) -> Path:
    out = copy_run(finished, tmp_path)
    forget_completion(out)
    out.write_text("\n".join(line for line in out.read_text().splitlines() if ",digits,mlp,0,2," not in line) + "\n")
    assert len(pd.read_csv(out)) == 6
    return out


def edit_manifest(change):
    def damage(folder: Path):
        path = folder / "epoch-2" / "manifest.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return damage


def replace_by_file(relative: str):
    def damage(folder: Path):
        path = folder / relative if relative else folder
        shutil.rmtree(path)
        path.write_text("not a folder")

    return damage


def folder_in_place_of(relative: str):
    def damage(folder: Path):
        (folder / relative).unlink(missing_ok=True)
        (folder / relative).mkdir()

    return damage


def without_size(manifest: dict) -> dict:
    next(iter(manifest["files"].values())).pop("size")
    return manifest


DAMAGES = {
    "manifest files is a list": (edit_manifest(lambda m: {**m, "files": list(m["files"])}),
                                 "epoch-2 is damaged (manifest.json has files="),
    "manifest entry without size": (edit_manifest(without_size), "epoch-2 is damaged (manifest.json has no size"),
    "manifest is {}": (edit_manifest(lambda m: {}), "epoch-2 is damaged (manifest.json has files=None"),
    "manifest is []": (edit_manifest(lambda m: []), "epoch-2 is damaged (manifest.json holds a JSON list"),
    "manifest without history": (edit_manifest(lambda m: {**m, "info": {}}), "manifest.json has no info.history"),
    "manifest with a bad random state": (edit_manifest(lambda m: {**m, "numpy_random": [1, 2]}),
                                         "manifest.json has no numpy_random state"),
    "manifest names a file outside": (edit_manifest(lambda m: {**m, "files": {**m["files"], "../r.csv": {
        "size": 1, "sha256": "0"}}}), "lists a file named '../r.csv'"),
    "epoch folder replaced by a file": (replace_by_file("epoch-2"), "epoch-2 is damaged (a file, not a folder)"),
    "every epoch folder replaced by a file": (lambda f: [replace_by_file(e)(f) for e in ("epoch-1", "epoch-2")],
                                              "no intact checkpoint at or before epoch 2"),
    "ckpt folder replaced by a file": (replace_by_file(""), ".ckpt is a file; deleted"),
    "latest.json replaced by a folder": (folder_in_place_of("latest.json"), "latest.json is unreadable"),
    "epoch-2.tmp left as a file": (lambda f: [shutil.rmtree(f / "epoch-2"), (f / "epoch-2.tmp").write_text("x")], None),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_a_damaged_checkpoint_is_recovered_to_the_reference_rows(finished, tmp_path, capsys, name):
    damage, message = DAMAGES[name]
    out = crashed_after_epoch_2_checkpoint(finished, tmp_path)
    damage(results.sidecar(out, RUN_ID, ".ckpt"))
    assert main([*ARGV, "--output", str(out)]) == 2  # rows written: a plain re-run is refused, naming --resume
    assert "Continue it with --resume" in capsys.readouterr().err
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message:
        assert len([line for line in err.splitlines() if message in line]) == 1, err
    assert_same_rows(out, finished)
    assert not list(results.sidecar(out, RUN_ID, ".ckpt").glob("*.tmp"))


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def partial_then_no_space(tmp: Path, state, epoch, info):
    if epoch == 2:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "ckpt.index").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    return WRITE(tmp, state, epoch, info)


def tf_resource_exhausted(tmp: Path, state, epoch, info):
    import tensorflow as tf

    if epoch == 2:
        raise tf.errors.ResourceExhaustedError(None, None, f"{tmp}/ckpt.data-00000-of-00001.tempstate; "
                                               "No space left on device")
    return WRITE(tmp, state, epoch, info)


WRITE = checkpoint._write


@pytest.mark.parametrize("fail", [partial_then_no_space, tf_resource_exhausted], ids=["OSError", "TensorFlow"])
def test_a_disk_too_full_for_a_checkpoint_names_the_path_and_bytes_then_resume_recovers(finished, tmp_path, capsys,
                                                                                          monkeypatch, fail):
    out = tmp_path / "r.csv"
    monkeypatch.setattr(checkpoint, "_write", fail)
    assert main([*ARGV, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    folder = results.sidecar(out, RUN_ID, ".ckpt")
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"error: No space left on device writing {folder / 'epoch-2.tmp'}: ")
    assert "bytes needed" in err[-1] and "free" in err[-1]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-1", "latest.json"]  # the partial epoch-2.tmp is gone
    monkeypatch.undo()
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    assert_same_rows(out, finished)


def test_a_disk_too_full_for_the_rows_names_the_csv(finished, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.csv"
    fsync = os.fsync

    def full_for_csv(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == str(out) and len(out.read_text().splitlines()) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(results.os, "fsync", full_for_csv)
    assert main([*ARGV, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: No space left on device writing {out}: ") and "bytes needed" in err[-1]
    monkeypatch.undo()
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    assert_same_rows(out, finished)


def test_a_complete_run_in_a_read_only_folder_is_reported_complete(finished, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    out = copy_run(finished, tmp_path)
    out.parent.chmod(0o555)
    try:
        assert main([*ARGV, "--output", str(out)]) == 0
    finally:
        out.parent.chmod(0o755)
    assert "is already complete" in capsys.readouterr().out


def test_a_complete_run_takes_no_lock(finished, tmp_path, capsys, monkeypatch):
    """What lets a read-only folder work, checked as root too: completion is read without writing anything."""
    out = copy_run(finished, tmp_path)
    before = {p: p.read_bytes() for p in out.parent.rglob("*") if p.is_file()}
    monkeypatch.setattr(results.RunStore, "acquire", lambda self: pytest.fail("a complete run took the lock"))
    assert main([*ARGV, "--output", str(out)]) == 0
    assert "is already complete" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.parent.rglob("*") if p.is_file()} == before


def test_a_refused_plain_rerun_leaves_no_lock(finished, tmp_path, capsys):
    out = crashed_after_epoch_2_checkpoint(finished, tmp_path)
    results.lock_path(results.sidecar(out, RUN_ID, "")).unlink(missing_ok=True)
    before = sorted(p.name for p in out.parent.iterdir())
    assert main([*ARGV, "--output", str(out)]) == 2
    assert sorted(p.name for p in out.parent.iterdir()) == before


def test_missing_data_leaves_no_folder_or_lock(tmp_path, capsys):
    argv = ["--task", "mnist", "--data-dir", str(tmp_path / "nothing"), "--output", str(tmp_path / "out" / "r.csv"),
            "--epochs", "1", "--measures", "magnitude", "--no-progress"]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
