"""Ends a local study's Ray processes when its driver ends, even when the driver is SIGKILLed.

Ray's GCS server and raylet die with the driver that started them (the
kernel's parent-death signal), but their agents (runtime env agent, dashboard
agent) notice the raylet's death and then wait up to 60 s trying to report it
to the GCS, which is gone too, before they exit (Ray 2.60: the timeout of
``publish_error_to_driver``). Started by the driver just before ``ray.init``,
``python -m harness.study.reaper <driver pid>`` notes, twice a second, the driver's
descendants that were not there when it started and look like Ray's (``ray``
in their command line); it prints ``ready`` once it has noted the others.
When its standard input closes (the driver closes it
after ``ray.shutdown()``, or the driver died), it waits 1 s for them to end,
then terminates the survivors (SIGTERM, SIGKILL after 2 s) and exits.
"""

from __future__ import annotations

import select
import sys

import psutil

POLL_S = 0.5


def descendants(driver: psutil.Process) -> dict[tuple[int, float], psutil.Process]:
    """The driver's live descendants, keyed by (pid, start time) so a reused pid is never mistaken."""
    found = {}
    for process in driver.children(recursive=True):
        try:
            found[(process.pid, process.create_time())] = process
        except psutil.Error:
            continue
    return found


def is_ray(process: psutil.Process) -> bool:
    """Whether a process is one of Ray's (its name or command line mentions ray)."""
    try:
        return "ray" in process.name() or any("ray" in part for part in process.cmdline())
    except psutil.Error:
        return False


def watch(driver: psutil.Process, stream) -> dict[tuple[int, float], psutil.Process]:
    """Note the driver's new Ray descendants until ``stream`` closes or the driver is gone; print ``ready`` first."""
    me = psutil.Process()
    before = set(descendants(driver)) | {(me.pid, me.create_time())}
    print("ready", flush=True)
    seen = {}
    while driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE:
        seen |= {key: p for key, p in descendants(driver).items() if key not in before and is_ray(p)}
        if select.select([stream], [], [], POLL_S)[0] and not stream.read(1):
            break
    return seen


def end(processes: list[psutil.Process], grace_s: float = 1.0) -> None:
    """Let the processes end by themselves for ``grace_s``, then SIGTERM them, then SIGKILL after 2 s."""
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        _signal(process.terminate)
    _, alive = psutil.wait_procs(alive, timeout=2.0)
    for process in alive:
        _signal(process.kill)


def _signal(send) -> None:
    try:
        send()
    except psutil.Error:
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.study.reaper <driver pid>``, standard input a pipe that the driver holds open."""
    try:
        driver = psutil.Process(int((argv or sys.argv[1:])[0]))
    except psutil.Error:
        return 0
    seen = watch(driver, sys.stdin.buffer)
    end([p for p in seen.values() if p.is_running()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
