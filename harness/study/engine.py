"""Run a study's trials on Ray: one task per trial, each in a fresh worker process.

Each trial is a Ray task with ``max_calls=1`` (its worker exits afterwards, so
TensorFlow's memory is released between trials) and ``max_retries`` (a trial
whose worker dies, killed or out of memory or with its node, runs again and
resumes from its own checkpoint). Only the driver learns the outcomes; it
hands each to a callback as it arrives. Imported only when a study has work
to do: a single run never imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ray
from ray._private import ray_constants
from ray._private.utils import get_dashboard_dependency_error

from harness.common import progress
from harness.study.spec import Engine
from harness.study.trial import one_line, run_trial

ROOT = Path(__file__).resolve().parents[2]
SHIP_EXCLUDES = [".git", ".venv", "data", "figures", "*.ipynb", "__pycache__"]
LOOPBACK = "127.0.0.1"


def connect(engine: Engine) -> subprocess.Popen | bool:
    """Start or join Ray unless it is running in this process already; return what :func:`disconnect` ends.

    A local instance gets ``workers`` CPUs and the project on its workers'
    path, listens on the loopback address only (:func:`on_loopback`), has no
    dashboard unless ``engine.dashboard`` (then on 127.0.0.1), and is watched
    by :mod:`harness.study.reaper`, returned here, so that none of its processes
    outlives the driver. Joining a cluster ships the project's code with the
    job (``runtime_env.working_dir``), so every node runs the driver's code;
    True is returned then, False when Ray was running already.

    Raises:
        ValueError: ``engine.dashboard`` without Ray's dashboard packages.
    """
    if ray.is_initialized():
        return False
    # Ray's notice that a local instance uses token authentication (its default, kept) is not for the user
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if engine.address:
        ray.init(address=engine.address, runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES}, **quiet)
        return True
    return start_local(engine, quiet)


def start_local(engine: Engine, quiet: dict) -> subprocess.Popen:
    """Start the reaper, then a local Ray on the loopback address; return the reaper.

    Raises:
        ValueError: ``engine.dashboard`` without Ray's dashboard packages.
    """
    if engine.dashboard and get_dashboard_dependency_error() is not None:
        raise ValueError("--dashboard needs the dashboard's packages: pip install 'ray[default]'. "
                         f"Received: dashboard=True, {get_dashboard_dependency_error()}")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    reaper = subprocess.Popen([sys.executable, "-m", "harness.study.reaper", str(os.getpid())], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path})
    try:
        reaper.stdout.readline()  # it has noted the processes that are not Ray's
        with on_loopback():
            ray.init(address="local", num_cpus=engine.workers or os.cpu_count(), include_dashboard=engine.dashboard,
                     dashboard_host=LOOPBACK, runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
    except BaseException:
        disconnect(reaper)
        raise
    return reaper


def disconnect(owned: subprocess.Popen | bool) -> None:
    """Shut down the Ray that :func:`connect` started or joined, and let its reaper end what is left."""
    if owned:
        ray.shutdown()
    if isinstance(owned, subprocess.Popen):
        owned.stdin.close()
        try:
            owned.wait(timeout=10)
        except subprocess.TimeoutExpired:
            owned.kill()


@contextlib.contextmanager
def on_loopback():
    """Let ``ray.init`` start a Ray whose every server listens on 127.0.0.1 only.

    Ray (2.60) binds its GCS, raylet, object manager, workers' and agents'
    servers to the node's address, and to the loopback interface alone when
    that address is 127.0.0.1; ``ray.init`` takes 127.0.0.1 for a new local
    instance only where multi-node clusters are off (macOS and Windows:
    ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``). That flag is turned
    off while this process starts its own Ray, and restored.
    """
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def capacity(engine: Engine) -> int:
    """How many trials the Ray cluster can run at once (one CPU each, plus their GPUs).

    Raises:
        ValueError: a trial asks for more GPUs than the cluster has (it would wait forever).
    """
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 1))
    if engine.gpus_per_trial > resources.get("GPU", 0):
        raise ValueError(f"gpus_per_trial={engine.gpus_per_trial} but the Ray cluster has "
                         f"{resources.get('GPU', 0):g} GPUs; use --gpus-per-trial 0 to run on CPUs.")
    if engine.gpus_per_trial:
        slots = min(slots, int(resources.get("GPU", 0) / engine.gpus_per_trial))
    return max(1, min(slots, engine.workers or slots))


def execute(trials: list[dict], engine: Engine, on_result: Callable[[int, dict], None], done: int = 0,
            total: int | None = None, desc: str = "study") -> None:
    """Run ``trials`` (``RunConfig`` fields each) and call ``on_result(index, outcome)`` as each ends.

    Outcomes are :func:`harness.study.trial.run_trial`'s dictionaries; a trial whose
    worker died more than ``max_retries`` times gets ``status="failed"`` and
    the Ray error. One progress bar counts trials ended (``done`` of them
    before this call), running and failed, with an ETA.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM; trials still in flight are cancelled.
    """
    owned = connect(engine)
    try:
        with progress.bar(total=total or len(trials), initial=done, desc=desc, unit="trial",
                          enabled=engine.progress) as bar:
            def say(ended: int, failed: int) -> None:  # where no bar is drawn: one line per ended trial
                progress.line(f"{desc}: {done + ended} of {total or len(trials)} trials ended, {failed} failed",
                              engine.progress)

            _run(trials, engine, on_result, bar, say)
    finally:
        disconnect(owned)


def _run(trials: list[dict], engine: Engine, on_result, bar, say) -> None:
    slots, queue, pending, failed, ended = capacity(engine), list(enumerate(trials)), {}, 0, 0
    task = ray.remote(num_cpus=1, num_gpus=engine.gpus_per_trial, max_calls=1,
                      max_retries=engine.max_retries)(run_trial)
    try:
        while queue or pending:
            while queue and len(pending) < (engine.workers or len(trials)):
                index, fields = queue.pop(0)
                pending[task.remote(fields, engine.gpus_per_trial)] = index
            bar.set_postfix(running=min(len(pending), slots), failed=failed)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                outcome = _outcome(ref)
                failed += outcome["status"] != "complete"
                on_result(pending.pop(ref), outcome)
                bar.update(1)
                ended += 1
                say(ended, failed)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    bar.set_postfix(running=0, failed=failed)


def _outcome(ref) -> dict:
    """The trial's own outcome, or a failure naming the Ray error (worker died too often, node lost)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        return dict(status="failed", error=one_line(error), log=None)
