"""Property-based bad input: each random input either runs or is refused with exit 2 in one line, never a traceback.

Random TOML configs and option strings go through ``python -m harness`` in
process; randomly damaged result CSVs through its ``--resume`` path; random
and damaged ``study.json`` files through :meth:`harness.study.driver.Study.load_record`;
random and damaged checkpoint manifests through :func:`harness.pipeline.checkpoint.restore`.
No example trains: reaching the data counts as "runs" (the task's loader is
replaced by one that raises :class:`WouldLoad`), and Ray is never imported.
"""

import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli.main import main, parser
from harness.pipeline import checkpoint, results
from harness.pipeline.config import RunConfig
from harness.study.driver import STUDY_KEYS, Study
from tasks import TASKS

pytestmark = pytest.mark.slow
FIELDS = list(RunConfig.__dataclass_fields__)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
TINY = ["--epochs", "1", "--measures", "magnitude", "--aggregations", "weight", "--thresholds", "0", "1",
        "--importance-samples", "8", "--no-progress"]


class WouldLoad(Exception):  # noqa: N818 - a signal, not an error
    """The run got as far as loading its data: the input was accepted."""


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def load(self, data_dir=None):
        raise WouldLoad

    for name in TASKS.names():
        monkeypatch.setattr(TASKS.get(name), "load", load)
    for module in ("ray", "harness.study.engine"):  # a study accepted would import these: WouldLoad's ImportError
        monkeypatch.setitem(sys.modules, module, None)


def outcome(argv: list[str]) -> tuple[int | str, str]:
    """``main(argv)`` in a fresh folder: its status (or "runs") and its stderr."""
    err = io.StringIO()
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main([a.replace("{tmp}", folder) for a in argv])
        except (WouldLoad, ImportError):
            status = "runs"
    return status, err.getvalue()


def assert_clean(status, err: str) -> None:
    assert "Traceback" not in err, err
    assert status in ("runs", 0, 2), (status, err)
    if status == 2:
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith(("error:", "python -m harness: error:")), err
        assert len([line for line in lines if not line.startswith("usage:") and not line.startswith(" ")]) == 1, err


# ----- TOML configs ---------------------------------------------------------------------------------------------

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SCALARS = (st.integers(-2**63, 2**63 - 1) | st.floats() | st.booleans() | st.sampled_from(
    ["", "digits", "mlp", "magnitude", "weight", "layer", "global", "all", "every:2", "fisher:kind=true", ":x",
     "none", "most", "bn:batches=1", "²"]) | st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
SETTING_NAMES = st.sampled_from(FIELDS + ["bogus"])
STUDY = st.dictionaries(st.sampled_from([k for k in STUDY_KEYS if k != "address"] + ["bogus"]), VALUES, max_size=3)


@st.composite
def toml_files(draw) -> str:
    top = draw(st.dictionaries(SETTING_NAMES, VALUES, max_size=5))
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    if draw(st.booleans()):
        grid = draw(st.dictionaries(SETTING_NAMES, VALUES, max_size=2) | VALUES)
        lines += ["[grid]", *[f"{k} = {toml_value(v)}" for k, v in grid.items()]] if isinstance(grid, dict) \
            else [f"grid = {toml_value(grid)}"]
    if draw(st.booleans()):
        lines += ["[study]", *[f"{k} = {toml_value(v)}" for k, v in draw(STUDY).items()]]
    return "\n".join(lines) + "\n"


@EXAMPLES
@given(text=toml_files())
def test_random_toml_configs_run_or_are_refused_in_one_line(text):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    try:
        assert_clean(*outcome(["--config", f.name, "--no-progress"]))
    finally:
        os.unlink(f.name)


# ----- option strings -------------------------------------------------------------------------------------------

OPTIONS = [o for action in parser()._actions for o in action.option_strings
           if o.startswith("--") and o not in ("--help", "--list", "--address", "--config")]
TOKENS = st.sampled_from(["0", "1", "-1", "2", "1e9", str(2**70), "nan", "inf", "0.5", "x", "", "²", "0-3", "0-x",
                          "digits", "mnist", "mlp", "magnitude", "fisher:kind=true", ":kind=true", "weight", "unit",
                          "layer", "global", "lamp", "every:2", "all", "{tmp}/out.csv", "{tmp}", "/proc/r.csv"])


@EXAMPLES
@given(argv=st.lists(st.tuples(st.sampled_from(OPTIONS), st.lists(TOKENS, max_size=3)), max_size=5))
def test_random_option_strings_run_or_are_refused_in_one_line(argv):
    flat = [token for option, values in argv for token in (option, *values)]
    assert_clean(*outcome([*flat, "--output", "{tmp}/r.csv", "--no-progress"] if "--output" not in flat else flat))


# ----- damaged result CSVs on the resume path -----------------------------------------------------------------------

RUN_ID = RunConfig(epochs=1, measures=["magnitude"], aggregations=["weight"], thresholds=[0.0, 1.0],
                   importance_samples=8, progress=False).run_id


def good_csv() -> bytes:
    rows = [dict.fromkeys(results.COLUMNS, "0") | dict(run_id=run, task="digits", model="mlp", epoch=1,
                                                      measure="magnitude", aggregation="weight", pooling="none",
                                                      scope="layer", normalization="none", replacement="zero",
                                                      order="least", recovery="none", threshold=t)
            for run in (RUN_ID, "other") for t in (0.0, 1.0)]
    return results.format_rows(rows, header=True).encode()


@st.composite
def damaged(draw, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["cut", "insert", "delete", "repeat"]))
        if kind == "cut":
            data = data[:where]
        elif kind == "insert":
            data = data[:where] + draw(st.binary(max_size=8) | st.sampled_from([b",", b"\n", b'"', b"x,y\n"])) + \
                data[where:]
        elif kind == "delete":
            data = data[:where] + data[where + draw(st.integers(1, 20)):]
        else:
            data = data + data[where:]
    return data


@EXAMPLES
@given(data=damaged(good_csv()))
def test_damaged_result_csvs_resume_or_are_refused_in_one_line(data):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "r.csv").write_bytes(data)
        assert_clean(*outcome([*TINY, "--output", f"{folder}/r.csv", "--resume"]))


@EXAMPLES
@given(data=st.data())
def test_damaged_run_metadata_resumes_or_is_refused_in_one_line(data):
    record = {"run_id": RUN_ID, "config": {}, "complete": {"rows": {"results": 2}}}
    content = data.draw(JSON) if data.draw(st.booleans()) else mutate(record, data.draw)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "r.csv").write_bytes(good_csv())
        (Path(folder) / f"r.{RUN_ID}.json").write_text(json.dumps(content))
        assert_clean(*outcome([*TINY, "--output", f"{folder}/r.csv", *data.draw(st.sampled_from([[], ["--resume"]]))]))


# ----- study.json ---------------------------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=10)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study = Study(dict(epochs=1, measures=["magnitude"], aggregations=["weight"], thresholds=[0.0, 1.0]),
                  {"seed": [0, 1]}, name="s", storage=tmp_path_factory.mktemp("studies"))
    study.folder.mkdir()
    return study


def mutate(record, draw):
    """Replace, drop or retype one value somewhere in the record."""
    if isinstance(record, dict) and record:
        key = draw(st.sampled_from(sorted(record)))
        how = draw(st.sampled_from(["drop", "replace", "recurse"]))
        if how == "drop":
            return {k: v for k, v in record.items() if k != key}
        return {**record, key: draw(JSON) if how == "replace" else mutate(record[key], draw)}
    if isinstance(record, list) and record:
        i = draw(st.integers(0, len(record) - 1))
        return [*record[:i], mutate(record[i], draw), *record[i + 1:]]
    return draw(JSON)


@EXAMPLES
@given(data=st.data())
def test_random_and_damaged_study_records_load_or_are_refused(study, data):
    record = data.draw(JSON) if data.draw(st.booleans()) else mutate(study.record(), data.draw)
    path = study.folder / "study.json"
    path.write_text(json.dumps(record) if data.draw(st.booleans()) else json.dumps(record)[:-1])
    try:
        loaded = study.load_record()
    except ValueError as error:
        assert str(path) in str(error) or "holds study" in str(error)
        assert "\n" not in str(error)
    else:
        assert loaded["study_id"] == study.study_id and len(loaded["trials"]) == 2


# ----- checkpoint manifests -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import keras

    from tests.helpers import tiny_dense_model

    model = tiny_dense_model()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    state = checkpoint.tracked_state(model, optimizer, {})
    folder = tmp_path_factory.mktemp("ckpt") / "r.x.ckpt"
    checkpoint.save(folder, state, 1, dict(history=[]))
    return folder, state


@EXAMPLES
@given(data=st.data())
def test_random_and_damaged_manifests_are_restored_or_reported_as_damaged(saved, data):
    folder, state = saved
    manifest = json.loads((folder / "epoch-1" / checkpoint.MANIFEST).read_text())
    changed = data.draw(JSON) if data.draw(st.booleans()) else mutate(manifest, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "r.x.ckpt"
        shutil.copytree(folder, copy)
        (copy / "epoch-1" / checkpoint.MANIFEST).write_text(json.dumps(changed))
        said = []
        restored = checkpoint.restore(copy, state, 1, said.append)
        if restored is None:
            assert len(said) == 1 and "epoch-1 is damaged" in said[0] and not (copy / "epoch-1").exists()
        else:
            assert restored[0] == 1 and not said
