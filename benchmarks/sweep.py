"""Time a 21-point threshold sweep on the MNIST MLP against the naive method.

Naive (the original study's shape): for every threshold, clone the model, set
the masked weights, compile and evaluate. Harness: assign the masked weights
to the live model's variables and evaluate with one compiled function.

Usage: ``python benchmarks/sweep.py [--data-dir ../shared/data/mnist] [--repeats 3]``.
Without MNIST files it times on random inputs of MNIST's shape.
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

from aggregations import get_aggregation  # noqa: E402
from harness.sweep import Evaluator, replacement_values, sweep  # noqa: E402
from harness.threshold import Thresholder  # noqa: E402
from measures import prunable_params  # noqa: E402
from tasks import DatasetUnavailable, get_task  # noqa: E402

THRESHOLDS = np.round(np.linspace(0, 1, 21), 10)


def validation_data(data_dir):
    task = get_task("mnist")
    try:
        data = task.load(data_dir)
        return data.x_val, data.y_val, "MNIST validation split"
    except DatasetUnavailable:
        rng = np.random.default_rng(0)
        return rng.random((2000, 28, 28, 1), np.float32), rng.integers(0, 10, 2000), "random inputs"


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


def best_of(repeats, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", str(Path(__file__).resolve().parents[2]
                                                                               / "shared/data/mnist")))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x, y, source = validation_data(args.data_dir)
    task = get_task("mnist")
    keras.utils.set_random_seed(0)
    model, loss = task.build_model("mlp", x.shape[1:]), task.loss()
    params = prunable_params(model)
    scores = [np.abs(p.variable.numpy()) for p in params]
    thresholder = Thresholder(get_aggregation("weight")(params, scores), "layer")
    replacement = replacement_values(params, "zero", 0)
    evaluate = Evaluator(model, loss, x, y)
    evaluate()  # trace once, as a run does before its first sweep
    fast, rows = best_of(args.repeats, lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate))
    slow, naive = best_of(args.repeats, lambda: naive_sweep(model, params, thresholder, replacement, x, y, loss))
    np.testing.assert_allclose([r["val_loss"] for r in rows], naive, rtol=1e-4)
    print(f"21-point sweep, MNIST MLP (LeNet-300-100, {sum(p.variable.numpy().size for p in params)} prunable "
          f"weights), {len(x)} {source}, best of {args.repeats}:")
    print(f"  clone + compile + evaluate per threshold: {slow:8.3f} s")
    print(f"  assign to live model + one compiled eval: {fast:8.3f} s")
    print(f"  speed-up: {slow / fast:.1f}x (losses agree to rtol 1e-4)")


if __name__ == "__main__":
    main()
