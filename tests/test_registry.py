"""Registries: decorator registration, duplicates, unknown names, discovery of new files."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import measures
from harness.common.registry import Registry
from measures import MEASURES, Measure, make_measure, parse_spec, register_measure

ROOT = Path(__file__).resolve().parents[1]


def test_duplicate_name_is_an_error():
    registry = Registry("measure")
    registry.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="measure 'a' is already registered"):
        registry.register("a")(type("B", (), {}))


def test_registering_an_existing_measure_name_is_refused():
    with pytest.raises(ValueError, match="'magnitude' is already registered"):
        register_measure("magnitude")(type("Toy", (Measure,), {}))


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError) as info:
        make_measure("fishr")
    assert str(info.value) == f"Unknown measure 'fishr'; available: {MEASURES.names()}"


def test_spec_parsing():
    assert parse_spec("obd:hessian=hutchinson,samples=20") == ("obd", {"hessian": "hutchinson", "samples": 20})
    assert parse_spec("si:xi=0.01") == ("si", {"xi": 0.01})
    assert parse_spec("fisher:kind=true") == ("fisher", {"kind": "true"})
    assert make_measure("fisher:kind=true").kind == "true"
    with pytest.raises(ValueError, match="name:key=value"):
        parse_spec("obd:hutchinson")


def test_a_new_file_is_found_without_editing_init(tmp_path, monkeypatch):
    package = tmp_path / "toyplugins"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        from harness.common.registry import Registry, import_all
        REG = Registry("toy")
        import_all(__name__, __path__)
    """))
    (package / "alpha.py").write_text("from toyplugins import REG\n@REG.register('alpha')\nclass Alpha: pass\n")
    (package / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toyplugins

    assert toyplugins.REG.names() == ["alpha"]
    sys.modules.pop("toyplugins", None)


def test_toy_measure_registered_at_runtime_is_usable():
    before = MEASURES.names()

    @register_measure("toy_constant")
    class Toy(Measure):
        def score(self, ctx):
            return [np.full(shape, 7.0, np.float32) for shape in ctx]

    try:
        scores = make_measure("toy_constant").score([(2, 3), (3,)])
        assert [s.tolist() for s in scores] == [[[7.0] * 3] * 2, [7.0] * 3]
        assert measures.MEASURES.names() == sorted([*before, "toy_constant"])
    finally:
        MEASURES.unregister("toy_constant")
    assert MEASURES.names() == before


@pytest.mark.parametrize("package,upstream_only", [("measures", ["tasks", "aggregations"]),
                                                    ("aggregations", ["tasks"]),
                                                    ("tasks", ["measures", "aggregations"])])
def test_a_plugin_package_imports_no_other_plugin_package_for_its_registry(package, upstream_only):
    """The registry lives in harness.common.registry: importing one plugin folder runs none of the others' modules."""
    script = f"import sys, {package}; print(sorted(set({upstream_only!r}) & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
