"""Toy measures for the study tests, registered in Ray workers by a worker setup hook.

``study_sigkill_once`` scores like magnitude, but the second time it scores in a
process (epoch 2, after that epoch's checkpoint and magnitude's sweep) it
SIGKILLs its own process, once per marker file (``KILL_MARKER``): a worker
dying mid-trial. ``study_fails`` always raises. ``study_stall_on_worker_node``
scores like magnitude, except in a process of the node started with
``STUDY_NODE_ROLE=worker`` (tests/ray_cluster.py): there it writes its pid and
Ray node id to ``NODE_LOSS_MARKER`` and waits for its node to be removed.
:func:`cluster_runtime_env` (a ``RAY_RUNTIME_ENV_HOOK``) registers these in a
cluster's workers, which run the project shipped as the job's working_dir.
"""

import json
import os
import signal
import time

import numpy as np

NAMES = ("study_sigkill_once", "study_fails", "study_stall_on_worker_node")


def _claim(marker: str) -> bool:
    """Create the marker atomically; only one process of the study wins."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def register():
    from measures import MEASURES, Measure, register_measure

    if "study_sigkill_once" in MEASURES.names():
        return

    @register_measure("study_sigkill_once")
    class SigkillOnce(Measure):
        calls = 0

        def score(self, ctx):
            SigkillOnce.calls += 1
            marker = os.environ.get("KILL_MARKER")
            if marker and SigkillOnce.calls == 2 and _claim(marker):
                os.kill(os.getpid(), signal.SIGKILL)
            return [np.abs(v.numpy()) for v in ctx.variables]

    @register_measure("study_fails")
    class Fails(Measure):
        def score(self, ctx):
            raise FloatingPointError("importance overflowed")

    @register_measure("study_stall_on_worker_node")
    class StallOnWorkerNode(Measure):
        def score(self, ctx):
            if os.environ.get("STUDY_NODE_ROLE") == "worker" and os.environ.get("NODE_LOSS_MARKER"):
                _stall(os.environ["NODE_LOSS_MARKER"])
            return [np.abs(v.numpy()) for v in ctx.variables]


def _stall(marker: str) -> None:
    """Tell the test which process and node this is, then wait to be killed with the node."""
    import ray

    claim = f"{marker}.{os.getpid()}"
    with open(claim, "w") as f:
        json.dump(dict(pid=os.getpid(), node_id=ray.get_runtime_context().get_node_id()), f)
    os.replace(claim, marker)
    time.sleep(600)


def cluster_runtime_env(runtime_env: dict | None) -> dict:
    """``RAY_RUNTIME_ENV_HOOK`` of the cluster test's driver: the job's workers register these measures."""
    return {**(runtime_env or {}), "worker_process_setup_hook": "tests.study_plugins.register"}


def unregister():
    from measures import MEASURES

    for name in NAMES:
        MEASURES.unregister(name)
