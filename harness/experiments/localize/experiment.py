"""Phase 1 with per-group update tallies, then four forks from the same weights (seed 002).

Phase 1 trains one network on group 1 vs group 2 (binary output) and tallies
each parameter's |update| per group with ``update_tally:groups=[[0],[1]]``
on the binary labels. Each fork then restarts from the phase-1 weights and
learns one class of a group against the whole other group. Forks of a pair
(``1 vs 6+8`` and ``7 vs 6+8``) see the same examples of the shared side at
the same steps, so their difference comes from the classes that differ.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import keras
import numpy as np

from harness.experiments.localize.config import LocalizeConfig
from harness.pipeline.seed import derived_seed, seed_everything
from harness.pipeline.train import Trainer
from measures import prunable_params
from measures.update_tally import UpdateTally
from tasks import get_task

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class OneHotSquaredError(keras.losses.Loss):
    """Squared error of 2 outputs against one-hot labels: ``mean_k (onehot(y)_k - f_k(x))^2`` per example.

    The seed's labels are [1, 0] / [0, 1] on a network written by hand, most likely trained on squared error.
    Averaged over the batch (``sum_over_batch_size``), so update tallies can split it by example.
    """

    def call(self, y_true, y_pred):
        """Per-example mean over the 2 outputs; ``y_true`` class ids ``(B,)``, ``y_pred`` ``(B, 2)``."""
        target = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), 2)
        return keras.ops.mean(keras.ops.square(target - y_pred), axis=-1)


def loss_for(output_layer: str) -> keras.losses.Loss:
    """Softmax cross-entropy on logits for ``softmax``; one-hot squared error for a sigmoid or softplus output."""
    return LOSS if output_layer == "softmax" else OneHotSquaredError()
FORK_EPOCH = 3  # the Trainer's data order is a function of (seed, epoch): every fork uses the same permutation


@dataclass
class Data:
    """Flattened, scaled inputs ``(n, d)`` float32 and class ids ``(n,)``; ``image`` is the pixel grid or None."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    info: dict
    image: tuple[int, int] | None


@dataclass
class SeedRun:
    """What one seed produces: parameter names, tallies per half, fork weights, accuracies, checksums."""

    names: list[str]
    tallies: dict[str, list[np.ndarray]]
    forks: dict[str, list[np.ndarray]]
    facts: dict = field(default_factory=dict)
    baseline: list[np.ndarray] = field(default_factory=list)


def scale(x: np.ndarray, inputs: str) -> np.ndarray:
    """``seed``: [0, 1] -> [1/256, 1] by x * 255/256 + 1/256 (MNIST pixel p -> (p + 1)/256); ``unit``: unchanged."""
    return (x * (255 / 256) + 1 / 256).astype(np.float32) if inputs == "seed" else x.astype(np.float32)


def load_data(config: LocalizeConfig) -> Data:
    """Load the task's data, flatten the inputs and scale them as ``config.inputs`` says."""
    data = get_task(config.task).load(config.data_dir)
    shape = [s for s in data.x_train.shape[1:] if s != 1]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    image = tuple(shape) if len(shape) == 2 else (side, side) if side * side == shape[0] else None
    flat = [scale(x.reshape(len(x), -1), config.inputs) for x in (data.x_train, data.x_val)]
    return Data(flat[0], data.y_train, flat[1], data.y_val, data.info, image)


def build_model(n_in: int, hidden: int, activation: str, seed: int, output_layer: str = "softmax") -> keras.Model:
    """``n_in -> hidden (activation) -> 2 outputs``; every kernel and bias from N(0, 2 / fan_in) (He, as in seed 002).

    The outputs are logits for ``output_layer="softmax"``, else sigmoid or softplus activations.
    """
    inputs = keras.Input((n_in,), name="pixels")
    h = keras.layers.Dense(hidden, activation, name="hidden", **_he(n_in, seed))(inputs)
    out_activation = None if output_layer == "softmax" else output_layer
    outputs = keras.layers.Dense(2, out_activation, name="output", **_he(hidden, seed + 1))(h)
    return keras.Model(inputs, outputs, name="localize_mlp")


def _he(fan_in: int, seed: int) -> dict:
    std = math.sqrt(2.0 / fan_in)
    return dict(kernel_initializer=keras.initializers.RandomNormal(0.0, std, seed=seed),
                bias_initializer=keras.initializers.RandomNormal(0.0, std, seed=seed + 7919))


def fork_names(groups: list[list[int]]) -> list[str]:
    """``["1 vs 6+8", "7 vs 6+8", "1+7 vs 6", "1+7 vs 8"]`` for groups ``[[1, 7], [6, 8]]``: the c pair, then the d pair."""
    (a, b), (c, d) = groups
    return [f"{a} vs {c}+{d}", f"{b} vs {c}+{d}", f"{a}+{b} vs {c}", f"{a}+{b} vs {d}"]


def plan(y: np.ndarray, config: LocalizeConfig, seed: int) -> dict[str, np.ndarray]:
    """Draw the examples of phase 1 (two halves) and of each fork, as index arrays into ``y``.

    Phase 1 takes ``phase1_examples / 4`` of each class, each half an equal
    share. A fork has ``m`` steps of each side (``fork_examples / 2``, or as many as
    the rarest class has left): its single class, and the other group mixed
    half and half; the mixed side is the same examples in both forks of a pair.

    Raises:
        ValueError: a class has too few examples; names the class and the counts.
    """
    rng = np.random.default_rng(derived_seed(seed, 2))
    n1 = config.phase1_examples // 4
    pools = {c: rng.permutation(np.flatnonzero(y == c)) for g in config.groups for c in g}
    short = {c: len(p) for c, p in pools.items() if len(p) <= n1}
    if short:
        raise ValueError(f"Too few examples for phase1_examples={config.phase1_examples} ({n1} per class and some "
                         f"left for the forks); examples per class: {short}")
    rest = {c: p[n1:] for c, p in pools.items()}
    m = min(len(p) for p in rest.values())
    if config.fork_examples is not None:
        if config.fork_examples // 2 > m:
            raise ValueError(f"fork_examples={config.fork_examples} needs {config.fork_examples // 2} examples per class "
                             f"after phase 1; the rarest class has {m} left")
        m = config.fork_examples // 2
    halves = {"first": [p[: n1 // 2] for p in pools.values()], "second": [p[n1 // 2: n1] for p in pools.values()]}
    index = {name: rng.permutation(np.concatenate(parts)) for name, parts in halves.items()}
    (a, b), (c, d) = config.groups
    mixed = [np.concatenate([rest[u][: (m + 1) // 2], rest[v][: m // 2]]) for u, v in config.groups]
    sides = [(rest[a][:m], mixed[1]), (rest[b][:m], mixed[1]), (mixed[0], rest[c][:m]), (mixed[0], rest[d][:m])]
    index.update({name: np.concatenate(pair) for name, pair in zip(fork_names(config.groups), sides)})
    return index


def binary(y: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """0 for classes of group 1, 1 for group 2, -1 for any other class."""
    return np.where(np.isin(y, groups[0]), 0, np.where(np.isin(y, groups[1]), 1, -1)).astype(np.int64)


def checksum(model: keras.Model) -> str:
    """SHA-256 (16 hex digits) of every weight's bytes: equal checksums mean identical weights."""
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()[:16]


def accuracy(model: keras.Model, x: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``x`` (rows with a label >= 0) whose arg-max logit is the label."""
    keep = labels >= 0
    logits = model(x[keep], training=False)
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == labels[keep]))


def run_seed(config: LocalizeConfig, data: Data, seed: int) -> SeedRun:
    """Phase 1 with tallies, then the four forks from identical weights, for one seed."""
    index = plan(data.y, config, seed)
    seed_everything(seed)
    model = build_model(data.x.shape[1], config.hidden, config.activation, derived_seed(seed, 1) % 2**30,
                        config.output_layer)
    params = prunable_params(model, "kernels+biases")
    run = SeedRun([p.name for p in params], {}, {})
    run.facts["phase1"] = _phase1(model, params, data, index, config, seed, run.tallies)
    start, run.facts["phase1_end_checksum"] = model.get_weights(), checksum(model)
    run.baseline = input_baseline(model, data.x, data.y, config.groups)
    loss = loss_for(config.output_layer)
    trainer = Trainer(model, loss, keras.optimizers.SGD(config.learning_rate), params, [], config.batch_size, seed)
    run.facts["forks"] = {}
    for name in fork_names(config.groups):
        model.set_weights(start)
        trainer.optimizer.iterations.assign(0)  # plain SGD keeps no other state
        fact = dict(start_checksum=checksum(model), steps=len(index[name]))
        side = binary(data.y[index[name]], _fork_groups(name))
        fact["train_loss"] = [trainer.train_epoch(data.x[index[name]], side, FORK_EPOCH + k, config.progress)
                              for k in range(config.fork_passes)][-1]
        fact["val_accuracy"] = accuracy(model, data.x_val, binary(data.y_val, _fork_groups(name)))
        run.forks[name], run.facts["forks"][name] = [p.variable.numpy().copy() for p in params], fact
    return run


def _fork_groups(name: str) -> list[list[int]]:
    return [[int(c) for c in side.split("+")] for side in name.split(" vs ")]


def _phase1(model, params, data: Data, index: dict, config: LocalizeConfig, seed: int, tallies: dict) -> dict:
    """Train both halves of phase 1, tallying each half's |update| per group; fill ``tallies``; return facts."""
    tally = UpdateTally(groups=[[0], [1]])
    trainer = Trainer(model, loss_for(config.output_layer), keras.optimizers.SGD(config.learning_rate), params, [tally],
                      config.batch_size, seed)
    facts = {}
    for epoch, half in enumerate(("first", "second"), start=1):
        rows = index[half]
        loss = trainer.train_epoch(data.x[rows], binary(data.y[rows], config.groups), epoch, config.progress)
        tallies[half] = tally.tallies()
        for variable in tally.state():
            variable.assign(np.zeros(variable.shape, np.float32))
        facts[half] = dict(examples=len(rows), train_loss=loss,
                           per_class={int(c): int(np.sum(data.y[rows] == c)) for g in config.groups for c in g})
    tallies["all"] = [f + s for f, s in zip(tallies["first"], tallies["second"])]
    facts["val_accuracy"] = accuracy(model, data.x_val, binary(data.y_val, config.groups))
    return facts


def input_baseline(model: keras.Model, x: np.ndarray, y: np.ndarray, groups: list[list[int]]) -> list[np.ndarray]:
    """A predictor of s from input statistics alone (no training signal), one array per parameter, same shapes.

        q(input i -> unit j) = mean_{x in group 1} x_i / mean_{x in the four classes} x_i

    over the training examples of the four classes: each first-layer weight gets its input pixel's ratio, each
    hidden unit's bias and outgoing weights the same ratio of the unit's activation (at the end of phase 1, where
    the forks start), and the output biases (input 1) get 1. NaN where the denominator is 0 (a unit never active).
    Source: a control for what the correlation of r and s means (seed 002 gives none).
    """
    keep = np.isin(y, np.ravel(groups))
    first = np.isin(y[keep], groups[0])
    hidden = np.asarray(model.get_layer("hidden")(x[keep]), np.float64)
    pixel, unit = (_group_ratio(v, first) for v in (x[keep].astype(np.float64), hidden))
    n_out = model.get_layer("output").units
    return [np.repeat(pixel[:, None], len(unit), axis=1), unit, np.repeat(unit[:, None], n_out, axis=1), np.ones(n_out)]


def _group_ratio(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Column means over the rows of ``first`` divided by the column means over all rows; NaN where 0 / 0."""
    total = values.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, values[first].mean(axis=0) / np.where(total > 0, total, 1.0), np.nan)
