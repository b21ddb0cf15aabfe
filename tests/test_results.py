"""CSV schema, single-write flushed appends, metadata."""

import json

import pandas as pd
import pytest

from harness.pipeline import results


def row(**overrides):
    base = dict.fromkeys(results.COLUMNS, 0)
    base.update(run_id="abc", task="digits", model="mlp", measure="magnitude", aggregation="weight",
                pooling="none", scope="layer", normalization="none", replacement="zero")
    return {**base, **overrides}


def test_append_writes_header_once_and_rows_are_readable_immediately(tmp_path):
    path = tmp_path / "sub" / "r.csv"
    results.append_rows(path, [row(threshold=0.0), row(threshold=0.5)])
    # flushed and fsynced: another reader sees the rows before the process ends
    assert len(pd.read_csv(path)) == 2
    results.append_rows(path, [row(threshold=1.0)])
    frame = pd.read_csv(path)
    assert list(frame.columns) == results.COLUMNS
    assert frame["threshold"].tolist() == [0.0, 0.5, 1.0]
    assert path.read_text().count("run_id") == 1


def test_appending_to_a_csv_with_other_columns_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other columns"):
        results.append_rows(path, [row()])
    assert path.read_text() == "a,b\n1,2\n"


def test_missing_column_in_a_row_is_an_error(tmp_path):
    bad = row()
    del bad["val_loss"]
    with pytest.raises(KeyError):
        results.append_rows(tmp_path / "r.csv", [bad])
    assert not (tmp_path / "r.csv").exists()


def test_metadata_sidecar(tmp_path):
    path = tmp_path / "results.csv"
    side = results.sidecar(path, "abc123", ".json")
    assert side.name == "results.abc123.json"
    results.write_metadata(side, {"versions": results.package_versions(), "x": 1})
    content = json.loads(side.read_text())
    assert content["x"] == 1 and content["versions"]["tensorflow"]


def test_a_trial_csv_named_after_its_run_has_files_named_after_the_run_alone(tmp_path):
    trial = tmp_path / "trials" / "abc123.csv"
    assert results.sidecar(trial, "abc123", ".json") == tmp_path / "trials" / "abc123.json"
    assert results.sidecar(trial, "abc123", ".ckpt") == tmp_path / "trials" / "abc123.ckpt"
    assert results.lock_path(results.sidecar(trial, "abc123", "")) == tmp_path / "trials" / ".locks" / "abc123.lock"
    old = tmp_path / "trials" / "abc123.abc123.json"  # written before this naming: still found
    results.write_metadata(old, {"run_id": "abc123"})
    assert results.sidecar(trial, "abc123", ".json") == old and results.metadata_files(trial) == [old]
    assert results.sidecar(trial, "other", ".json").name == "abc123.other.json"
