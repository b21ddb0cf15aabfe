"""Toy measures for the study tests, registered in Ray workers by a worker setup hook.

``study_sigkill_once`` scores like magnitude, but the second time it scores in a
process (epoch 2, after that epoch's checkpoint and magnitude's sweep) it
SIGKILLs its own process, once per marker file (``KILL_MARKER``): a worker
dying mid-trial. ``study_fails`` always raises.
"""

import os
import signal

import numpy as np

NAMES = ("study_sigkill_once", "study_fails")


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


def unregister():
    from measures import MEASURES

    for name in NAMES:
        MEASURES.unregister(name)
