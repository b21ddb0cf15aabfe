"""Time a study of 4 digits trials on 2 Ray workers against the same 4 trials run one after another.

One after another (the original study's shell loop): ``python -m harness --seed s`` for each
seed, each a fresh process, run at the niceness Ray gives its workers (15), so that other load on
a shared machine slows both sides alike. The study: ``Study(...).run(workers=2)``, each trial a fresh Ray
worker process, Ray's start and shutdown included. The Ray start-up cost is timed on its own:
``ray.init`` of a local instance plus a first no-op task (its worker process starting).
Prints the load average, since the machine may be shared.

Usage: ``python benchmarks/study.py [--trials 4] [--workers 2] [--epochs 3]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_NICENESS = 15  # Ray's default worker_niceness
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness.study.driver import Study  # noqa: E402


def settings(epochs: int) -> dict:
    return dict(task="digits", epochs=epochs, aggregations=["weight", "unit"],
                measures=["magnitude", "fisher", "mas", "obd", "si", "random"])


def option_args(values: dict) -> list[str]:
    args = []
    for key, value in values.items():
        args += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    return args


def one_after_another(seeds, epochs, folder: Path) -> float:
    start = time.perf_counter()
    for seed in seeds:
        cmd = [sys.executable, "-m", "harness", *option_args(settings(epochs)), "--seed", str(seed),
               "--output", str(folder / f"seed{seed}.csv"), "--no-progress"]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, preexec_fn=lambda: os.nice(RAY_NICENESS))
    return time.perf_counter() - start


def _pid() -> int:
    return os.getpid()


def ray_startup(workers: int) -> tuple[float, float]:
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    started = time.perf_counter()
    ray.get(ray.remote(max_calls=1)(_pid).remote())
    first_task = time.perf_counter()
    ray.shutdown()
    return started - start, first_task - started


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    seeds = list(range(args.trials))
    print(f"{args.trials} digits trials ({args.epochs} epochs, 6 measures, weight+unit, 21 thresholds); "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        init, first_task = ray_startup(args.workers)
        sequential = one_after_another(seeds, args.epochs, Path(tmp) / "sequential")
        study = Study(settings(args.epochs), {"seed": seeds}, storage=Path(tmp) / "studies")
        start = time.perf_counter()
        record = study.run(workers=args.workers, progress=False)
        parallel = time.perf_counter() - start
        trial_seconds = [t["seconds"] for t in record["trials"]]
        assert all(t["status"] == "complete" for t in record["trials"]), json.dumps(record["trials"], indent=1)
    print(f"Ray start-up: ray.init {init:.2f} s, first task (a worker process starts) {first_task:.2f} s")
    print(f"one after another (a process per trial): {sequential:.1f} s")
    print(f"study on {args.workers} workers (Ray start and shutdown included): {parallel:.1f} s; "
          f"runs inside the workers took {min(trial_seconds):.1f}-{max(trial_seconds):.1f} s each")
    print(f"speed-up: {sequential / parallel:.2f}x "
          f"({sequential / (parallel - init):.2f}x without ray.init)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
