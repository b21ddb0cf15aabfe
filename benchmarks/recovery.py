"""The cost of recovery before evaluation: how much ``finetune:steps=k`` and ``bn`` multiply a sweep's time.

On the MNIST MLP (LeNet-300-100) after one training epoch: 21-threshold
sweeps of magnitude scores (weight items, layer scope, zero replacement),
evaluated on the validation split. Timed, median of ``--repeats``, wall
seconds (CPU seconds in brackets):

- ``none``: the sweep as a run does it without recovery (``auto`` method);
- ``no-op``: the same sweep threshold by threshold with a recovery that does
  nothing (what every recovery pays for leaving the fast methods);
- ``finetune``: k fine-tuning steps (batch 64, the mask held fixed) before
  each evaluation, optimizer and weights restored after.

The factor ``finetune / none`` is printed beside its prediction
``1 + k * step / evaluation`` from the measured time of one fine-tuning step
and one evaluation. ``--bn`` adds the same for ``bn`` (20
batches of 32) on the seed003_cnn model, which has BatchNorm layers.

Usage: ``python benchmarks/recovery.py [--data-dir ../shared/data/mnist] [--steps 50] [--repeats 3] [--bn]``.
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
from aggregations import get_aggregation  # noqa: E402
from harness.pipeline.train import Trainer  # noqa: E402
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.recovery import BatchNormRecalibration, FineTuning  # noqa: E402
from harness.thresholding.sweep import replacement_values, sweep  # noqa: E402
from harness.thresholding.threshold import Thresholder  # noqa: E402
from measures import prunable_params  # noqa: E402
from tasks import get_task  # noqa: E402

THRESHOLDS = np.round(np.linspace(0, 1, 21), 10)
harness.thresholding.sweep.RECENT = 0  # every timed sweep evaluates (a repeated sweep would otherwise be copied)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls, after one untimed call (tracing)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus))


def trained(model_name: str, data, batch_size: int):
    """The model after one epoch, its optimizer, prunable parameters, magnitude thresholder and zero replacement."""
    task = get_task("mnist")
    keras.utils.set_random_seed(0)
    model, loss = task.build_model(model_name, data.x_train.shape[1:]), task.loss()
    params, optimizer = prunable_params(model), task.optimizer_for()
    Trainer(model, loss, optimizer, params, [], batch_size, 0).train_epoch(data.x_train, data.y_train, 1, progress=False)
    thresholder = Thresholder(get_aggregation("weight")(params, [np.abs(p.variable.numpy()) for p in params]), "layer")
    return model, loss, optimizer, params, thresholder, replacement_values(params, "zero", 0)


def finetune_factor(data, steps: int, repeats: int) -> None:
    model, loss, optimizer, params, thresholder, replacement = trained("mlp", data, 64)
    evaluate = Evaluator(model, loss, data.x_val, data.y_val)
    tuning = FineTuning(model, loss, optimizer, params, data.x_train, data.y_train, 64, 0)
    tuning.start_epoch(1, steps)
    times = {
        "none": timed(lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate), repeats),
        "no-op": timed(lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate, recovery=lambda t: None),
                       repeats),
        "finetune": timed(lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate,
                                        recovery=tuning.recovery(steps, params, thresholder, replacement, THRESHOLDS)),
                          repeats),
        "evaluation": timed(evaluate, repeats * 5),
        "steps": timed(lambda: tuning._steps(*tuning.data), repeats),
    }
    step = times["steps"][0] / steps
    predicted = 1 + steps * step / times["evaluation"][0]
    print(f"MNIST MLP, {len(data.x_val)} validation images, {len(THRESHOLDS)} thresholds, median of {repeats}: "
          "wall seconds [CPU]")
    for name in ("none", "no-op", "finetune"):
        print(f"  sweep, recovery {name:10s}{times[name][0]:8.3f} s [{times[name][1]:7.3f} s]")
    print(f"  one evaluation {times['evaluation'][0] * 1e3:8.2f} ms; one fine-tuning step (batch 64) "
          f"{step * 1e3:6.2f} ms")
    print(f"  finetune:steps={steps} / none: {times['finetune'][0] / times['none'][0]:6.1f}x wall "
          f"[{times['finetune'][1] / times['none'][1]:.1f}x CPU]; predicted 1 + k * step / evaluation = {predicted:.1f}x; "
          f"threshold-by-threshold alone (no-op / none): {times['no-op'][0] / times['none'][0]:.2f}x")


def bn_factor(data, repeats: int) -> None:
    model, loss, _, params, thresholder, replacement = trained("seed003_cnn", data, 32)
    evaluate = Evaluator(model, loss, data.x_val, data.y_val)
    recalibrate = BatchNormRecalibration(model, data.x_train, 32, 20, 0)
    none = timed(lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate), repeats)
    bn = timed(lambda: sweep(params, thresholder, replacement, THRESHOLDS, evaluate, recovery=recalibrate), repeats)
    print(f"seed003_cnn: sweep without recovery {none[0]:.3f} s, with bn (20 batches of 32) {bn[0]:.3f} s: "
          f"{bn[0] / none[0]:.2f}x wall [{bn[1] / none[1]:.2f}x CPU]")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", str(Path(__file__).resolve().parents[2]
                                                                               / "shared/data/mnist")))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bn", action="store_true", help="also time bn on seed003_cnn")
    args = parser.parse_args()
    data = get_task("mnist").load(args.data_dir)
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    finetune_factor(data, args.steps, args.repeats)
    if args.bn:
        bn_factor(data, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
