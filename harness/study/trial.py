"""One trial of a study, as a Ray worker runs it: an ordinary run in a fresh process.

This module imports nothing heavy at import time: a worker unpickles the
trial function (importing this module) before it runs it, and TensorFlow must
be imported only after the trial has decided which GPUs it may see.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def started(output: Path) -> bool:
    """Whether any file of this trial exists (``<run_id>.csv`` and the run's files beside it)."""
    return any(output.parent.glob(f"{output.stem}*"))


def log_file(output: Path) -> str | None:
    """The trial's log file (the run writes it beside its CSV), or None when it has none yet."""
    logs = sorted(output.parent.glob(f"{output.stem}*.log"))
    return str(logs[0]) if logs else None


def one_line(error: BaseException) -> str:
    """``"Type: first line of the message"``."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def ray_node_id() -> str | None:
    """The id of the Ray node this process runs on (hex), or None outside Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def run_trial(fields: dict, gpus: float) -> dict:
    """Run the trial whose ``RunConfig`` fields are ``fields``; resume it if it has files already.

    A trial started before (a retry after its worker died, or a re-run of the
    study) continues from its own checkpoint and skips every sweep already in
    its CSV. With ``gpus == 0`` TensorFlow is kept off every GPU
    (``CUDA_VISIBLE_DEVICES=""`` before TensorFlow is imported); otherwise Ray
    has set ``CUDA_VISIBLE_DEVICES`` to the GPUs it reserved.

    Args:
        fields: Keyword arguments of ``RunConfig`` with an absolute ``output``.
        gpus: GPUs reserved for this trial (fractions allowed).

    Returns:
        ``status`` ("complete" or "failed"), ``error`` (one line, or None),
        ``log`` (path or None), ``seconds``, ``resumed``, ``node`` (host
        name), ``node_id`` (the Ray node's id), ``pid`` and
        ``cuda_visible_devices``. A failure of the run is returned, not raised,
        so Ray does not retry it; only a dead worker is retried.
    """
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from harness.pipeline.config import RunConfig
    from harness.pipeline.experiment import run

    output = Path(fields["output"])
    resumed, start, error = started(output), time.perf_counter(), None
    try:
        run(RunConfig(**{**fields, "resume": resumed}))
    except Exception as failure:  # noqa: BLE001 - reported to the study as this trial's failure
        error = one_line(failure)
    return dict(status="failed" if error else "complete", error=error, log=log_file(output),
                seconds=round(time.perf_counter() - start, 3), resumed=resumed, node=socket.gethostname(),
                node_id=ray_node_id(), pid=os.getpid(), cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
