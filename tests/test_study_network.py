"""A local study listens on the loopback address only, and no Ray process outlives its SIGKILLed driver.

One study (``python -m harness``, 2 trials on 2 CPUs) runs in a subprocess;
its process tree and every socket it listens on (TCP) or is bound to (UDP)
are sampled until a trial has written its epoch-1 checkpoint, then the
driver is SIGKILLed. Every process it started must be gone within a few
seconds, and the same command then finishes the study, resuming.
"""

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]
KEY = ["run_id", "epoch", "measure", "aggregation", "pooling", "scope", "normalization", "replacement", "threshold"]
EPOCHS = 30  # long enough that the trials are still training when the driver is killed after epoch 1's checkpoint
ARGV = [sys.executable, "-m", "harness", "--seeds", "0-1", "--workers", "2", "--task", "digits", "--epochs", str(EPOCHS),
        "--measures", "magnitude", "--aggregations", "weight", "--thresholds", "0", "1", "--importance-samples", "32",
        "--no-progress", "--name", "net"]
GONE_WITHIN_S = 10

pytestmark = pytest.mark.slow


def tree(root: psutil.Process) -> dict[tuple[int, float], psutil.Process]:
    """The live descendants of ``root``, keyed by (pid, start time)."""
    found = {}
    for process in root.children(recursive=True):
        try:
            found[(process.pid, process.create_time())] = process
        except psutil.Error:
            continue
    return found


def exposed(processes) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket and bound UDP socket of the processes."""
    found = set()
    for process in processes:
        try:
            name, connections = process.name(), process.net_connections(kind="inet")
        except psutil.Error:
            continue
        found |= {(name, c.laddr.ip, c.laddr.port) for c in connections
                  if c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr)}  # 2: SOCK_DGRAM
    return found


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def alive(processes) -> list[str]:
    """Names of the processes still running (zombies count as gone)."""
    names = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                names.append(process.name())
        except psutil.Error:
            continue
    return names


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    pytest.importorskip("ray")
    storage = tmp_path_factory.mktemp("studies")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [*ARGV, "--storage", str(storage)]
    with open(storage / "driver.out", "w") as out:
        driver = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    root, processes, sockets = psutil.Process(driver.pid), {}, set()
    deadline = time.monotonic() + 150
    while not any(storage.glob("net/trials/*/epoch-1/manifest.json")):
        assert driver.poll() is None and time.monotonic() < deadline, (storage / "driver.out").read_text()
        processes |= tree(root)
        sockets |= exposed([root, *processes.values()])
        time.sleep(0.2)
    processes |= tree(root)
    sockets |= exposed([root, *processes.values()])
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    killed_at, survivors = time.monotonic(), alive(processes.values())
    while survivors and time.monotonic() - killed_at < 90:
        time.sleep(0.2)
        survivors = alive(processes.values())
    gone_after = time.monotonic() - killed_at
    rerun = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return dict(processes=processes, sockets=sockets, survivors=survivors, gone_after=gone_after, rerun=rerun,
                folder=storage / "net")


def test_a_local_study_listens_on_the_loopback_address_only(killed):
    sockets = killed["sockets"]
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names and any(name.startswith("ray::") for name in names), sockets
    assert [s for s in sockets if not is_loopback(s[1])] == []


def test_no_process_of_a_sigkilled_driver_outlives_it(killed):
    names = {p.name() if p.is_running() else "" for p in killed["processes"].values()}
    assert len(killed["processes"]) >= 4, names  # Ray's processes were seen
    assert killed["survivors"] == [] and killed["gone_after"] < GONE_WITHIN_S, killed


def test_the_same_command_then_resumes_and_finishes_the_study(killed):
    rerun, folder = killed["rerun"], killed["folder"]
    assert rerun.returncode == 0, rerun.stderr
    trials = json.loads((folder / "study.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["complete", "complete"] and any(t["resumed"] for t in trials)
    assert any("from the checkpoint of epoch" in Path(t["log"]).read_text() for t in trials if t["resumed"])
    frame = pd.concat([pd.read_csv(folder / t["csv"]) for t in trials], ignore_index=True)
    assert len(frame) == 2 * EPOCHS * 2 and not frame.duplicated(KEY).any()
