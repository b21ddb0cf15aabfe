"""The project's import graph has no cycle, each harness module imports alone, and the light helpers stay TensorFlow-free.

The static check parses every module with ``ast`` and follows every import statement, function-level ones included
(a lazy import that closes a loop is still a cycle: it only moves the failure to call time). Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "measures", "tasks", "aggregations", "reports")
LIGHT = ("harness.common.validation", "harness.common.columns", "harness.common.run_id", "harness.common.constants",
         "harness.common.files", "harness.common.registry", "harness.common.options", "harness.cli.options",
         "harness.cli.plugin_checks", "harness.thresholding.recovery_spec", "harness.study.spec", "harness.cli.inputs",
         "harness.cli.catalog", "harness.experiments.localize.config")


@functools.cache
def module_files() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def _targets(node: ast.AST, name: str, is_package: bool, modules: dict) -> set[str]:
    """The project modules an import statement in module ``name`` names.

    ``from a import b`` reaches ``a.b`` where that is a module, else ``a``. The parent packages Python initialises on
    the way are not counted: a plugin importing its package's registry is not a cycle.
    """
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & set(modules)
    base = node.module or ""
    if node.level:
        parts = name.split(".")
        anchor = parts[: len(parts) - node.level + is_package]
        base = ".".join(anchor + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names} & set(modules)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Edges module -> the project modules it imports anywhere in its source."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped = _type_checking_nodes(tree)
        graph[name] = set().union(*[
            _targets(node, name, path.name == "__init__.py", modules) for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped]) - {name}
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first search inside the component)."""
    start, members = component[0], set(component)
    parents, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            if start in graph[node]:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return path[::-1] + [start]
            for succ in sorted((graph[node] & members) - set(parents)):
                parents[succ] = node
                nxt.append(succ)
        frontier = nxt
    return component


def import_cycles() -> list[list[str]]:
    """One cycle path per strongly connected component of the import graph."""
    graph = import_graph()
    return [_cycle_path(graph, component) for component in _strongly_connected(graph)]


def test_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "harness.experiments.localize.config" in graph["harness.experiments.localize.experiment"]
    assert "measures" in graph["measures.fisher"]
    assert "harness.experiments.localize.config" in graph["harness.experiments.localize.__main__"]


def test_cycle_finder_reports_the_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"} - {"e"}}
    assert [_cycle_path(graph, c) for c in _strongly_connected(graph)] == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root and return its stdout."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


_ALONE = """
import importlib, json, sys
names, packages, preload = json.loads(sys.argv[1])
for module in preload:  # third-party libraries, loaded once: only the project's modules are imported afresh
    importlib.import_module(module)
failed = {}
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{type(error).__name__}: {error}"
print(json.dumps(failed))
"""


def imports_alone(names: list[str], packages, preload=(), cwd: Path = ROOT) -> dict[str, str]:
    """Import each module first, with none of ``packages`` loaded before it; return the failures by module."""
    done = subprocess.run([sys.executable, "-c", _ALONE, json.dumps([names, list(packages), list(preload)])], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_imports_alone_finds_a_module_level_cycle(tmp_path):
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    (tmp_path / "cyc" / "c.py").write_text("C = 3\n")
    failed = imports_alone(["cyc.a", "cyc.b", "cyc.c"], ["cyc"], cwd=tmp_path)
    assert sorted(failed) == ["cyc.a", "cyc.b"] and "partially initialized" in failed["cyc.a"]


@pytest.mark.slow
def test_each_harness_module_imports_alone():
    names = sorted(name for name in module_files() if name.split(".")[0] == "harness")
    assert imports_alone(names, PACKAGES, preload=["harness.common.quiet", "tensorflow", "keras"]) == {}


_LIGHT = """
import importlib, json, sys
names, packages = json.loads(sys.argv[1])
for name in names:  # each imported first; the first one that loads a heavy library is named
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    importlib.import_module(name)
    heavy = sorted(m for m in ("tensorflow", "keras", "ray") if m in sys.modules)
    if heavy:
        print(json.dumps([name, heavy]))
        break
else:
    print(json.dumps(None))
"""


def test_light_modules_do_not_import_tensorflow():
    done = subprocess.run([sys.executable, "-c", _LIGHT, json.dumps([LIGHT, PACKAGES])], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found is None, f"{found[0]} imports {found[1]}"


def test_light_modules_do_not_import_tensorflow_from_inputs_pre_check():
    code = ("import sys; from harness.cli.options import parser; from harness.cli.inputs import check_args; "
            "check_args(parser().parse_args(['--task', 'digits', '--seeds', '0-1', '--scopes', 'global'])); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))")
    assert _run(code).strip() == "[]"


# Run ids computed on the code before the shared helpers existed (commit da54d98): they must not change.
LOCALIZE_IDS = [({}, "381cea8926e3"),
                (dict(task="digits", groups=[[0, 1], [2, 3]], output_layer="sigmoid", fork_passes=2, seeds=[0, 1]),
                 "b04b17e6b274"),
                (dict(output_layer="softmax", fork_passes=1, progress=False, output="x"), "381cea8926e3")]
RUN_IDS = [({}, "c752e2994225"), (dict(task="digits", structured_bn="keep", prunable="all", seed=3), "63932cd4fc37"),
           (dict(task="digits", prunable="all", scopes=["global", "layer"], normalizations=["none", "lamp"],
                 measures=["magnitude"]), "f053c76e26d3")]


@pytest.mark.parametrize("settings, run_id", LOCALIZE_IDS)
def test_localize_run_ids_are_unchanged(settings, run_id):
    from harness.experiments.localize.config import LocalizeConfig

    assert LocalizeConfig(**settings).run_id == run_id


@pytest.mark.slow
def test_run_and_study_ids_are_unchanged():
    from harness.pipeline.config import RunConfig
    from harness.study.driver import Study

    assert [RunConfig(**settings).run_id for settings, _ in RUN_IDS] == [run_id for _, run_id in RUN_IDS]
    study = Study({"task": "digits", "measures": ["magnitude"]}, {"seed": [0, 1]}, storage="unused")
    assert study.study_id == "e3eb509e7242"
