"""RunStore on hand-made CSVs: which sweeps are done, repair without loss, companion tables, locks, completion."""

import os

import pandas as pd
import pytest

from harness.pipeline import results
from harness.pipeline.results import RunLocked, RunStore, Table, results_table

THRESHOLDS = [0.0, 0.5, 1.0]


def rows(run_id: str, epoch: int, measure: str, thresholds=THRESHOLDS) -> list[dict]:
    base = dict.fromkeys(results.COLUMNS, 0)
    base.update(run_id=run_id, task="digits", model="mlp", epoch=epoch, measure=measure, aggregation="unit",
                pooling="mean", scope="layer", normalization="none", replacement="zero", order="least", recovery="none")
    return [dict(base, threshold=t, val_loss=epoch + t) for t in thresholds]


def key(epoch: int, measure: str) -> tuple:
    return (epoch, measure, "unit", "mean", "layer", "none", "zero", "least", "none")


def store(path, run_id="me", **kwargs) -> RunStore:
    return RunStore(path, run_id, [results_table(path, len(THRESHOLDS))], **kwargs)


def test_repair_keeps_each_complete_sweep_once_and_drops_only_incomplete_ones(tmp_path):
    path = tmp_path / "r.csv"
    other = rows("other", 1, "magnitude", [0.0])  # another run's partial sweep: not this run's business
    sweeps = [*rows("me", 1, "magnitude"), *other, *rows("me", 1, "random"), *rows("me", 2, "magnitude")]
    results.append_rows(path, sweeps)
    results.append_rows(path, [*rows("me", 1, "magnitude"), *rows("me", 1, "random")[:2], *rows("me", 2, "random")[:1]])
    with path.open("a") as f:
        f.write("me,digits,mlp,0,2,random,un")  # a write cut short
    scan = store(path).scan()
    assert scan.done == {key(1, "magnitude"), key(1, "random"), key(2, "magnitude")}  # all rows present, some twice
    assert scan.incomplete == {key(2, "random")}
    assert scan.duplicates == {"results": 5} and scan.rows == {"results": 10} and scan.partial_lines == [path]
    before = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=len(sweeps))
    assert store(path).repair().done == scan.done
    after = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert after.equals(before)  # exactly the first copies, the other run's row included, in their order
    assert path.read_text().endswith("\n") and path.read_text().count("run_id") == 1
    assert not store(path).scan().needs_repair


def test_a_sweep_counts_only_when_complete_in_every_table(tmp_path):
    path = tmp_path / "r.csv"
    per_class = Table("per_class", tmp_path / "r.per_class.csv", (*results.SWEEP_KEY, "threshold", "class", "n"),
                      (*results.SWEEP_KEY, "threshold", "class"), rows_per_sweep=2 * len(THRESHOLDS))
    both = RunStore(path, "me", [results_table(path, len(THRESHOLDS)), per_class])

    def class_rows(sweep, classes=(0, 1)):
        return [{k: r[k] for k in (*results.SWEEP_KEY, "threshold")} | {"class": c, "n": 5} for r in sweep for c in classes]

    first, second = rows("me", 1, "magnitude"), rows("me", 1, "random")
    assert both.append({"results": first, "per_class": class_rows(first)}) == 3
    both.append({"results": second, "per_class": class_rows(second, classes=(0,))})  # cut short in the companion
    assert both.scan().done == {key(1, "magnitude")} and both.scan().incomplete == {key(1, "random")}
    both.repair()
    assert set(pd.read_csv(path)["measure"]) == set(pd.read_csv(per_class.path)["measure"]) == {"magnitude"}
    with pytest.raises(ValueError, match=r"Unknown table\(s\) \['typo'\]"):
        both.append({"typo": []})


def test_appends_wait_for_the_csv_lock(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    results.append_rows(path, rows("me", 1, "magnitude"))
    before = path.read_bytes()
    monkeypatch.setattr(results, "CSV_LOCK_SECONDS", 0.2)
    with results._csv_lock(path):  # another writer's append in progress
        with pytest.raises(TimeoutError, match="stayed locked by another process"):
            store(path).append(rows("me", 2, "magnitude"))
    assert path.read_bytes() == before
    assert store(path).append(rows("me", 2, "magnitude")) == 3


def test_the_run_lock_names_its_holder_and_is_emptied_on_release(tmp_path):
    path = tmp_path / "sub" / "r.csv"
    first, second = store(path), store(path)
    first.acquire()
    assert f"PID {os.getpid()} on " in first.lock_path.read_text()
    with pytest.raises(RunLocked, match=rf"run me is already being written to {path} by PID {os.getpid()} on "):
        second.acquire()
    first.release()
    assert first.lock_path.read_text() == ""
    second.acquire()  # free again
    second.release()
    store(path, run_id="another").acquire()  # locks are per run


def test_completion_marker_is_cheap_to_read_and_verified_against_the_rows(tmp_path):
    path = tmp_path / "r.csv"
    assert not RunStore(path, "me").is_complete()  # touches no file
    assert not path.exists()
    results.append_rows(path, [*rows("me", 1, "magnitude"), *rows("me", 2, "magnitude")])
    s = store(path)
    s.write_metadata({"run_id": "me"})
    assert not s.verify_complete()
    s.mark_complete(s.scan(), epochs=[{"epoch": 1}])
    assert RunStore(path, "me").is_complete() and s.verify_complete()
    assert s.read_metadata()["complete"]["rows"] == {"results": 6}
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")  # a row lost since
    assert RunStore(path, "me").is_complete() and not s.verify_complete()
    s.update_metadata(complete=None)
    assert "complete" not in s.read_metadata() and s.read_metadata()["epochs"] == [{"epoch": 1}]


def test_a_damaged_metadata_file_reads_as_missing(tmp_path):
    s = store(tmp_path / "r.csv")
    s.metadata_path.write_text('{"run_id": "me", "comp')
    assert s.read_metadata() is None and not s.is_complete()
