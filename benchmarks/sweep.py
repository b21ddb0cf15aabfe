"""Time 21-point threshold sweeps on the MNIST MLP and CNN against their floor and the naive method.

Floor: 21 compiled forward passes of the validation set through the full
model (what any sweep must at least evaluate). Sweep: ``harness.thresholding.sweep.sweep``
on magnitude scores, layer scope, zero replacement; ``weight`` items use
incremental masking, ``unit`` items the shrunk model (``auto`` method), and
the batched method evaluates all thresholds in one pass. Naive (the original
study's shape): for every threshold clone the model, set the masked weights,
compile and evaluate. Ranking: ``Thresholder`` construction (one sort of the
items). The shrunk sweep reuses the first layer's products while its
kernel is unchanged (the sweeps of one epoch); the line below it times the
first sweep after a change, which computes them. Times are CPU seconds of this process (wall seconds in brackets),
median of ``--repeats``; ratios are of medians. The machine's load average is
printed, since other processes slow both sides of a wall-clock ratio.

Per-class overhead: the same sweeps with ``per_class`` on (an evaluator
with per-class columns: each class's summed loss and correct predictions
from the same compiled pass), against the sweeps without.

Also printed: the shrunk model's inference time against the full model's
(per threshold, from the shrunk sweep's ``sweep_seconds``), and the same
floor and sweep with XLA (``jit_compile=True``), plus one training epoch with
and without XLA.

Reference models (``--models resnet20,vit``, the MNIST models of ``tasks/resnet20.py`` and
``tasks/vit.py``, random initial weights): not chains, so every sweep masks (``auto``; ``shrunk``
falls back to masking, :mod:`harness.thresholding.structure`). Timed: the floor, the weight, unit and (ResNet-20)
filter sweeps with masking, and the ranking; printed as ratios to the floor. The naive, batched and
XLA lines are not run for them. ``--val-size`` keeps the first validation images only.

Usage: ``python benchmarks/sweep.py [--data-dir ../shared/data/mnist] [--repeats 3] [--models mlp,cnn]
[--val-size N]``. Without MNIST files it times on random inputs of MNIST's shape.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import harness.thresholding.sweep  # noqa: E402
import harness.thresholding.threshold  # noqa: E402
from aggregations import get_aggregation  # noqa: E402
from harness.pipeline.train import Trainer  # noqa: E402
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.sweep import replacement_values, sweep  # noqa: E402
from harness.thresholding.threshold import Thresholder  # noqa: E402
from measures import prunable_params  # noqa: E402
from tasks import DatasetUnavailable, get_task  # noqa: E402

THRESHOLDS = np.round(np.linspace(0, 1, 21), 10)
harness.thresholding.sweep.RECENT = 0  # every timed sweep evaluates (a repeated sweep would otherwise be copied)
harness.thresholding.threshold.RECENT_RANKINGS = 0  # and every timed ranking sorts


def validation_data(data_dir):
    task = get_task("mnist")
    try:
        data = task.load(data_dir)
        return data.x_val, data.y_val, data.x_train, data.y_train, "MNIST validation images"
    except DatasetUnavailable:
        rng = np.random.default_rng(0)
        x, y = rng.random((10000, 28, 28, 1), np.float32), rng.integers(0, 10, 10000)
        return x[:2000], y[:2000], x[2000:], y[2000:], "random inputs"


def naive_sweep(model, params, thresholder, replacement, x, y, loss):
    originals = [p.variable.numpy() for p in params]
    names = {id(p.variable): i for i, p in enumerate(params)}
    losses = []
    for t in THRESHOLDS:
        masked = [np.where(m, r, o) for m, r, o in zip(thresholder.masks(t), replacement, originals)]
        clone = keras.models.clone_model(model)
        weights = [masked[names[id(v)]] if id(v) in names else v.numpy() for v in model.weights]
        clone.set_weights(weights)
        clone.compile(loss=loss)
        losses.append(clone.evaluate(x, y, batch_size=1024, verbose=0))
    return losses


class Timer:
    """Median CPU and wall seconds of named callables, repeated in turns."""

    def __init__(self):
        self.cpu, self.wall, self.results = {}, {}, {}

    def __call__(self, name, fn):
        """Run ``fn`` once, recording its times under ``name`` and keeping its result."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.results[name] = fn()
        self.cpu.setdefault(name, []).append(time.process_time() - cpu)
        self.wall.setdefault(name, []).append(time.perf_counter() - wall)

    def ratio(self, a, b) -> str:
        """``median(a) / median(b)``: CPU time, then wall time in brackets."""
        cpu = np.median(self.cpu[a]) / np.median(self.cpu[b])
        wall = np.median(self.wall[a]) / np.median(self.wall[b])
        return f"{cpu:7.3f}  [{wall:6.3f}]"

    def seconds(self, name) -> str:
        """Median CPU and wall seconds of ``name``."""
        return f"{np.median(self.cpu[name]):7.3f} s [{np.median(self.wall[name]):6.3f} s]"


def bench_model(name, data, repeats):
    x, y, x_train, y_train, source = data
    task = get_task("mnist")
    keras.utils.set_random_seed(0)
    model, loss = task.build_model(name, x.shape[1:]), task.loss()
    params = prunable_params(model)
    scores = [np.abs(p.variable.numpy()) for p in params]
    weight_items, unit_items = get_aggregation("weight")(params, scores), get_aggregation("unit")(params, scores)
    weight, unit = Thresholder(weight_items, "layer"), Thresholder(unit_items, "layer")
    replacement = replacement_values(params, "zero", 0)
    evaluate, xla = Evaluator(model, loss, x, y), Evaluator(model, loss, x, y, jit_compile=True)
    per_class = Evaluator(model, loss, x, y, classes=task.num_classes)
    runs = {
        "floor": lambda: [evaluate() for _ in THRESHOLDS],
        "sweep": lambda: sweep(params, weight, replacement, THRESHOLDS, evaluate),
        "unit": lambda: sweep(params, unit, replacement, THRESHOLDS, evaluate),
        "unit fresh": lambda: (recompute_products(evaluate), sweep(params, unit, replacement, THRESHOLDS, evaluate))[1],
        "unit masked": lambda: sweep(params, unit, replacement, THRESHOLDS, evaluate, "masked"),
        "batched": lambda: sweep(params, weight, replacement, THRESHOLDS, evaluate, "batched"),
        "ranking": lambda: Thresholder(weight_items, "layer"),
        "sweep per-class": lambda: sweep(params, weight, replacement, THRESHOLDS, per_class),
        "unit per-class": lambda: sweep(params, unit, replacement, THRESHOLDS, per_class),
    }
    later = {  # after the others: the naive method and XLA leave threads and memory behind
        "naive": lambda: naive_sweep(model, params, weight, replacement, x, y, loss),
        "floor xla": lambda: [xla() for _ in THRESHOLDS],
        "sweep xla": lambda: sweep(params, weight, replacement, THRESHOLDS, xla, "masked"),
    }
    timer = Timer()
    for group in (runs, later):
        for fn in group.values():  # trace every compiled function once, as a run does in its first sweep
            fn()
        for _ in range(repeats):
            for key, fn in group.items():
                timer(key, fn)
    check(timer.results)
    print(f"\nMNIST {name.upper()} ({sum(int(np.prod(p.shape)) for p in params):,} prunable weights), {len(x)} {source}, "
          f"{len(THRESHOLDS)} thresholds, median of {repeats}: CPU time [wall]")
    print(f"  floor (21 compiled forward passes)           {timer.seconds('floor')}")
    for label, a, b in [("sweep / floor (weight items, masked)", "sweep", "floor"),
                        ("naive / sweep", "naive", "sweep"),
                        ("ranking / floor (Thresholder, weight items)", "ranking", "floor"),
                        ("unit sweep / floor (shrunk model)", "unit", "floor"),
                        ("  same, first-layer products recomputed", "unit fresh", "floor"),
                        ("unit sweep masked / floor", "unit masked", "floor"),
                        ("batched (all thresholds, one pass) / floor", "batched", "floor"),
                        ("XLA floor / floor", "floor xla", "floor"),
                        ("XLA sweep / XLA floor", "sweep xla", "floor xla"),
                        ("per-class sweep / sweep (weight, masked)", "sweep per-class", "sweep"),
                        ("per-class unit sweep / unit sweep (shrunk)", "unit per-class", "unit")]:
        print(f"  {label:45s}{timer.ratio(a, b)}")
    per_pass = np.median(timer.wall["floor"]) / len(THRESHOLDS)
    shrunk = [row["sweep_seconds"] / per_pass for row in timer.results["unit"]]
    print("  shrunk model inference / full model (wall, t = 0.25, 0.5, 0.75, 0.95): "
          + ", ".join(f"{shrunk[i]:.2f}" for i in (5, 10, 15, 19)))
    train_epoch(model, loss, params, x_train, y_train)


REFERENCE = ("resnet20", "vit")


def bench_reference(name, data, repeats):
    """Floor and masked sweeps of a residual or attention model (no shrunk, batched or naive lines)."""
    x, y, _, _, source = data
    task = get_task("mnist")
    keras.utils.set_random_seed(0)
    model, loss = task.build_model(name, x.shape[1:]), task.loss()
    params = prunable_params(model)
    scores = [np.abs(p.variable.numpy()) for p in params]
    evaluate = Evaluator(model, loss, x, y)
    replacement = replacement_values(params, "zero", 0)
    aggregations = ["weight", "unit"] + (["filter"] if any(p.kind == "conv" for p in params) else [])
    items = {agg: get_aggregation(agg)(params, scores) for agg in aggregations}
    thresholders = {agg: Thresholder(items[agg], "layer") for agg in aggregations}
    runs = {"floor": lambda: [evaluate() for _ in THRESHOLDS], "ranking": lambda: Thresholder(items["weight"], "layer")}
    runs |= {agg: (lambda agg=agg: sweep(params, thresholders[agg], replacement, THRESHOLDS, evaluate))
             for agg in aggregations}
    runs["unit shrunk"] = lambda: sweep(params, thresholders["unit"], replacement, THRESHOLDS, evaluate, "shrunk")
    timer = Timer()
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for key, fn in runs.items():
            timer(key, fn)
    losses = {key: [row["val_loss"] for row in rows] for key, rows in timer.results.items() if isinstance(rows, list)
              and rows and isinstance(rows[0], dict)}
    np.testing.assert_allclose(losses["unit shrunk"], losses["unit"], rtol=1e-6)  # shrunk masks here
    print(f"\nMNIST {name} ({sum(int(np.prod(p.shape)) for p in params):,} prunable weights, "
          f"{model.count_params():,} parameters), {len(x)} {source}, {len(THRESHOLDS)} thresholds, median of {repeats}: "
          "CPU time [wall]")
    print(f"  floor (21 compiled forward passes)           {timer.seconds('floor')}")
    for agg in aggregations:
        print(f"  {agg + ' sweep / floor (masked)':45s}{timer.ratio(agg, 'floor')}")
    print(f"  {'unit sweep, method shrunk (masks) / floor':45s}{timer.ratio('unit shrunk', 'floor')}")
    print(f"  {'ranking / floor (Thresholder, weight items)':45s}{timer.ratio('ranking', 'floor')}")


def recompute_products(evaluate):
    """Make the next shrunk sweep compute the first layer's products again, as the first sweep after training does."""
    first = evaluate._compiled.get("first layer")
    if first is not None:
        first._digest = None


def check(results):
    """The methods agree: shrunk and batched to rtol 1e-5 with masked, naive to 1e-4."""
    losses = {key: [row["val_loss"] for row in rows] for key, rows in results.items()
              if isinstance(rows, list) and rows and isinstance(rows[0], dict)}
    np.testing.assert_allclose(losses["unit"], losses["unit masked"], rtol=1e-5)
    np.testing.assert_allclose(losses["unit fresh"], losses["unit masked"], rtol=1e-5)
    np.testing.assert_allclose(losses["batched"], losses["sweep"], rtol=1e-5)
    np.testing.assert_allclose(losses["sweep xla"], losses["sweep"], rtol=1e-5)
    np.testing.assert_allclose(results["naive"], losses["sweep"], rtol=1e-4)
    np.testing.assert_allclose(losses["sweep per-class"], losses["sweep"], rtol=1e-12)
    np.testing.assert_allclose(losses["unit per-class"], losses["unit"], rtol=1e-12)


def train_epoch(model, loss, params, x, y):
    """One epoch (batch 64) with a plain and an XLA-compiled step, each on a fresh optimizer: CPU [wall] seconds."""
    times = {}
    for jit in (False, True):
        weights = model.get_weights()
        trainer = Trainer(model, loss, keras.optimizers.Adam(1e-3), params, [], 64, 0, jit_compile=jit)
        trainer.train_epoch(x[:640], y[:640], 0, progress=False)  # trace
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch(x, y, 1, progress=False)
        times[jit] = (time.process_time() - cpu, time.perf_counter() - wall)
        model.set_weights(weights)
    print(f"  training epoch XLA / plain ({len(x)} images)          {times[True][0] / times[False][0]:7.3f}  "
          f"[{times[True][1] / times[False][1]:6.3f}]")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", str(Path(__file__).resolve().parents[2]
                                                                               / "shared/data/mnist")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn", help="mlp, cnn, resnet20, vit (comma-separated)")
    parser.add_argument("--val-size", type=int, default=None, help="validation images timed (default: all)")
    args = parser.parse_args()
    data = validation_data(args.data_dir)
    data = (data[0][:args.val_size], data[1][:args.val_size], *data[2:])
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    for name in args.models.split(","):
        (bench_reference if name in REFERENCE else bench_model)(name, data, args.repeats)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
