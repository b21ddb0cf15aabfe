"""Models as plugins (@register_model), seed003_cnn, and the task's augmentation option."""

from pathlib import Path

import keras
import numpy as np
import pytest

import tasks
from harness.cli import catalog
from harness.pipeline.config import RunConfig
from harness.pipeline.seed import derived_seed
from harness.pipeline.train import AUGMENT_STREAM, Trainer
from measures import prunable_params
from tasks import TASKS, Task, get_task, register_model, register_task, unregister_model


def toy(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs)))


def test_a_registered_model_joins_the_task_everywhere():
    register_model("digits", "toy", batch_size=8)(toy)
    try:
        assert "toy" in tasks.TASKS.get("digits").models and "toy" in get_task("digits").models
        assert get_task("digits").build_model("toy", (64,)).output_shape == (None, 10)
        config = RunConfig(task="digits", model="toy")
        assert config.batch_size == 8 and config.epochs == get_task("digits").epochs
        assert RunConfig(task="digits", model="toy", batch_size=16).batch_size == 16  # the config wins
        with pytest.raises(ValueError, match="model 'toy' for task 'digits' is already registered"):
            register_model("digits", "toy")(toy)
    finally:
        unregister_model("digits", "toy")
    assert "toy" not in get_task("digits").models
    with pytest.raises(ValueError, match=r"Unknown model for task 'digits' 'toy'; available: \['mlp', 'vit'\]"):
        RunConfig(task="digits", model="toy")


def test_registration_before_the_task_and_bad_input():
    register_model("later_task", "toy")(toy)

    @register_task("later_task")
    class Later(Task):
        models = {"own": toy}

    try:
        assert sorted(Later.models) == ["own", "toy"] and "toy" not in Task.models
    finally:
        TASKS.unregister("later_task")
    with pytest.raises(ValueError, match=r"Unknown model default\(s\) \['batch'\]; available: \['batch_size'"):
        register_model("digits", "x", batch=3)
    with pytest.raises(ValueError, match="model 'mlp' for task 'digits' is already registered"):
        register_model("digits", "mlp")(toy)


def test_models_in_their_own_files_are_listed_with_their_task():
    listed = {p.name: p for p in catalog.plugins("task")}["mnist"].attributes["models"]
    assert listed == list(get_task("mnist").models)  # the source-read catalogue is the live registry
    assert listed.index("seed003_cnn") > listed.index("cnn")  # its own file, after the task's built-in models


@pytest.mark.slow
def test_seed003_cnn_is_the_original_network():
    model = get_task("mnist").build_model("seed003_cnn", (28, 28, 1))
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Conv2D", "BatchNormalization", "MaxPooling2D", "Conv2D", "Conv2D",
                     "BatchNormalization", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64] and {c.padding for c in convs} == {"valid"}
    assert {c.kernel_size for c in convs} == {(3, 3)} and model.layers[-1].get_config()["activation"] == "linear"
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.2, 0.2]
    assert model.count_params() - 192 == 135_594  # 192: BatchNorm moving statistics, not trainable
    assert len(prunable_params(model, "all")) == 18
    config = RunConfig(task="mnist", model="seed003_cnn")
    assert (config.batch_size, config.augmentation, config.learning_rate) == (32, "seed003", 1e-3)


@pytest.mark.slow
def test_augmentation_option():
    x = np.random.default_rng(0).random((6, 28, 28, 1), dtype=np.float32)
    augment = get_task("mnist").augmenter("seed003")
    a, b, c = augment(x, 1), augment(x, 1), augment(x, 2)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.allclose(a, x)
    assert get_task("mnist").augmenter("none") is None
    with pytest.raises(ValueError, match=r"Unknown augmentation for task 'digits' 'seed003'; available: \['none'\]"):
        RunConfig(task="digits", augmentation="seed003")
    assert RunConfig(task="mnist", model="seed003_cnn", augmentation="none").run_id != \
        RunConfig(task="mnist", model="seed003_cnn").run_id


@pytest.mark.slow
def test_trainer_augments_each_epoch_with_its_own_seed():
    seen = []
    model = get_task("digits").build_model("mlp", (64,))
    trainer = Trainer(model, get_task("digits").loss(), keras.optimizers.SGD(0.01), prunable_params(model), [],
                      batch_size=4, seed=5, augment=lambda x, seed: seen.append(seed) or x * 0)
    x, y = np.ones((8, 64), np.float32), np.zeros(8, int)
    for epoch in (1, 2):
        trainer.train_epoch(x, y, epoch, progress=False)
    assert seen == [derived_seed(5, epoch, AUGMENT_STREAM) for epoch in (1, 2)] and seen[0] != seen[1]


def test_replication_example_has_the_original_settings():
    config = RunConfig.from_toml(Path(__file__).resolve().parents[1] / "examples" / "replicate_seed003.toml")
    assert (config.model, config.augmentation, config.batch_size, config.epochs, config.prunable) == \
        ("seed003_cnn", "seed003", 32, 25, "all")
    assert config.measures == ["fisher", "momentum", "sign_flip", "weight_change", "random"]
    assert config.aggregations == ["weight", "unit", "filter"] and config.replacements == ["random"]
    assert config.thresholds == [round(0.05 * i, 10) for i in range(21)] and config.threshold_rule == "exact"
