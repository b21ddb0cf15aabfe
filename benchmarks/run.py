"""Where the time of a whole run goes: start-up, data, training, measures, sweep floors, everything else.

Runs ``python -m harness --task mnist --model mlp --data-dir DIR --epochs 2``
(all registered measures and aggregations, the default grid) in a child
process, ``--repeats`` times, writing to a temporary folder. The child times
the harness's own functions by wrapping them:

- start-up and imports: from the parent starting the child to the end of the
  child's imports (interpreter, TensorFlow, Keras, the harness);
- data: ``Task.load``; training: ``Trainer.train_epoch``; measures:
  ``Scorer.score``;
- sweep floors: the number of thresholds evaluated (sweeps copied from an
  identical earlier one, such as filter items on an MLP, evaluate none)
  times one compiled forward pass of the validation set (timed after the
  run on the final model, median of 21 passes);
- everything else: the rest of the wall time, itemised as sweeps beyond
  their floors (masking, method choice, cost counts; negative where the
  shrunk model beats the floor), aggregation and ranking, CSV writes,
  checkpoints, and the remainder (model building, tracing, metadata, logging).

Prints each as a share of the wall time, median of the repeats.

Usage: ``python benchmarks/run.py [--data-dir ../shared/data/mnist] [--repeats 3] [--epochs 2]``.
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
PARTS = ["start-up and imports", "data", "training", "measures", "sweep floors", "everything else"]
OTHER = ["sweeps beyond their floors", "aggregation and ranking", "CSV writes", "checkpoints", "remainder"]


def child(out: str, argv: list[str]) -> None:
    """Run the harness CLI in this process with timing wrappers; write the timings as JSON to ``out``."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import harness.pipeline.assembly
    import harness.pipeline.scoring
    import harness.pipeline.sweeping
    import harness.pipeline.train
    from harness.cli import main as cli
    from harness.pipeline import checkpoint, results
    from tasks import get_task

    imported = time.time()
    spent = dict.fromkeys(["data", "training", "measures", "sweeps", "ranking", "csv", "checkpoints"], 0.0)
    evaluators = []

    def timed(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    pipeline = harness.pipeline
    for owner, name, key in [(type(get_task("mnist")), "load", "data"), (pipeline.train.Trainer, "train_epoch", "training"),
                             (pipeline.scoring.Scorer, "score", "measures"), (pipeline.sweeping, "sweep", "sweeps"),
                             (pipeline.sweeping.Sweeper, "thresholder", "ranking"), (results, "append_rows", "csv"),
                             (checkpoint, "save", "checkpoints")]:
        timed(owner, name, key)

    class Recorded(harness.pipeline.assembly.Evaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            evaluators.append(self)

    harness.pipeline.assembly.Evaluator = Recorded
    status = cli.main(argv)
    finished = time.time()
    passes = []
    for _ in range(21):
        start = time.perf_counter()
        evaluators[-1]()
        passes.append(time.perf_counter() - start)
    Path(out).write_text(json.dumps(dict(status=status, imported=imported, finished=finished, spent=spent,
                                         thresholds=evaluators[-1].evaluations, per_pass=float(np.median(passes)))))


def shares(started: float, timings: dict) -> dict:
    """Each part of the run as a fraction of its wall time."""
    wall = timings["finished"] - started
    spent = timings["spent"]
    floors = timings["thresholds"] * timings["per_pass"]
    parts = {"start-up and imports": timings["imported"] - started, "data": spent["data"],
             "training": spent["training"], "measures": spent["measures"], "sweep floors": floors}
    parts["everything else"] = wall - sum(parts.values())
    other = {"sweeps beyond their floors": spent["sweeps"] - floors, "aggregation and ranking": spent["ranking"],
             "CSV writes": spent["csv"], "checkpoints": spent["checkpoints"]}
    other["remainder"] = parts["everything else"] - sum(other.values())
    return {"wall": wall, **{k: v / wall for k, v in {**parts, **other}.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", str(ROOT.parent / "shared/data/mnist")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1:])
    runs = []
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "timings.json"
            argv = ["--task", "mnist", "--model", "mlp", "--data-dir", args.data_dir, "--epochs", str(args.epochs),
                    "--output", str(Path(folder) / "results.csv"), "--no-progress"]
            started = time.time()
            subprocess.run([sys.executable, __file__, "--child", str(out), *argv], check=True, cwd=ROOT)
            timings = json.loads(out.read_text())
        if timings["status"] != 0:
            raise SystemExit(f"the run exited with status {timings['status']}")
        runs.append(shares(started, timings))
    median = {key: float(sorted(r[key] for r in runs)[len(runs) // 2]) for key in runs[0]}
    print(f"python -m harness --task mnist --model mlp --epochs {args.epochs} (all measures and aggregations): "
          f"wall {median['wall']:.1f} s, median of {args.repeats}; shares of the wall time:")
    for key in PARTS:
        print(f"  {key:32s}{median[key]:7.1%}")
    for key in OTHER:
        print(f"    {key:30s}{median[key]:7.1%}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
