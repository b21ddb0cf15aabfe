"""``--list`` reads the plugin files without importing them: it must say what the imported registries say."""

import subprocess
import sys
from pathlib import Path

import pytest

import aggregations
import measures
import tasks
from harness.cli import catalog
from harness.pipeline.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_plugin_is_listed():
    registries = {"task": tasks.TASKS, "measure": measures.MEASURES, "aggregation": aggregations.AGGREGATIONS}
    for kind, registry in registries.items():
        assert [p.name for p in catalog.plugins(kind)] == registry.names()


@pytest.mark.parametrize("kind", ["measure", "aggregation"])
def test_declared_options_and_facts_are_the_live_classes(kind):
    """What the catalogue reads from a file is what the imported class checks: a new plugin is covered at once."""
    registry = {"measure": measures.MEASURES, "aggregation": aggregations.AGGREGATIONS}[kind]
    facts = {"measure": ("training_time", "signed", "signed_when"), "aggregation": ("pools", "by_default")}[kind]
    for plugin in catalog.plugins(kind):
        cls = registry.get(plugin.name)
        assert plugin.options == cls.options, plugin.name
        assert {f: plugin.attributes[f] for f in facts} == {f: getattr(cls, f) for f in facts}, plugin.name
        instance = cls()
        for name, option in plugin.options.items():
            assert option.choices is None or option.default in option.choices, (plugin.name, name)
            assert getattr(instance, name) == option.default, (plugin.name, name)  # set from the declaration


def test_declared_choices_are_listed_and_checked():
    by_name = {p.name: p.options for p in catalog.plugins("measure")}
    assert by_name["fisher"]["kind"].choices == ("empirical", "true")
    assert by_name["obd"]["hessian"].choices == ("ggn", "hutchinson", "exact") and by_name["obd"]["samples"].type is int
    with pytest.raises(ValueError, match=r"^Measure 'obd': samples must be a positive integer. Received: samples=0$"):
        measures.make_measure("obd:samples=0")
    assert measures.make_measure("obd:hessian=exact").signed and not measures.make_measure("obd").signed


def test_a_declaration_that_is_not_a_literal_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "measures"
    package.mkdir()
    (package / "toy.py").write_text("@register_measure('toy')\nclass Toy(Measure):\n    options = {'k': make()}\n")
    monkeypatch.setattr(catalog, "ROOT", tmp_path)
    monkeypatch.setitem(catalog.BASES, "measure", ("measures/toy.py", "Toy"))
    with pytest.raises(ValueError, match=r"options must map names to Option\(key=value, ...\) calls. Received: make\(\)"):
        catalog.plugins("measure")


def test_task_defaults_come_from_the_task_class():
    for plugin in catalog.plugins("task"):
        task = tasks.get_task(plugin.name)
        for name in ("epochs", "batch_size", "learning_rate", "num_classes", "reads_data_dir", "input_shape"):
            assert plugin.attributes[name] == getattr(task, name), (plugin.name, name)
    assert catalog.defaults("task")["epochs"] == tasks.Task.epochs


def test_task_models_and_grid_choices_match_the_code():
    for plugin in catalog.plugins("task"):
        task = tasks.get_task(plugin.name)
        assert sorted(plugin.attributes["models"]) == sorted(task.models)
        assert plugin.attributes["augmentations"] == list(task.augmentations)
        assert plugin.attributes["default_model"] == task.default_model


GRID = {"poolings": dict(aggregations=["unit"]), "scopes": dict(aggregations=["weight"]),
        "normalizations": dict(aggregations=["weight"], scopes=["global"]), "replacements": {}, "prunable": {}}


@pytest.mark.parametrize("option", sorted(GRID))
def test_every_listed_grid_choice_is_accepted_and_only_those(option):
    listed = catalog.grid_choices(option)
    value = (lambda v: v) if option == "prunable" else (lambda v: [v])
    for choice in listed:
        RunConfig(measures=["magnitude"], **GRID[option], **{option: value(choice)})
    with pytest.raises(ValueError, match=r"available: \[" + ", ".join(repr(c) for c in listed).replace("+", r"\+")):
        RunConfig(measures=["magnitude"], **GRID[option], **{option: value("nosuch")})


@pytest.mark.slow
def test_help_and_list_import_no_tensorflow():
    script = ("import sys; from harness.cli.main import main; import harness.pipeline.results; "
              "assert main(['--help']) == 0 and main(['--list']) == 0; "
              "heavy = sorted({'tensorflow', 'keras', 'pandas', 'sklearn'} & set(sys.modules)); "
              "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "(default: 1000)" in out.stdout and "(default: data/results.csv)" in out.stdout  # --help shows defaults
    for text in ["obd ", "hessian: ggn | hutchinson | exact (default ggn)", "kind: empirical | true (default empirical)",
                 "poolings (--poolings): mean sum max min l2", "scopes (--scopes): layer global",
                 "normalizations (--normalizations, global scope only): none mean max", "digits        models: mlp*",
                 "seed003_cnn", "--augmentation none | seed003"]:
        assert text in out.stdout
