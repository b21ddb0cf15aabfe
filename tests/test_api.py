"""The public API loads lazily from ``harness``: each name is its stage's object, and ``import harness`` is light."""

import importlib
import subprocess
import sys

import pytest

import harness

EXPECTED = {"RunConfig": "harness.pipeline.config", "run": "harness.pipeline.experiment",
            "Study": "harness.study.driver", "Thresholder": "harness.thresholding.threshold",
            "Evaluator": "harness.thresholding.evaluator", "sweep": "harness.thresholding.sweep",
            "Trainer": "harness.pipeline.train"}


def test_import_harness_loads_no_tensorflow_keras_or_ray():
    code = "import sys, harness; print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_public_name_is_the_object_its_stage_defines(name):
    module = importlib.import_module(EXPECTED[name])
    assert getattr(harness, name) is getattr(module, name)
    assert getattr(module, name).__module__ == EXPECTED[name]


def test_the_api_lists_exactly_these_names_and_refuses_others():
    assert harness.__all__ == sorted(EXPECTED)
    with pytest.raises(AttributeError, match="has no attribute 'nosuch'"):
        harness.nosuch  # noqa: B018
