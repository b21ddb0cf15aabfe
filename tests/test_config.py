"""Bad input is rejected before any training, naming the value and the choices."""

import pytest

from harness.cli.main import main
from harness.pipeline.config import RunConfig


@pytest.mark.parametrize("kwargs,message", [
    (dict(task="cifar100"), r"Unknown task 'cifar100'; available: \["),
    (dict(model="resnet"), r"Unknown model for task 'digits' 'resnet'; available: \['mlp', 'vit'\]"),
    (dict(measures=["fishr"]), r"Unknown measure 'fishr'; available: \[.*'magnitude'"),
    (dict(measures=["magnitude:foo=1"]), r"Measure 'magnitude' takes no options. Received: 'magnitude:foo=1'"),
    (dict(aggregations=["neuron"]), r"Unknown aggregation 'neuron'; available: \['filter', 'head', 'unit', 'weight'\]"),
    (dict(poolings=["median"]), r"Unknown pooling 'median'; available: \['mean', 'sum', 'max', 'min', 'l2'\]"),
    (dict(scopes=["model"]), r"Unknown scope 'model'; available: \['layer', 'global', 'output'\]"),
    (dict(replacements=["noise"]), r"Unknown replacement 'noise'; available: \['zero', 'random'\]"),
    (dict(normalizations=["z"]), r"Unknown normalization 'z'"),
    (dict(prunable="weights"),
     r"Unknown prunable 'weights'; available: \['kernels', 'kernels\+biases', 'all', 'hidden-kernels'\]"),
    (dict(thresholds=[0.0, 1.5]), r"thresholds must lie in \[0, 1\]. Received: thresholds=\[0.0, 1.5\]"),
    (dict(thresholds=[-0.1]), r"Received: thresholds=\[-0.1\]"),
    (dict(thresholds=[]), r"thresholds must be a non-empty list"),
    (dict(importance_samples=0), r"importance_samples must be a positive integer. Received: importance_samples=0"),
    (dict(importance_samples=-5), r"Received: importance_samples=-5"),
    (dict(epochs=0), r"Received: epochs=0"),
    (dict(measures=["random", "random"]), r"measures has duplicates"),
    (dict(thresholds=[True, 0.5]), r"Received: thresholds=\[True, 0.5\]"),
    (dict(learning_rate=True), r"Received: learning_rate=True"),
    (dict(normalizations=["max"]), r"normalizations apply to global scope only"),
    (dict(output=3), r"output must be a CSV file path. Received: output=3"),
    (dict(progress=1), r"progress must be true or false. Received: progress=1"),
])
def test_bad_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kwargs)


def test_defaults_cover_every_registered_plugin():
    config = RunConfig()
    assert config.task == "digits" and config.model == "mlp"
    assert "magnitude" in config.measures and "random" in config.measures
    assert config.aggregations == ["filter", "unit", "weight"]
    assert config.thresholds[0] == 0.0 and config.thresholds[-1] == 1.0 and len(config.thresholds) == 21


def test_run_id_depends_on_result_defining_parameters_only():
    a = RunConfig(seed=1, output="a.csv")
    assert a.run_id == RunConfig(seed=1, output="b.csv", progress=False).run_id
    assert a.run_id != RunConfig(seed=2).run_id
    same_data = [RunConfig(task="mnist", data_dir=d, keep_checkpoints=k, divergence_factor=f).run_id
                 for d, k, f in [(None, 1, 10.0), ("/data/mnist", 3, float("inf")), ("../elsewhere/mnist", 1, 2.0)]]
    assert len(set(same_data)) == 1  # the same data at another path is the same run


def test_toml_config_and_unknown_keys(tmp_path):
    good = tmp_path / "exp.toml"
    good.write_text('task = "digits"\nmeasures = ["magnitude"]\nthresholds = [0.0, 0.5, 1.0]\nseed = 4\n')
    config = RunConfig.from_toml(good, seed=5)
    assert config.measures == ["magnitude"] and config.thresholds == [0.0, 0.5, 1.0] and config.seed == 5
    bad = tmp_path / "bad.toml"
    bad.write_text('tsak = "digits"\n')
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['tsak'\] in .*bad.toml; available: \['task'"):
        RunConfig.from_toml(bad)


@pytest.mark.slow
@pytest.mark.parametrize("argv,message", [
    (["--measures", "fishr"], "Unknown measure 'fishr'"),
    (["--thresholds", "0", "1.5"], "thresholds must lie in [0, 1]"),
    (["--importance-samples", "0"], "importance_samples must be a positive integer"),
    (["--task", "mnist", "--data-dir", "/nonexistent/mnist"], "MNIST_DIR"),
])
def test_cli_rejects_bad_input_before_training(tmp_path, capsys, argv, message):
    out = tmp_path / "r.csv"
    assert main([*argv, "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_integer_and_float_thresholds_give_one_run_id(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text("thresholds = [0, 0.5, 1]\nlearning_rate = 1\n")
    assert RunConfig.from_toml(toml).run_id == RunConfig(thresholds=[0.0, 0.5, 1.0], learning_rate=1.0).run_id
