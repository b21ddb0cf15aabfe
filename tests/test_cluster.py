"""A study on a two-node Ray cluster (127.0.0.1, token authentication) that loses its worker node mid-trial.

tests/ray_cluster.py starts the head and the worker node, 1 CPU each. The
driver is ``python -m harness`` (its ``main``, after registering the toy
measures) with ``--address auto`` (found through ``RAY_ADDRESS``) and
``--storage`` on a folder both nodes see. Each of the two trials lands on
its own node; the one on the worker node stalls in its second measure (after
its epoch-1 checkpoint and its first measure's rows) until the test removes
that node. The trial is retried on the head, resumes from its checkpoint,
and the study ends with the rows of an uninterrupted study.

Ray (2.60) reads an address on 127.0.0.1 as this machine's network address
unless multi-node clusters are off in the driver
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); the drivers here set it, so they
reach the nodes, which listen on 127.0.0.1 only.
"""

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import run
from tests import study_plugins

ROOT = Path(__file__).resolve().parents[1]
KEY = ["run_id", "epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "threshold"]
DRIVER = ("import sys; from tests import study_plugins; study_plugins.register(); "
          "from harness.cli.main import main; sys.exit(main(sys.argv[1:]))")
ARGV = ["--seeds", "0-1", "--workers", "2", "--task", "digits", "--epochs", "1", "--measures", "magnitude",
        "study_stall_on_worker_node", "--aggregations", "weight", "--thresholds", "0", "0.5", "1",
        "--importance-samples", "32", "--deterministic", "--no-progress", "--name", "cluster", "--address", "auto"]

pytestmark = pytest.mark.slow


def wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``path`` exists; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the driver ended (status {process.returncode}) before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("ray")
    folder = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "NODE_LOSS_MARKER": str(folder / "stalled.json"),
            "TF_CPP_MIN_LOG_LEVEL": "3"}
    nodes = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ray_cluster.py")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env, text=True)
    info = json.loads(nodes.stdout.readline())
    yield nodes, info, env, folder
    nodes.stdin.close()
    nodes.wait(timeout=60)


@pytest.fixture(scope="module")
def node_lost(cluster):
    nodes, info, env, folder = cluster
    driver_env = env | {"RAY_ADDRESS": info["address"], "RAY_RUNTIME_ENV_HOOK": "tests.study_plugins.cluster_runtime_env",
                        "PYTHONPATH": str(ROOT)}
    with open(folder / "driver.out", "w") as out:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, *ARGV, "--storage", str(folder / "shared")],
                                  env=driver_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        marker = Path(env["NODE_LOSS_MARKER"])
        wait_for(marker, driver, timeout=150)
        nodes.stdin.write("remove\n")
        nodes.stdin.flush()
        assert nodes.stdout.readline().strip() == "removed"
        status = driver.wait(timeout=240)
    study = folder / "shared" / "cluster"
    record = json.loads((study / "study.json").read_text())
    return status, (folder / "driver.out").read_text(), json.loads(marker.read_text()), record, study


def rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted(folder.glob("trials/*.csv"))], ignore_index=True)


def test_trials_run_on_both_nodes_and_the_lost_nodes_trial_resumes_on_the_head(cluster, node_lost):
    _, info, _, _ = cluster
    status, output, stalled, record, _ = node_lost
    assert status == 0, output
    assert stalled["node_id"] == info["worker"]  # one trial ran on the worker node until the node was removed
    trials = record["trials"]
    assert [t["status"] for t in trials] == ["complete", "complete"]
    assert {t["node_id"] for t in trials} == {info["head"]}  # both ended on the head
    retried = [t for t in trials if t["resumed"]]
    assert len(retried) == 1 and retried[0]["pid"] != stalled["pid"]
    assert "from the checkpoint of epoch 1" in Path(retried[0]["log"]).read_text()


def test_the_study_has_exactly_the_rows_of_an_uninterrupted_study(node_lost, tmp_path):
    _, _, _, record, study = node_lost
    study_plugins.register()
    try:
        for trial in record["trials"]:  # the same trials, uninterrupted, one after another in this process
            run(RunConfig(**trial["config"], progress=False, output=str(tmp_path / trial["csv"])))
    finally:
        study_plugins.unregister()
    got, ref = rows(study), rows(tmp_path)
    assert len(ref) == 2 * 2 * 3 and not got.duplicated(KEY).any()
    assert sorted(map(tuple, got[KEY].values)) == sorted(map(tuple, ref[KEY].values))
    merged = ref.merge(got, on=KEY, suffixes=("_ref", "_got"))
    np.testing.assert_allclose(merged["val_loss_got"], merged["val_loss_ref"], rtol=1e-5)


def test_a_driver_without_the_clusters_token_is_refused(cluster):
    _, info, env, _ = cluster
    code = f"import ray; ray.init(address={info['address']!r}, log_to_driver=False)"
    wrong = env | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}
    driver = subprocess.Popen([sys.executable, "-c", code], env=wrong, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    refused = any("InvalidAuthToken" in line for line in driver.stderr)  # stops at the first refusal
    driver.kill()
    driver.wait()
    assert refused
