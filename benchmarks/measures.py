"""Time the vectorised data-dependent measures against naive per-example loops on MNIST-shaped models.

Models: the MNIST MLP (LeNet-300-100: 784-300-100-10, relu) and CNN (Conv32 3x3,
MaxPool 2, Conv64 3x3, MaxPool 2, Dense128, Dense10), random weights; inputs
are random N(0, 1) of MNIST's shape, labels uniform; loss sparse
cross-entropy from logits; prunable = kernels.

Naive (the seeds' shape): a Python loop over examples, an eager
``GradientTape`` per example, squared (Fisher), abs (MAS) or per-class
(true Fisher, GGN) per example; MAAV loops over examples and layers with
numpy products. Naive loops run on the first ``--naive-n`` examples and are
scaled linearly to N; both sides are also compared on that subset.

Vectorised: ``make_measure(spec).score``, timed twice: ``cold`` (first call,
includes tracing; TensorFlow is warmed up on a toy model first) and ``warm``
(second call, what every later epoch costs: traced steps are cached).

Fisher paths (``--fisher-paths``): the empirical Fisher on the original
study's CNN (``seed003_cnn``: four convolutions, two BatchNormalization
layers, three Dense; seed 003) with ``prunable = all``, N examples, timed
on the naive reference path (``pfor``: every parameter's per-example
gradient materialised by ``tf.vectorized_map``, the fallback
``measures._per_example.pfor_step`` called directly, see
:func:`pfor_fisher`) and on the current one (layer taps). Cold (traced from
scratch) and warm, wall and CPU seconds, median of ``--repeats`` interleaved
rounds; the floor is one compiled batched gradient of the loss over the same N.

Cost per training epoch (``--per-epoch resnet20,vit``): the MNIST models of ``tasks/`` (real MNIST
from ``--data-dir`` when present, else random inputs), one training epoch on ``--train-size`` images
with the model's default batch size and Adam (traced first), against each registered measure: a
measure that scores after training is timed on N importance examples (cold: first call, traced;
warm: the second, what later epochs cost); a training-time measure is timed as the extra seconds of
an epoch with it hooked into the training step. A measure the model does not support is listed as
refused, with its reason. Wall and CPU seconds; ratios are warm seconds over the plain epoch's.

Usage: ``python benchmarks/measures.py [--n 1000] [--naive-n 100] [--models mlp,cnn] [--fisher-paths]
[--per-epoch resnet20,vit --train-size 1024 --data-dir ../shared/data/mnist]``.
"""

import argparse
import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from harness.pipeline.train import Trainer  # noqa: E402
from measures import MEASURES, MeasureContext, make_measure, prunable_params  # noqa: E402
from measures._cache import COMPILED  # noqa: E402
from measures._losses import log_likelihood, output_size, targets  # noqa: E402
from measures._per_example import pfor_step  # noqa: E402
from tasks import DatasetUnavailable, get_task  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
SPECS = ["fisher", "fisher:kind=true", "obd", "mas", "maav"]


def mlp() -> keras.Model:
    inputs = keras.Input((784,))
    h = keras.layers.Dense(300, activation="relu")(inputs)
    h = keras.layers.Dense(100, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h), name="mnist_mlp")


def cnn() -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(64, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(h))
    return keras.Model(inputs, keras.layers.Dense(10)(h), name="mnist_cnn")


# --- Naive per-example loops ----------------------------------------------------------------------------------------


def naive_fisher(model, variables, x, y):
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            loglik = -keras.losses.sparse_categorical_crossentropy(y[n:n + 1], model(x[n:n + 1]), from_logits=True)
        for t, g in zip(total, tape.gradient(loglik, variables), strict=True):
            t += np.square(g.numpy())
    return [t / len(x) for t in total]


def naive_true_fisher(model, variables, x, y):
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape(persistent=True) as tape:
            logp = tf.nn.log_softmax(model(x[n:n + 1]))[0]
            terms = [logp[c] for c in range(logp.shape[0])]
        probs = np.exp(logp.numpy())
        for c, term in enumerate(terms):
            for t, g in zip(total, tape.gradient(term, variables), strict=True):
                t += probs[c] * np.square(g.numpy())
    return [t / len(x) for t in total]


def naive_obd(model, variables, x, y):
    """Per example: J (one backward pass per logit), then diag(J^T (diag p - p p^T) J) in numpy."""
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape(persistent=True) as tape:
            logits = model(x[n:n + 1])[0]
            outputs = [logits[c] for c in range(logits.shape[0])]
        probs = tf.nn.softmax(logits).numpy()
        for i, v in enumerate(variables):
            jac = np.stack([tape.gradient(o, v).numpy() for o in outputs])  # (C, *shape)
            total[i] += np.tensordot(probs, jac**2, 1) - np.tensordot(probs, jac, 1) ** 2
    return [0.5 * t / len(x) * np.square(v.numpy()) for t, v in zip(total, variables, strict=True)]


def naive_mas(model, variables, x, y):
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            norm = tf.reduce_sum(tf.square(model(x[n:n + 1])))
        for t, g in zip(total, tape.gradient(norm, variables), strict=True):
            t += np.abs(g.numpy())
    return [t / len(x) for t in total]


def naive_maav(model, variables, x, y):
    """Seed 000/001's loop: per example, per layer, |a_i * W_ij| (conv: per output position, via patches)."""
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    features = keras.Model(model.input, [layer.input for layer in layers])
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        for i, (layer, a) in enumerate(zip(layers, features(x[n:n + 1]), strict=True)):
            total[i] += maav_one(layer, a.numpy()[0])
    return [t / len(x) for t in total]


def maav_one(layer, a):
    kernel = layer.kernel.numpy()
    if kernel.ndim == 2:
        return np.abs(np.outer(a, np.ones(kernel.shape[1])) * kernel)
    size = [1, *layer.kernel_size, 1]
    patches = tf.image.extract_patches(a[None], size, [1, 1, 1, 1], [1, 1, 1, 1], "VALID").numpy()
    patches = patches.reshape(-1, kernel[..., 0].size)  # (positions, kh * kw * cin)
    products = np.abs(patches[:, :, None] * kernel.reshape(1, -1, kernel.shape[-1]))
    return products.mean(axis=0).reshape(kernel.shape)


NAIVE = {"fisher": naive_fisher, "fisher:kind=true": naive_true_fisher, "obd": naive_obd, "mas": naive_mas,
         "maav": naive_maav}


# --- Timing ---------------------------------------------------------------------------------------------------------


def seconds(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def max_relative_difference(a, b):
    a, b = np.concatenate([np.ravel(t) for t in a]), np.concatenate([np.ravel(t) for t in b])
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def bench(model, spec, x, y, naive_n, batch_size):
    params = prunable_params(model, "kernels")
    measure = make_measure(spec)
    COMPILED.clear()  # cold means traced from scratch
    ctx = MeasureContext(model, params, x, y, LOSS, seed=0, batch_size=batch_size)
    cold, _ = seconds(lambda: measure.score(ctx))
    warm, _ = seconds(lambda: measure.score(ctx))
    subset = MeasureContext(model, params, x[:naive_n], y[:naive_n], LOSS, seed=0, batch_size=batch_size)
    naive, reference = seconds(lambda: NAIVE[spec](model, [p.variable for p in params], subset.x, subset.y))
    diff = max_relative_difference(measure.score(subset), reference)
    return cold, warm, naive * len(x) / naive_n, diff


def warm_up():
    """Start TensorFlow's runtime (first tracing, thread pools) so the first cold time measures only its measure."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.ones((2, 4), np.float32)
    make_measure("fisher").score(MeasureContext(model, prunable_params(model), x, np.zeros(2, int), LOSS))


def clock(fn):
    """Wall and CPU (all threads of this process) seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return np.array([time.perf_counter() - wall, time.process_time() - cpu])


def batch_gradient(model, x, y, batch_size):
    """The floor: one compiled gradient of the summed loss over all of ``x``, chunk by chunk (traced once)."""
    variables = model.trainable_variables

    @tf.function(input_signature=[tf.TensorSpec((None, *x.shape[1:])), tf.TensorSpec((None,), tf.int64)])
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(LOSS(yb, model(xb, training=False)))
        return tape.gradient(loss, variables)

    return lambda: [[g.numpy() for g in step(x[i:i + batch_size], y[i:i + batch_size])]
                    for i in range(0, len(x), batch_size)]


def pfor_fisher(ctx):
    """The naive reference path: empirical Fisher with every parameter through ``pfor_step`` (traced on first call).

    ``(1/N) sum_n (d log p(y_n | x_n) / d theta)^2``, each example's gradient
    materialised by ``tf.vectorized_map`` in chunks of ``ctx.batch_size``.
    """
    labels = targets(ctx.loss, ctx.y, output_size(ctx))
    step = pfor_step(ctx.model, list(ctx.params), ctx.loss, log_likelihood, tf.square)

    def score():
        totals = [np.zeros(p.shape, np.float64) for p in ctx.params]
        for start in range(0, len(ctx.x), ctx.batch_size):
            chunk = (tf.constant(ctx.x[start:start + ctx.batch_size]), tf.constant(labels[start:start + ctx.batch_size]))
            totals = [t + s.numpy() for t, s in zip(totals, step(chunk), strict=True)]
        return [(t / len(ctx.x)).astype(np.float32) for t in totals]

    return score


def current_fisher(ctx):
    """The measure as registered, traced from scratch on first call (the compiled steps' cache cleared)."""
    COMPILED.clear()
    fisher = make_measure("fisher")
    return lambda: fisher.score(ctx)


def fisher_paths(n, batch_size, repeats):
    keras.utils.set_random_seed(0)
    model = get_task("mnist").build_model("seed003_cnn", (28, 28, 1))
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)
    ctx = MeasureContext(model, prunable_params(model, "all"), x, y, LOSS, seed=0, batch_size=batch_size)
    paths = {"pfor": pfor_fisher, "current": current_fisher}
    times = {name: [] for name in paths}
    floor = batch_gradient(model, x, y.astype(np.int64), batch_size)
    floor()
    for _ in range(repeats):
        for name, path in paths.items():
            score = path(ctx)
            times[name].append([clock(score), clock(score)])
    diff = max_relative_difference(current_fisher(ctx)(), pfor_fisher(ctx)())
    floor_s = np.median([clock(floor) for _ in range(repeats)], axis=0)
    med = {name: np.median(np.array(t), axis=0) for name, t in times.items()}  # (cold/warm, wall/cpu)
    print(f"\nFisher on seed003_cnn, prunable=all, N={n}, batch_size={batch_size}, median of {repeats} rounds; "
          f"max rel diff between paths {diff:.1e}")
    print(f"{'path':10} {'cold wall':>10} {'cold cpu':>9} {'warm wall':>10} {'warm cpu':>9}")
    for name, m in med.items():
        print(f"{name:10} {m[0, 0]:10.2f} {m[0, 1]:9.2f} {m[1, 0]:10.2f} {m[1, 1]:9.2f}")
    ratio = med["pfor"] / med["current"]
    print(f"{'speed-up':10} {ratio[0, 0]:9.2f}x {ratio[0, 1]:8.2f}x {ratio[1, 0]:9.2f}x {ratio[1, 1]:8.2f}x")
    print(f"{'floor':10} {'':10} {'':9} {floor_s[0]:10.2f} {floor_s[1]:9.2f}   (one batched gradient over the N)")


def mnist_arrays(data_dir, n):
    """``n`` MNIST training images and labels (random ones of MNIST's shape without the files), and their source."""
    try:
        data = get_task("mnist").load(data_dir)
        return data.x_train[:n], data.y_train[:n], f"MNIST images from {data_dir}"
    except DatasetUnavailable:
        rng = np.random.default_rng(0)
        return rng.random((n, 28, 28, 1), np.float32), rng.integers(0, 10, n), "random MNIST-shaped inputs"


def timed_epoch(model, loss, params, hooks, x, y, batch_size, learning_rate):
    """Wall and CPU seconds of one training epoch (a fresh Adam; traced on two batches first)."""
    trainer = Trainer(model, loss, keras.optimizers.Adam(learning_rate), params, hooks, batch_size, 0)
    trainer.train_epoch(x[:2 * batch_size], y[:2 * batch_size], 0, progress=False)
    return clock(lambda: trainer.train_epoch(x, y, 1, progress=False))


def per_epoch(names, n, train_size, batch_size, data_dir):
    """Each registered measure's cost on the reference models against one training epoch."""
    task = get_task("mnist")
    x, y, source = mnist_arrays(data_dir, max(n, train_size))
    print(f"{source}: epochs of {train_size} images, measures on N={n} (chunks of {batch_size}); "
          f"{os.cpu_count()} CPU cores; wall [CPU] seconds")
    for name in names:
        keras.utils.set_random_seed(0)
        model, loss = task.build_model(name, x.shape[1:]), task.loss()
        params, defaults = prunable_params(model), task.training_defaults(name)
        fit = (x[:train_size], y[:train_size], defaults["batch_size"], defaults["learning_rate"])
        epoch = timed_epoch(model, loss, params, [], *fit)
        print(f"\n{name}: {model.count_params():,} parameters; training epoch {epoch[0]:.2f} s [{epoch[1]:.2f} s]"
              f" (batch {defaults['batch_size']})")
        print(f"  {'measure':18} {'cold s':>8} {'warm s':>8} {'warm / epoch':>13}")
        for spec in MEASURES.names():
            measure = make_measure(spec)
            reason = measure.unsupported(model)
            if reason:
                print(f"  {spec:18} refused: {reason[:90]}")
            elif measure.training_time:
                extra = timed_epoch(model, loss, params, [measure], *fit) - epoch
                print(f"  {spec:18} {'':8} {extra[0]:8.2f} {extra[0] / epoch[0]:13.3f}   (extra seconds of a hooked epoch)")
            else:
                ctx = MeasureContext(model, params, x[:n], y[:n], loss, seed=0, batch_size=batch_size)
                score = functools.partial(measure.score, ctx)
                cold, warm = clock(score), clock(score)
                print(f"  {spec:18} {cold[0]:8.2f} {warm[0]:8.2f} {warm[0] / epoch[0]:13.3f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="importance sample size N (default 1000)")
    parser.add_argument("--naive-n", type=int, default=100, help="examples the naive loops run on (default 100)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--fisher-paths", action="store_true", help="only the seed003_cnn Fisher path comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-epoch", help="reference models (resnet20,vit): every measure against a training epoch")
    parser.add_argument("--train-size", type=int, default=1024, help="--per-epoch: images per timed epoch")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    args = parser.parse_args()
    if args.per_epoch:
        warm_up()
        return per_epoch(args.per_epoch.split(","), args.n, args.train_size, args.batch_size, args.data_dir)
    if args.fisher_paths:
        warm_up()
        return fisher_paths(args.n, args.batch_size, args.repeats)
    naive_n = min(args.naive_n, args.n)
    specs = [s for s in SPECS if s.split(":")[0] in MEASURES.names()]
    print(f"N={args.n} random MNIST-shaped inputs; naive loops timed on {naive_n} examples and scaled x{args.n / naive_n:g};"
          f" batch_size={args.batch_size}; {tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count()} "
          f"CPU threads, devices: {[d.device_type for d in tf.config.list_logical_devices()]}")
    print(f"{'model':10} {'measure':18} {'cold s':>8} {'warm s':>8} {'naive s':>9} {'warm x':>7} {'cold x':>7}"
          f" {'max rel diff':>12}")
    rng = np.random.default_rng(0)
    warm_up()
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        model = {"mlp": mlp, "cnn": cnn}[name]()
        x = rng.standard_normal((args.n, *model.input_shape[1:])).astype(np.float32)
        y = rng.integers(0, 10, args.n)
        for spec in specs:
            cold, warm, naive, diff = bench(model, spec, x, y, naive_n, args.batch_size)
            print(f"{name:10} {spec:18} {cold:8.2f} {warm:8.2f} {naive:9.2f} {naive / warm:7.1f} {naive / cold:7.1f}"
                  f" {diff:12.1e}", flush=True)


if __name__ == "__main__":
    main()
