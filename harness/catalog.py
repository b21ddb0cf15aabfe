"""What is registered, read from the plugin files without importing them: ``--list`` and ``--help``.

Importing a plugin imports TensorFlow (seconds); reading its source does not.
Each public module of ``tasks/``, ``measures/`` and ``aggregations/`` is parsed
with :mod:`ast` for the class decorated ``@register_<kind>("name")``: its
docstring's first line, its literal class attributes (a task's ``models``,
``default_model``, training defaults), and its ``__init__`` options with their
defaults; an option checked against a module-level tuple (``if kind not in
KINDS`` or ``check_choice(..., kind, KINDS)``) gets that tuple as its
choices. The grid's choices are the tuples where the harness defines them.
``tests/test_catalog.py`` checks all of it against the imported registries.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID_CHOICES = {
    "poolings": ("aggregations/_items.py", "POOLINGS"),
    "scopes": ("harness/constants.py", "SCOPES"),
    "normalizations": ("harness/constants.py", "NORMALIZATIONS"),
    "replacements": ("harness/constants.py", "REPLACEMENTS"),
    "orders": ("harness/constants.py", "ORDERS"),
    "controls": ("harness/constants.py", "CONTROLS"),
    "recoveries": ("harness/recovery_spec.py", "RECOVERIES"),
    "prunable": ("measures/_base.py", "PRUNABLE_CHOICES"),
}
PACKAGES = {"task": "tasks", "measure": "measures", "aggregation": "aggregations"}


@dataclass
class Option:
    """One constructor option of a plugin: its name, default (source text) and choices (None: any value)."""

    name: str
    default: str | None
    choices: list | None = None


@dataclass
class Plugin:
    """A registered plugin as its source file declares it."""

    kind: str
    name: str
    summary: str
    options: list[Option] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)


def _constants(tree: ast.Module) -> dict:
    """Module-level ``NAME = <literal>`` assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def constant(relative_path: str, name: str):
    """The literal value of a module-level constant, read from the file without importing it."""
    return _constants(ast.parse((ROOT / relative_path).read_text()))[name]


def _registered_name(node: ast.ClassDef, kind: str) -> str | None:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and decorator.args and isinstance(decorator.args[0], ast.Constant):
            func = decorator.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == f"register_{kind}":
                return decorator.args[0].value
    return None


def _choices_in(body: ast.FunctionDef, option: str, constants: dict) -> list | None:
    """Choices of ``option``: the constant it is checked against with ``in``/``not in`` or ``check_choice``."""
    for node in ast.walk(body):
        names = []
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == option:
            if isinstance(node.ops[0], (ast.In, ast.NotIn)):
                names = node.comparators
        elif isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id == option for a in node.args):
            names = node.args
        for name in names:
            if isinstance(name, ast.Name) and isinstance(constants.get(name.id), (tuple, list, set, frozenset)):
                return list(constants[name.id])
    return None


def _options(init: ast.FunctionDef | None, constants: dict) -> list[Option]:
    if init is None:
        return []
    args = [*init.args.args[1:], *init.args.kwonlyargs]
    defaults = [None] * (len(init.args.args) - 1 - len(init.args.defaults)) + list(init.args.defaults)
    defaults += list(init.args.kw_defaults)
    return [Option(a.arg, None if d is None else ast.unparse(d), _choices_in(init, a.arg, constants))
            for a, d in zip(args, defaults)]


def _attributes(node: ast.ClassDef) -> dict:
    found = {}
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
            value = item.value
            if isinstance(value, ast.Dict):  # models = {"mlp": builder}: the keys
                found[item.targets[0].id] = [k.value for k in value.keys if isinstance(k, ast.Constant)]
            else:
                try:
                    found[item.targets[0].id] = ast.literal_eval(value)
                except ValueError:
                    pass
    return found


def _plugin(kind: str, node: ast.ClassDef, classes: dict, constants: dict) -> Plugin:
    doc = (ast.get_docstring(node) or "").strip().splitlines()
    init, current = None, node
    while current is not None and init is None:  # the nearest __init__, following bases defined in the same file
        init = next((f for f in current.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        base = next((b.id for b in current.bases if isinstance(b, ast.Name) and b.id in classes), None)
        current = classes.get(base)
    return Plugin(kind, _registered_name(node, kind), doc[0] if doc else "", _options(init, constants),
                  _attributes(node))


def _decorated_models(tree: ast.Module) -> list[tuple[str, str]]:
    """``(task, model)`` of every function decorated ``@register_model("task", "model", ...)``."""
    found = []
    for node in tree.body:
        for decorator in getattr(node, "decorator_list", []):
            func = getattr(decorator, "func", None)
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            args = getattr(decorator, "args", [])
            if called == "register_model" and len(args) >= 2 and all(isinstance(a, ast.Constant) for a in args[:2]):
                found.append((args[0].value, args[1].value))
    return found


def plugins(kind: str) -> list[Plugin]:
    """Every plugin of ``kind`` (``task``, ``measure``, ``aggregation``) declared in its package, by name."""
    found, models = [], []
    for path in sorted((ROOT / PACKAGES[kind]).glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        constants = _constants(tree)
        found += [_plugin(kind, n, classes, constants) for n in classes.values() if _registered_name(n, kind)]
        models += _decorated_models(tree) if kind == "task" else []
    for plugin in found if kind == "task" else []:  # models in their own files (@register_model) join their task's
        plugin.attributes["models"] = plugin.attributes.get("models", []) + [m for t, m in models if t == plugin.name]
    return sorted(found, key=lambda p: p.name)


def grid_choices(name: str) -> list:
    """The valid values of a grid option (``poolings``, ``scopes``, ``normalizations``, ``replacements``, ``prunable``)."""
    return list(constant(*GRID_CHOICES[name]))


def _task_line(task: Plugin) -> str:
    a = task.attributes
    models = ", ".join(f"{m}*" if m == a.get("default_model") else m for m in a.get("models", []))
    data = "" if a.get("reads_data_dir", True) else "; no --data-dir (data ship with the packages)"
    augment = f"; --augmentation {' | '.join(a['augmentations'])}" if len(a.get("augmentations", [])) > 1 else ""
    return (f"  {task.name:<14}models: {models}; epochs {a.get('epochs', 3)}, batch size {a.get('batch_size', 32)}, "
            f"learning rate {a.get('learning_rate', 1e-3)}{data}{augment}")


def _option_text(option: Option) -> str:
    values = f": {' | '.join(map(str, option.choices))}" if option.choices else ""
    default = "" if option.default is None else f" (default {option.default.strip(chr(39))})"
    return f"{option.name}{values}{default}"


def _measure_lines(measure: Plugin) -> list[str]:
    when = " [training-time]" if measure.attributes.get("training_time") else ""
    lines = [f"  {measure.name:<14}{measure.summary}{when}"]
    return lines + [f"  {'':<16}{_option_text(o)}" for o in measure.options]


def listing() -> str:
    """The text of ``python -m harness --list``."""
    lines = ["tasks (--task, --model; * the task's default model):"]
    lines += [_task_line(t) for t in plugins("task")]
    lines += ["measures (--measures name or name:key=value,...):"]
    lines += [line for m in plugins("measure") for line in _measure_lines(m)]
    lines += ["aggregations (--aggregations name or name:key=value,...):"]
    lines += [line for a in plugins("aggregation") for line in _measure_lines(a)]
    notes = {"normalizations": ", global scope only", "recoveries": "; bn:batches=B, finetune:steps=k"}
    lines += [f"{name} (--{name}{notes.get(name, '')}): {' '.join(grid_choices(name))}" for name in GRID_CHOICES]
    return "\n".join(lines)
