"""Per-class-group update tallies and SI path terms against per-example reference loops (seed 002)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.pipeline import checkpoint
from harness.pipeline.train import Trainer
from measures import MeasureContext, make_measure, parse_spec, prunable_params
from tests.helpers import CE_LOGITS, random_data, tiny_dense_model


def optimizer():
    return keras.optimizers.SGD(0.1, momentum=0.5)


def train(specs, batch_size, n=12, seed=3):
    """Train one epoch with the measures as hooks; return measures, params and the data."""
    model = tiny_dense_model(seed=seed)
    x, y = random_data(model, n=n, seed=seed + 1)
    params = prunable_params(model, "kernels+biases")
    measures = [make_measure(s) for s in specs]
    trainer = Trainer(model, CE_LOGITS, optimizer(), params, measures, batch_size=batch_size, seed=seed)
    trainer.train_epoch(x, y, epoch=1, progress=False)
    return measures, params, x, y, trainer


def reference(groups, batch_size, n=12, seed=3):
    """Eager replay of the same steps: per-example gradients, the batch update, tallies by the documented formula."""
    model = tiny_dense_model(seed=seed)
    x, y = random_data(model, n=n, seed=seed + 1)
    variables = [p.variable for p in prunable_params(model, "kernels+biases")]
    opt = optimizer()
    opt.build(variables)
    tally = [np.zeros((len(groups), *v.shape)) for v in variables]
    omega = [np.zeros((len(groups), *v.shape)) for v in variables]
    order = np.random.default_rng([seed, 1]).permutation(n)
    for index in [order[i: i + batch_size] for i in range(0, n, batch_size)]:
        per_example = [gradient(model, variables, x[[i]], y[[i]]) for i in index]
        g = gradient(model, variables, x[index], y[index])
        member = np.array([[y[i] in grp for grp in groups] for i in index], float)  # (B, G)
        split = [np.einsum("ng,n...->g...", member, np.stack([e[k] for e in per_example])) / len(index)
                 for k in range(len(variables))]
        before = [v.numpy().astype(np.float64) for v in variables]
        opt.apply_gradients(zip([tf.constant(a, tf.float32) for a in g], variables))
        for k, v in enumerate(variables):
            step = v.numpy() - before[k]
            mass = np.abs(split[k])
            total = mass.sum(0) + np.abs(g[k] - split[k].sum(0))
            counts = (member.sum(0) / len(index)).reshape(-1, *[1] * step.ndim)
            share = np.where(total > 0, mass / np.where(total > 0, total, 1), counts)
            tally[k] += share * np.abs(step)
            omega[k] += -split[k] * step
    return tally, omega


def gradient(model, variables, xb, yb):
    with tf.GradientTape() as tape:
        loss = CE_LOGITS(yb, model(xb, training=True))
    return [g.numpy().astype(np.float64) for g in tape.gradient(loss, variables)]


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4])
def test_group_tallies_and_si_match_reference_loop(batch_size):
    groups = [[0], [2]]  # class 1 is in no group: its examples are not tallied
    spec = "groups=[[0],[2]]"
    (tally, si), _, _, _, _ = train([f"update_tally:{spec}", f"si:{spec}"], batch_size)
    ref_tally, ref_omega = reference(groups, batch_size)
    for got, want, omega, want_omega in zip(tally.tallies(), ref_tally, si.state(), ref_omega):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(omega.numpy(), want_omega, rtol=1e-4, atol=1e-7)
    assert all(t[0].sum() > 0 and t[1].sum() > 0 for t in tally.tallies())


@pytest.mark.slow
def test_batch_one_gives_each_step_to_its_group_and_groups_sum_to_the_plain_measures():
    specs = ["update_tally", "update_tally:groups=[[0],[1,2]]", "si", "si:groups=[[0],[1,2]]"]
    (plain, grouped, si, si_grouped), params, x, y, _ = train(specs, batch_size=1)
    for total, split in zip(plain.tallies(), grouped.tallies()):
        np.testing.assert_allclose(split.sum(0), total, rtol=1e-5, atol=1e-8)
    for omega, split in zip(si.state()[: len(params)], si_grouped.state()):
        np.testing.assert_allclose(split.numpy().sum(0), omega.numpy(), rtol=1e-4, atol=1e-8)
    (minibatch, plain4), *_ = train(["update_tally:groups=[[0],[1,2]]", "update_tally"], batch_size=4)
    for split, total in zip(minibatch.tallies(), plain4.tallies()):
        np.testing.assert_allclose(split.sum(0), total, rtol=1e-4, atol=1e-8)


@pytest.mark.slow
def test_score_is_the_target_share_and_half_where_never_updated():
    model = tiny_dense_model(seed=0)
    x, y = random_data(model, n=8, seed=0)
    x[:, 0] = 0.0  # input 0 is always zero: its outgoing weights never move under plain SGD
    params = prunable_params(model, "kernels+biases")
    measures = [make_measure("update_tally:groups=[[0,1],[2]],target=1"), make_measure("update_tally:groups=[[0,1],[2]]")]
    Trainer(model, CE_LOGITS, keras.optimizers.SGD(0.1), params, measures, 2, 0).train_epoch(x, y, 1, progress=False)
    ctx = MeasureContext(model, params, x, y, CE_LOGITS)
    second, first = measures[0].score(ctx), measures[1].score(ctx)
    for s1, s0, rel, p in zip(second, first, measures[0].relative(), params):
        assert s1.dtype == np.float32 and s1.shape == p.shape
        np.testing.assert_allclose(s1 + s0, 1.0, rtol=1e-6)
        np.testing.assert_allclose(np.nan_to_num(rel[1], nan=0.5), s1, rtol=1e-6)
    assert np.all(second[0][0] == 0.5) and np.all(np.isnan(measures[0].relative()[0][:, 0]))


@pytest.mark.slow
def test_checkpoint_restores_group_state(tmp_path):
    (tally, si), params, x, y, trainer = train(["update_tally:groups=[[0],[1,2]]", "si:groups=[[0],[1,2]]"], 4)
    state = checkpoint.tracked_state(trainer.model, trainer.optimizer, {"a": tally, "b": si})
    saved = [v.numpy().copy() for v in tally.state() + si.state()]
    assert all(v.shape[0] == 2 for v in tally.state())
    checkpoint.save(tmp_path, state, 1)
    for v in tally.state() + si.state():
        v.assign(tf.zeros_like(v))
    assert checkpoint.restore(tmp_path, state, at_most=1, say=print)[0] == 1
    for old, v in zip(saved, tally.state() + si.state()):
        np.testing.assert_array_equal(old, v.numpy())


def test_spec_parsing_and_bad_groups():
    assert parse_spec("update_tally:groups=[[1,7],[6,8]],target=1") == ("update_tally", {"groups": [[1, 7], [6, 8]],
                                                                                          "target": 1})
    assert parse_spec("obd:hessian=exact") == ("obd", {"hessian": "exact"})
    assert make_measure("si:xi=0.1,groups=[[0],[1]]").xi == 0.1
    for bad in ["[[1,7]]", "[[1,7],[]]", "[[1,7],[7,8]]", "[[1.5],[2]]", "[[-1],[2]]", "[1,2]", "[[1],[2"]:
        for name in ("update_tally", "si"):
            with pytest.raises(ValueError, match="Received: groups="):
                make_measure(f"{name}:groups={bad}")
    with pytest.raises(ValueError, match="Received: target=2"):
        make_measure("update_tally:groups=[[0],[1]],target=2")
    with pytest.raises(ValueError, match="target needs groups"):
        make_measure("si:target=0")


def test_trainer_refuses_a_summed_loss_for_grouped_measures():
    model = tiny_dense_model()
    summed = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    with pytest.raises(ValueError, match="sum_over_batch_size"):
        Trainer(model, summed, keras.optimizers.SGD(0.1), prunable_params(model),
                [make_measure("update_tally:groups=[[0],[1]]")], 4, 0)
