"""Studies: the grid, validation before Ray, a worker SIGKILLed mid-trial, re-runs, a failing trial."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import run
from harness.study.driver import Study, parse_seeds
from harness.study.driver import main as study_main
from tests import study_plugins

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(epochs=1, measures=["magnitude", "random"], aggregations=["weight"], thresholds=[0.0, 0.5, 1.0],
            importance_samples=32)
KEY = ["run_id", "epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "threshold"]


def no_ray(monkeypatch):
    """Make any import of Ray or of the study engine fail."""
    for module in ("ray", "harness.study.engine"):
        monkeypatch.setitem(sys.modules, module, None)


def test_grid_is_the_cartesian_product_of_ordinary_runs(tmp_path):
    grid = {"seed": [0, 1], "replacements": [["zero"], ["random"]]}
    study = Study(TINY, grid, storage=tmp_path)
    expected = [RunConfig(**TINY, seed=s, replacements=r).run_id for s in (0, 1) for r in (["zero"], ["random"])]
    assert study.run_ids == expected and len(set(expected)) == 4
    assert [c.output for c in study.configs] == [str(tmp_path / study.study_id / "trials" / f"{r}.csv") for r in expected]
    assert study.points[1] == {"seed": 0, "replacements": ["random"]}
    assert Study(TINY, {"replacements": [["random"], ["zero"]], "seed": [1, 0]}, storage=tmp_path).study_id == study.study_id
    assert Study(TINY, {"seed": [0, 2], "replacements": grid["replacements"]}, storage=tmp_path).study_id != study.study_id
    assert Study(TINY, grid, name="mine", storage=tmp_path).folder == tmp_path / "mine"
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7] and parse_seeds("5") == [5]


@pytest.mark.parametrize("settings,grid,options,message", [
    ({}, {"sed": [0]}, {}, r"Unknown grid axis 'sed'; available: \['task', "),
    ({}, {"output": ["a.csv"]}, {}, r"Unknown grid axis 'output'"),
    ({}, {"seed": 3}, {}, r"grid axis 'seed' must be a non-empty list of values. Received: seed=3"),
    ({}, {"seed": []}, {}, r"Received: seed=\[\]"),
    ({}, {"seed": [0, 0]}, {}, r"grid axis 'seed' has duplicates. Received: seed=\[0, 0\]"),
    ({"seed": 1}, {"seed": [0, 2]}, {}, r"'seed' is both a setting and a grid axis"),
    ({}, {"seed": [0], "scopes": [["layer"], ["sideways"]]}, {},
     r"^Unknown scope 'sideways'; available: \['layer', 'global', 'output'\] \(grid point seed=0, scopes=\['sideways'\]\)$"),
    ({}, {"batch_size": [8, 0]}, {}, r"Received: batch_size=0 \(grid point batch_size=0\)"),
    ({}, {"model": [None, "mlp"]}, {}, r"grid points model=None and model='mlp' give the same run"),
    ({"output": "x.csv"}, {}, {}, r"not output. Received: output='x.csv'"),
    ({"sed": 1}, {}, {}, r"Unknown setting\(s\) \['sed'\]"),
    ({}, {}, {"workers": 0}, r"workers must be a positive integer. Received: workers=0"),
    ({}, {}, {"gpus_per_trial": 1.5}, r"Received: gpus_per_trial=1.5"),
    ({}, {}, {"max_retries": -1}, r"max_retries must be an integer >= 0. Received: max_retries=-1"),
    ({}, {}, {"dashboard": 1}, r"dashboard must be true or false. Received: dashboard=1"),
])
def test_bad_studies_are_refused_before_ray(tmp_path, monkeypatch, settings, grid, options, message):
    no_ray(monkeypatch)
    with pytest.raises(ValueError, match=message):
        Study({**TINY, **settings}, grid, storage=tmp_path, options=options)
    assert not any(tmp_path.iterdir())


def test_study_toml_unknown_key_is_refused(tmp_path, monkeypatch, capsys):
    no_ray(monkeypatch)
    toml = tmp_path / "s.toml"
    toml.write_text('epochs = 1\n[grid]\nseed = [0, 1]\n[study]\nworker = 2\n')
    assert main(["--config", str(toml)]) == 2  # the [grid] table makes it a study
    assert "Unknown [study] key(s) ['worker']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_plain_run_imports_neither_ray_nor_the_study_layer(tmp_path, monkeypatch):
    no_ray(monkeypatch)
    monkeypatch.setitem(sys.modules, "harness.study", None)
    argv = ["--epochs", "1", "--measures", "magnitude", "--aggregations", "weight", "--thresholds", "0", "1",
            "--importance-samples", "8", "--no-progress", "--output", str(tmp_path / "r.csv")]
    assert main(argv) == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == 2


# ----- on Ray: 2 CPUs, workers register the toy measures through a setup hook -----

KILLED = ["--seeds", "0-1", "--workers", "2", "--epochs", "2", "--measures", "magnitude", "study_sigkill_once",
          "random", "--aggregations", "weight", "--thresholds", "0", "0.5", "1", "--importance-samples", "64",
          "--deterministic", "--no-progress", "--name", "killed"]


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("ray") / "killed-once"
    env = {"PYTHONPATH": str(ROOT), "KILL_MARKER": str(marker),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env, "worker_process_setup_hook": "tests.study_plugins.register"})
    study_plugins.register()  # here too, for the in-process reference runs (no KILL_MARKER here: no kill)
    yield marker
    study_plugins.unregister()
    ray.shutdown()


@pytest.fixture(scope="module")
def killed(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("studies")
    argv = [*KILLED, "--storage", str(storage)]
    assert main(argv) == 0
    folder = storage / "killed"
    record = json.loads((folder / "study.json").read_text())
    reference = tmp_path_factory.mktemp("reference")
    for trial in record["trials"]:  # the same trials, uninterrupted, one after another in this process
        run(RunConfig(**trial["config"], progress=False, output=str(reference / trial["csv"])))
    return argv, folder, record, reference


def rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted(folder.glob("trials/*.csv"))], ignore_index=True)


@pytest.mark.slow
def test_a_worker_sigkilled_mid_trial_is_retried_and_resumes_from_its_checkpoint(ray_session, killed):
    _, folder, record, reference = killed
    assert ray_session.exists(), "no worker was killed"
    assert [t["status"] for t in record["trials"]] == ["complete", "complete"]
    retried = [t for t in record["trials"] if t["resumed"]]
    assert len(retried) == 1 and retried[0]["pid"] != int(ray_session.read_text())
    assert "from the checkpoint of epoch 2" in Path(retried[0]["log"]).read_text()
    got, ref = rows(folder), rows(reference)
    assert len(ref) == 2 * 2 * 3 * 3 and not got.duplicated(KEY).any()
    assert sorted(map(tuple, got[KEY].values)) == sorted(map(tuple, ref[KEY].values))
    merged = ref.merge(got, on=KEY, suffixes=("_ref", "_got"))
    np.testing.assert_allclose(merged["val_loss_got"], merged["val_loss_ref"], rtol=1e-5)
    assert {t["cuda_visible_devices"] for t in record["trials"]} == {""}


@pytest.mark.slow
def test_rerunning_a_finished_study_recomputes_nothing(killed, monkeypatch, capsys):
    argv, folder, record, _ = killed
    files = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.parent != folder}
    no_ray(monkeypatch)
    assert main(argv) == 0
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.parent != folder} == files
    assert json.loads((folder / "study.json").read_text())["trials"] == record["trials"]
    assert f"2 of 2 trials complete in {folder} (already complete; nothing was recomputed)\nrank them: python " \
           f"analysis.py {folder}" in capsys.readouterr().out  # found by its request key, without TensorFlow or Ray


@pytest.mark.slow
def test_a_changed_grid_or_setting_is_refused_naming_the_differences(killed, monkeypatch, capsys):
    argv, folder, record, _ = killed
    before = (folder / "study.json").read_text()
    no_ray(monkeypatch)
    assert main([*argv, "--seeds", "0-2"]) == 2  # the later --seeds wins
    assert "'grid seed': ([0, 1], [0, 1, 2])" in capsys.readouterr().err
    assert main([*argv, "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{folder} holds study {record['study_id']}" in err and "'epochs': (2, 3)" in err
    assert (folder / "study.json").read_text() == before


@pytest.mark.slow
def test_a_trial_whose_measure_raises_fails_alone_and_names_its_log(ray_session, tmp_path, capsys):
    toml = tmp_path / "study.toml"
    toml.write_text(f'epochs = 1\naggregations = ["weight"]\nthresholds = [0.0, 1.0]\nimportance_samples = 16\n'
                    f'[grid]\nmeasures = [["magnitude"], ["magnitude", "study_fails"]]\n'
                    f'[study]\nname = "fails"\nstorage = "{tmp_path}"\nworkers = 2\n')
    assert study_main(["--config", str(toml), "--no-progress"]) == 1
    err = capsys.readouterr().err
    record = json.loads((tmp_path / "fails" / "study.json").read_text())
    ok, bad = record["trials"]
    assert ok["status"] == "complete" and bad["status"] == "failed"
    assert "study_fails" in bad["error"] and "importance overflowed" in Path(bad["log"]).read_text()
    assert f"trial {bad['run_id']} (measures=['magnitude', 'study_fails']) failed" in err and bad["log"] in err
    assert "1 of 2 trials failed" in err
    frame = pd.read_csv(tmp_path / "fails" / bad["csv"])
    assert set(frame["measure"]) == {"magnitude"} and len(frame) == 2


def test_a_short_form_study_is_named_after_task_model_and_seeds(tmp_path, monkeypatch, capsys):
    from harness.cli.main import parser
    from harness.study.driver import from_args

    args = parser().parse_args(["--seeds", "0-1", "--epochs", "1", "--storage", str(tmp_path)])
    study = from_args(args)
    assert study.folder == tmp_path / f"digits-mlp-seeds0-1-{study.study_id[:6]}"
    assert all(c.output.startswith(str(study.folder / "trials")) for c in study.configs)
    assert from_args(parser().parse_args(["--seeds", "0-1", "--epochs", "2", "--storage", str(tmp_path)])).folder \
        != study.folder  # another setting, another folder
    assert from_args(parser().parse_args(["--seeds", "0-1", "--name", "mine", "--storage", str(tmp_path)])).folder \
        == tmp_path / "mine"


def test_the_example_study_has_enough_seeds_to_separate_its_measures(monkeypatch):
    no_ray(monkeypatch)
    study = Study.from_toml(ROOT / "examples" / "study_digits.toml")
    assert [p["seed"] for p in study.points] == list(range(10)) and {c.task for c in study.configs} == {"digits"}
    assert study.folder == Path("data/studies/digits-4-measures-10-seeds").resolve() and study.options == {"workers": 2}
    k = len(study.configs[0].measures)
    assert k * (k - 1) // 2 * 2 / 2 ** len(study.points) < 0.05  # Holm over the pairs, exact Wilcoxon's smallest p


@pytest.mark.slow
def test_more_gpus_per_trial_than_the_cluster_has_is_refused(ray_session, tmp_path):
    with pytest.raises(ValueError, match=r"gpus_per_trial=0.5 but the Ray cluster has 0 GPUs"):
        Study(TINY, storage=tmp_path).run(gpus_per_trial=0.5, progress=False)


def test_a_dashboard_without_its_packages_is_refused_before_ray_starts(monkeypatch):
    pytest.importorskip("ray")
    from harness.study import engine
    from harness.study.driver import Engine

    monkeypatch.setattr(engine, "get_dashboard_dependency_error", lambda: ImportError("No module named 'aiohttp'"))
    monkeypatch.setattr(engine.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(engine.ray, "init", lambda **kwargs: pytest.fail("Ray was started"))
    with pytest.raises(ValueError, match=r"^--dashboard needs the dashboard's packages: pip install 'ray\[default\]'"):
        engine.connect(Engine(dashboard=True))


def test_the_losing_study_driver_exits_3_like_a_losing_run(tmp_path, monkeypatch, capsys):
    from filelock import FileLock

    no_ray(monkeypatch)
    argv = ["--seeds", "0-1", "--epochs", "1", "--measures", "magnitude", "--aggregations", "weight",
            "--thresholds", "0", "1", "--name", "s", "--storage", str(tmp_path), "--no-progress"]
    (tmp_path / "s" / ".locks").mkdir(parents=True)
    with FileLock(tmp_path / "s" / ".locks" / "study.lock", timeout=0):
        assert main(argv) == 3
    assert "study s is being run by another process" in capsys.readouterr().err
    assert not (tmp_path / "s" / "study.json").exists()


def test_a_refused_study_leaves_no_folder_or_lock(tmp_path, monkeypatch, capsys):
    no_ray(monkeypatch)
    study = Study(TINY, {"seed": [0, 1]}, name="s", storage=tmp_path / "new")
    with pytest.raises(ValueError, match="Cannot reach the Ray cluster at 127.0.0.1:1 within"):
        study.run(address="127.0.0.1:1", progress=False)
    assert not (tmp_path / "new").exists()
