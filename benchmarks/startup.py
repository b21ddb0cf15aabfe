"""How long the commands that compute nothing take: ``--help``, ``--list`` and reruns of finished work.

Each command runs in a fresh interpreter, ``--repeats`` times, in a temporary
folder; the table gives the median wall time, its ratio to ``python -c pass``
(the interpreter alone) and whether TensorFlow or Ray was imported. The
finished run (digits, 1 epoch, magnitude, 2 thresholds) and the finished
study (the same on seeds 0-1, 2 workers) are computed once first, untimed.
``--project`` times another checkout of the project (e.g. an older commit)
with the same commands; ``--exclude`` leaves out commands by a part of their
label (before ``harness.study --list`` listed, it ran a whole default study).

Usage: ``python benchmarks/startup.py [--repeats 5] [--project PATH] [--no-study] [--exclude "study --list"]``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ["--task", "digits", "--epochs", "1", "--measures", "magnitude", "--aggregations", "weight",
       "--thresholds", "0", "1", "--importance-samples", "64", "--no-progress"]
PROBE = ("import runpy, sys; m = sys.argv[1]; sys.argv = sys.argv[1:]\n"
         "try:\n    runpy.run_module(m, run_name='__main__', alter_sys=True)\nexcept SystemExit:\n    pass\n"
         "sys.__stderr__.write('HEAVY=' + ','.join(sorted({'tensorflow', 'ray'} & set(sys.modules))) + '\\n')")


def timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """Seconds of one run of ``python argv`` and the heavy packages it imported ("-" when not probed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    heavy = [line[6:] for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    return seconds, (heavy[0] or "none") if heavy else "-"


def commands(study: bool) -> dict[str, list[str]]:
    """Label -> arguments of python (``-c pass`` first, the baseline)."""
    probe = ["-c", PROBE]
    found = {"python -c pass": ["-c", "pass"],
             "harness --help": [*probe, "harness", "--help"],
             "harness --list": [*probe, "harness", "--list"],
             "harness.study --help": [*probe, "harness.study", "--help"],
             "harness.study --list": [*probe, "harness.study", "--list"],
             "harness.experiments.localize --help": [*probe, "harness.experiments.localize", "--help"],
             "harness (finished run)": [*probe, "harness", *RUN, "--output", "out/r.csv"]}
    if study:
        found["harness.study (finished study)"] = [*probe, "harness", *RUN, "--seeds", "0-1", "--workers", "2",
                                                   "--storage", "studies"]
    return found


def main() -> None:
    """Compute the finished run (and study), then time every command and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--project", default=str(ROOT), help="checkout of the project to time (default: this one)")
    parser.add_argument("--no-study", dest="study", action="store_false", help="skip the finished study (Ray)")
    parser.add_argument("--exclude", nargs="*", default=[], help="leave out commands whose label contains one of these")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(Path(args.project).resolve()))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        table = {k: v for k, v in commands(args.study).items() if not any(part in k for part in args.exclude)}
        for label in [k for k in table if "finished" in k]:  # the work, once, untimed (its second run is timed)
            subprocess.run([sys.executable, "-m", *table[label][2:]], cwd=cwd, env=env, check=True, capture_output=True)
        times = {}
        for label, argv in table.items():
            runs = [timed(argv, cwd, env) for _ in range(args.repeats)]
            times[label] = (statistics.median(s for s, _ in runs), runs[-1][1])
    base = times["python -c pass"][0]
    print(f"project {args.project}; median of {args.repeats}; {os.cpu_count()} cores")
    print(f"{'command':<32}{'seconds':>9}{'x pass':>9}  imported")
    for label, (seconds, heavy) in times.items():
        print(f"{label:<32}{seconds:9.2f}{seconds / base:9.1f}  {heavy}")


if __name__ == "__main__":
    main()
