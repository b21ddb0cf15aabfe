"""Importance from a subset of classes, the forgetting contrasts, and a forgetting run resumed with per-class rows."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.experiments import forgetting
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from harness.pipeline.seed import derived_seed
from measures import MeasureContext, make_measure, prunable_params
from tasks import get_task
from tests.helpers import tiny_conv_model

SMALL = dict(epochs=1, measures=["maav", "fisher"], aggregations=["weight"], thresholds=[0.0, 0.5, 1.0],
             progress=False)


def hand_scores(experiment, spec, x, y):
    """``spec`` scored at epoch 0 on the sample given, outside the harness."""
    bench = experiment.bench
    ctx = MeasureContext(bench.model, bench.params, x, y, bench.loss, seed=derived_seed(0, 0))
    return make_measure(spec).score(ctx)


def test_ratio_and_difference_on_hand_made_arrays():
    i_a, i_r = np.array([4.0, 1.0, 0.0, 0.0, 3.0]), np.array([1.0, 1.0, 2.0, 0.0, 0.0])
    eps = 1e-3 * i_r.mean()  # 1e-3 * 0.8
    np.testing.assert_allclose(forgetting.ratio(i_a, i_r), (i_a + eps) / (i_r + eps), rtol=1e-12)
    assert forgetting.ratio(i_a, i_r)[[1, 3]].tolist() == [1.0, 1.0]  # equal importance is neutral, used or not
    assert np.argmax(forgetting.ratio(i_a, i_r)) == 4  # used by A alone: the most A-specific
    np.testing.assert_allclose(forgetting.difference(i_a, i_r), i_a / 1.6 - i_r / 0.8, rtol=1e-12)
    np.testing.assert_allclose(forgetting.ratio(np.ones(3), np.zeros(3)), 1001.0)  # eps from I_A when I_R is all 0
    np.testing.assert_array_equal(forgetting.difference(np.zeros(2), np.array([-1.0, 1.0])), [1.0, -1.0])  # signed
    same = [np.array([0.5, 2.0])]
    scores, blind = forgetting.specificity(same, [same[0].copy()], "ratio")
    assert blind and scores[0].tolist() == [0.5, 2.0]
    scores, blind = forgetting.specificity([i_a], [i_r], "difference")
    assert not blind and np.array_equal(scores[0], forgetting.difference(i_a, i_r))
    with pytest.raises(ValueError, match=r"Unknown contrast 'odds'; available: \['ratio', 'difference'\]"):
        forgetting.contrast([i_a], [i_r], "odds")


@pytest.mark.slow
def test_importance_from_a_class_subset_equals_importance_on_the_hand_filtered_sample(tmp_path):
    data = get_task("digits").load()
    threes = int((data.y_train == 3).sum())
    config = RunConfig(output=str(tmp_path / "r.csv"), importance_classes=[3], importance_samples=threes, **SMALL)
    experiment = Experiment(config)
    try:
        x, y = experiment.scorer.sample
        np.testing.assert_array_equal(x, data.x_train[data.y_train == 3])  # every 3, in order
        for spec in ("maav", "fisher"):
            got, _ = experiment.scorer.score(spec, 0)
            for a, b in zip(got, hand_scores(experiment, spec, x, y)):
                np.testing.assert_allclose(a, b, rtol=1e-6)
        facts = experiment.metadata()
        assert facts["importance_classes"] == [3] and facts["importance_samples_drawn"] == threes
    finally:
        experiment.close()
    fewer = Experiment(RunConfig(output=str(tmp_path / "s.csv"), importance_classes=[3, 5], importance_samples=20,
                                 **SMALL))
    fewer.close()
    assert len(fewer.scorer.sample[1]) == 20 and set(fewer.scorer.sample[1]) <= {3, 5}


def test_a_class_subset_with_fewer_examples_than_asked_is_refused_before_training(tmp_path):
    out = tmp_path / "r.csv"
    config = RunConfig(output=str(out), forget_classes=[3], importance_samples=1000, **SMALL)
    with pytest.raises(ValueError, match=r"importance_samples=1000 exceeds the \d+ training examples of "
                                         r"forget_classes=\[3\]; lower importance_samples to at most \d+"):
        Experiment(config)
    assert not out.exists() and not results.sidecar(out, config.run_id, ".json").exists()
    assert not results.sidecar(out, config.run_id, ".ckpt").exists()


def test_forgetting_scores_contrast_the_forget_set_with_the_rest(tmp_path):
    settings = dict(SMALL, measures=["maav", "magnitude"])
    experiment = Experiment(RunConfig(output=str(tmp_path / "r.csv"), forget_classes=[3, 8], contrast="difference",
                                      importance_samples=40, **settings))
    try:
        (xa, ya), (xr, yr) = experiment.scorer.samples
        assert len(ya) == len(yr) == 40 and set(ya) <= {3, 8} and not set(yr) & {3, 8}
        got, _ = experiment.scorer.score("maav", 0)
        on_a, on_r = hand_scores(experiment, "maav", xa, ya), hand_scores(experiment, "maav", xr, yr)
        for a, sa, sr in zip(got, on_a, on_r):  # normalised per parameter
            np.testing.assert_allclose(a, sa / sa.mean() - sr / sr.mean(), rtol=1e-5, atol=1e-9)
        magnitude, _ = experiment.scorer.score("magnitude", 0)  # class-blind: its own scores
        for a, p in zip(magnitude, experiment.bench.params):
            np.testing.assert_array_equal(a, np.abs(p.variable.numpy()))
        meta = experiment.metadata()["forgetting"]
        assert meta["forget_classes"] == [3, 8] and meta["retain_classes"] == [0, 1, 2, 4, 5, 6, 7, 9]
        assert meta["samples_drawn"] == {"forget": 40, "retain": 40} and meta["contrast"] == "difference"
    finally:
        experiment.close()


ARGV = ["--forget-classes", "2", "--measures", "maav", "magnitude", "--aggregations", "weight", "--epochs", "2",
        "--thresholds", "0", "0.5", "1", "--importance-samples", "30", "--no-progress"]
KEY = [*results.SWEEP_KEY, "threshold"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("forget") / "r.csv"
    assert main([*ARGV, "--output", str(out)]) == 0
    return out


@pytest.mark.slow
def test_a_forgetting_run_writes_per_class_rows_beside_the_main_rows(finished):
    main_rows, per_class = pd.read_csv(finished), pd.read_csv(results.per_class_path(finished))
    assert list(per_class.columns) == [*results.SWEEP_KEY, *results.PER_CLASS_COLUMNS]
    assert (main_rows["order"] == "most").all() and len(per_class) == 10 * len(main_rows)
    merged = per_class.assign(correct=per_class.val_accuracy * per_class.n_examples).groupby(KEY)["correct"].sum()
    joined = main_rows.set_index(KEY)["val_accuracy"] * per_class.groupby(KEY)["n_examples"].sum()
    np.testing.assert_allclose(merged.sort_index(), joined.sort_index(), rtol=1e-9)
    meta = json.loads(results.sidecar(finished, main_rows["run_id"][0], ".json").read_text())
    assert meta["complete"]["rows"] == {"results": len(main_rows), "per_class": len(per_class)}
    assert meta["config"]["per_class"] is True and meta["forgetting"]["contrast"] == "ratio"


@pytest.mark.slow
def test_resume_with_per_class_rows_keeps_both_csvs_free_of_duplicates(finished, tmp_path):
    shutil.copytree(finished.parent, tmp_path / "run")
    out = tmp_path / "run" / finished.name
    companion = results.per_class_path(out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-2]))  # the last sweep cut short in the main CSV ...
    extra = companion.read_text().splitlines(keepends=True)[1:31]
    with companion.open("a") as f:  # ... and a sweep written twice in the companion, its last line cut short
        f.write("".join(extra) + extra[0][:20])
    assert main([*ARGV, "--output", str(out), "--resume"]) == 0
    for path in (out, companion):
        got, ref = pd.read_csv(path), pd.read_csv(results.per_class_path(finished) if path == companion else finished)
        key = KEY + (["class"] if path == companion else [])
        assert not got.duplicated(key).any() and len(got) == len(ref)
        merged = ref.merge(got, on=key, suffixes=("_ref", "_got"))
        np.testing.assert_allclose(merged["val_loss_got"], merged["val_loss_ref"], rtol=1e-5)


def test_hidden_kernels_leave_the_output_layer_whole():
    model = tiny_conv_model()
    names = [p.name for p in prunable_params(model, "hidden-kernels")]
    assert names == [p.name for p in prunable_params(model, "kernels")][:-1] and len(names) == 2
    assert [p.layer_index for p in prunable_params(model, "hidden-kernels")] == [0, 1]
