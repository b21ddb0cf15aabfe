"""``--list`` reads the plugin files without importing them: it must say what the imported registries say."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import aggregations
import measures
import tasks
from aggregations import POOLINGS
from harness import catalog
from harness.sweep import REPLACEMENTS
from harness.threshold import NORMALIZATIONS, SCOPES
from measures._base import PRUNABLE_CHOICES

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_plugin_is_listed():
    registries = {"task": tasks.TASKS, "measure": measures.MEASURES, "aggregation": aggregations.AGGREGATIONS}
    for kind, registry in registries.items():
        assert [p.name for p in catalog.plugins(kind)] == registry.names()


def test_measure_options_and_defaults_match_the_constructors():
    for plugin in catalog.plugins("measure"):
        cls = measures.MEASURES.get(plugin.name)
        parameters = {n: p for n, p in inspect.signature(cls).parameters.items() if p.kind is not p.VAR_KEYWORD}
        assert [o.name for o in plugin.options] == list(parameters), plugin.name
        for option in plugin.options:
            assert ast.literal_eval(option.default) == parameters[option.name].default, (plugin.name, option.name)
            if option.choices is not None:
                assert option.default is None or ast.literal_eval(option.default) in option.choices
        assert plugin.attributes.get("training_time", False) == cls.training_time
    by_name = {p.name: {o.name: o.choices for o in p.options} for p in catalog.plugins("measure")}
    assert by_name["fisher"]["kind"] == ["empirical", "true"]
    assert by_name["obd"]["hessian"] == ["ggn", "hutchinson", "exact"] and by_name["obd"]["samples"] is None


def test_task_models_and_grid_choices_match_the_code():
    for plugin in catalog.plugins("task"):
        task = tasks.get_task(plugin.name)
        assert sorted(plugin.attributes["models"]) == sorted(task.models)
        assert plugin.attributes.get("augmentations", ["none"]) == list(task.augmentations)
        assert plugin.attributes["default_model"] == task.default_model
        assert plugin.attributes.get("reads_data_dir", True) == task.reads_data_dir
    assert catalog.grid_choices("poolings") == list(POOLINGS)
    assert catalog.grid_choices("scopes") == list(SCOPES)
    assert catalog.grid_choices("normalizations") == list(NORMALIZATIONS)
    assert catalog.grid_choices("replacements") == list(REPLACEMENTS)
    assert catalog.grid_choices("prunable") == list(PRUNABLE_CHOICES)


@pytest.mark.slow
def test_help_and_list_import_no_tensorflow():
    script = ("import sys; from harness.__main__ import main; import harness.results; "
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
