"""``--model-file``: a trained ``.keras`` model scored and swept as it is (epochs 0) or fine-tuned first."""

import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.pipeline.config import RunConfig
from harness.pipeline.experiment import Experiment
from tasks import get_task
from tasks._model_file import file_sha256
from tests.helpers import digits_model_file

SMALL = dict(task="digits", thresholds=[0.0, 0.5], importance_samples=64, progress=False, measures=["magnitude", "snip"],
             aggregations=["weight"])


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    """A digits MLP ending in a softmax, trained 3 epochs with Keras' own fit, saved; and its evaluated val loss."""
    path = digits_model_file(tmp_path_factory.mktemp("model") / "trained.keras")
    data = get_task("digits").load()
    model = keras.models.load_model(path)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    model.save(path)
    saved = keras.models.load_model(path)
    saved.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = saved.evaluate(data.x_val, data.y_val, verbose=0)
    return path, loss, accuracy


@pytest.mark.slow
def test_epochs_0_scores_the_saved_weights_and_their_loss_is_the_saved_models(trained_file, tmp_path):
    path, loss, accuracy = trained_file
    out = tmp_path / "results.csv"
    assert main(["--model-file", str(path), "--epochs", "0", "--measures", "magnitude", "snip", "--aggregations",
                 "weight", "--thresholds", "0", "0.5", "--importance-samples", "64", "--output", str(out),
                 "--no-progress"]) == 0
    rows = pd.read_csv(out)
    assert set(rows["epoch"]) == {0} and set(rows["model"]) == {"file:trained.keras"} and len(rows) == 4
    at_zero = rows[rows["threshold"] == 0.0]
    np.testing.assert_allclose(at_zero["val_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(at_zero["val_accuracy"], accuracy, rtol=1e-6)
    assert np.all(rows[rows["threshold"] == 0.5]["val_loss"] > loss)
    meta = json.loads(next(tmp_path.glob("results.*.json")).read_text())
    assert meta["model_file"]["sha256"] == file_sha256(path) == meta["config"]["model_file_sha256"]
    assert "model_file" not in meta["config"] and meta["complete"]
    assert any("outputs probabilities (softmax" in note for note in meta["notes"])


@pytest.mark.slow
def test_the_run_id_holds_the_files_hash_not_its_path(trained_file, tmp_path):
    path = trained_file[0]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    same = shutil.copy(path, tmp_path / "a" / "trained.keras")
    renamed = shutil.copy(path, tmp_path / "elsewhere.keras")
    other = digits_model_file(tmp_path / "b" / "trained.keras", seed=1)
    ids = [RunConfig(model_file=str(p), epochs=0, **SMALL).run_id for p in (path, same, renamed, other)]
    assert ids[0] == ids[1]  # the same bytes at another path: the same run
    assert ids[0] != ids[2]  # the model column names the file
    assert ids[0] != ids[3]  # other weights
    assert RunConfig(model_file=str(path), epochs=1, **SMALL).run_id != ids[0]


@pytest.mark.slow
def test_epochs_n_fine_tunes_the_file_first(trained_file, tmp_path):
    path, loss, _ = trained_file
    experiment = Experiment(RunConfig(model_file=str(path), epochs=1, output=str(tmp_path / "r.csv"), **SMALL))
    experiment.run()
    assert [h["epoch"] for h in experiment.history] == [0, 1]
    np.testing.assert_allclose(experiment.history[0]["val_loss"], loss, rtol=1e-5)
    assert set(pd.read_csv(tmp_path / "r.csv")["epoch"]) == {1}


def test_refusals_on_configuration(tmp_path):
    good = digits_model_file(tmp_path / "good.keras")
    custom = digits_model_file(tmp_path / "custom.keras", custom_module="lab_layers.gates")
    cases = [
        (dict(task="mnist", model_file=str(good)), "input shape (64,) does not match task 'mnist', whose examples "
                                                   "have shape (28, 28, 1)"),
        (dict(model_file=str(digits_model_file(tmp_path / "wide.keras", n_in=65))), "input shape (65,)"),
        (dict(model_file=str(custom)), "custom objects that cannot be imported: ['lab_layers.gates.GatedDense']"),
        (dict(model_file=str(good), epochs=0, measures=["si", "magnitude", "weight_change"]),
         "the training-time measures ['si', 'weight_change'] observe training steps and are refused"),
        (dict(model_file=str(good), epochs=0, sweep_epochs=[1]), "sweep_epochs must be 'all'"),
        (dict(model_file=str(good), model="mlp"), "model and model_file are exclusive"),
        (dict(epochs=0), "epochs must be a positive integer. Received: epochs=0"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError) as error:
            RunConfig(**options)
        assert message in str(error.value) and "\n" not in str(error.value), options
