"""What is registered, read from the plugin files without importing them: ``--list``, ``--help`` and early checks.

Importing a plugin imports TensorFlow (seconds); reading its source does not.
Each public module of ``tasks/``, ``measures/`` and ``aggregations/`` is parsed
with :mod:`ast` for the class decorated ``@register_<kind>("name")``: its
docstring's first line and its literal class attributes, on top of those of
the classes it derives from (in the package, then the kind's base class:
``Task``, ``Measure``, ``Aggregation``; so a task's training defaults, a
measure's ``training_time`` and ``signed`` come from one place). A plugin's
``options`` are read as the declaration its class holds, a literal dict of
:class:`harness.common.options.Option` calls: the same objects the live class checks
its options against, so ``--list`` shows every option's choices and
:mod:`harness.cli.inputs` refuses a bad option before TensorFlow is imported.
The grid's choices are the tuples where the harness defines them.
``tests/test_catalog.py`` checks all of it against the imported registries.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from harness.common import constants
from harness.common.options import Option
from harness.thresholding.recovery_spec import RECOVERIES

ROOT = Path(__file__).resolve().parents[2]
GRID_CHOICES = {"poolings": constants.POOLINGS, "scopes": constants.SCOPES, "normalizations": constants.NORMALIZATIONS,
                "replacements": constants.REPLACEMENTS, "orders": constants.ORDERS, "controls": constants.CONTROLS,
                "recoveries": RECOVERIES, "prunable": constants.PRUNABLE_CHOICES}
PACKAGES = {"task": "tasks", "measure": "measures", "aggregation": "aggregations"}
BASES = {"task": ("tasks/_task.py", "Task"), "measure": ("measures/_base.py", "Measure"),
         "aggregation": ("aggregations/_items.py", "Aggregation")}
TYPES = {"int": int, "float": float, "str": str}


@dataclass
class Plugin:
    """A registered plugin as its source file declares it.

    Attributes:
        kind: ``task``, ``measure`` or ``aggregation``.
        name: The registered name.
        summary: The first line of the class docstring.
        options: The declared options, name -> :class:`~harness.common.options.Option` (the class's ``options``).
        attributes: The literal class attributes, inherited ones included (a dict's keys where its
            values are not literal: a task's ``models``).
    """

    kind: str
    name: str
    summary: str
    options: dict[str, Option] = field(default_factory=dict)
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


def _option(call: ast.expr) -> Option:
    """An ``Option(key=<literal>, type=int, ...)`` call of a declaration, as the object it makes.

    Raises:
        ValueError: not such a call (the declaration must be a literal the catalogue can read).
    """
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == "Option"
            and not call.args):
        raise ValueError(f"options must map names to Option(key=value, ...) calls. Received: {ast.unparse(call)}")
    values = {}
    for keyword in call.keywords:
        value = keyword.value
        values[keyword.arg] = TYPES[value.id] if isinstance(value, ast.Name) and value.id in TYPES \
            else ast.literal_eval(value)
    return Option(**values)


def _declared_options(value: ast.expr) -> dict[str, Option]:
    """The class attribute ``options = {"name": Option(...), ...}``, read."""
    if not isinstance(value, ast.Dict):
        raise ValueError(f"options must be a dict literal. Received: {ast.unparse(value)}")
    return {ast.literal_eval(k): _option(v) for k, v in zip(value.keys, value.values, strict=True)}


def _assignments(node: ast.ClassDef) -> list[tuple[str, ast.expr]]:
    """``name = value`` and ``name: type = value`` statements of a class body."""
    found = []
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
            found.append((item.targets[0].id, item.value))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
            found.append((item.target.id, item.value))
    return found


def _attributes(node: ast.ClassDef) -> dict:
    """The class's own literal attributes, ``options`` as :class:`Option` objects."""
    found = {}
    for name, value in _assignments(node):
        if name == "options":
            found[name] = _declared_options(value)
        elif isinstance(value, ast.Dict) and not _is_literal(value):  # models = {"mlp": builder}: the keys
            found[name] = [k.value for k in value.keys if isinstance(k, ast.Constant)]
        elif _is_literal(value):
            found[name] = ast.literal_eval(value)
    return found


def _is_literal(value: ast.expr) -> bool:
    try:
        ast.literal_eval(value)
    except ValueError:
        return False
    return True


def _inherited(node: ast.ClassDef, classes: dict, base: dict) -> dict:
    """The attributes of ``node`` over those of its bases in the package, over the kind's base class's."""
    parent = next((b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes), None)
    above = base if parent is None or classes[parent] is node else _inherited(classes[parent], classes, base)
    return above | _attributes(node)


def _plugin(kind: str, node: ast.ClassDef, classes: dict, base: dict) -> Plugin:
    doc = (ast.get_docstring(node) or "").strip().splitlines()
    attributes = _inherited(node, classes, base)
    return Plugin(kind, _registered_name(node, kind), doc[0] if doc else "", attributes.pop("options", {}), attributes)


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


def defaults(kind: str) -> dict:
    """The literal class attributes of the kind's base class (``Task``'s training defaults, ...)."""
    path, name = BASES[kind]
    node = next(n for n in ast.parse((ROOT / path).read_text()).body if isinstance(n, ast.ClassDef) and n.name == name)
    return _attributes(node)


def _trees(kind: str) -> list[ast.Module]:
    paths = sorted((ROOT / PACKAGES[kind]).glob("*.py"))
    return [ast.parse(path.read_text()) for path in paths if not path.name.startswith("_")]


def plugins(kind: str) -> list[Plugin]:
    """Every plugin of ``kind`` (``task``, ``measure``, ``aggregation``) declared in its package, by name."""
    trees, base = _trees(kind), defaults(kind)
    classes = {n.name: n for tree in trees for n in tree.body if isinstance(n, ast.ClassDef)}
    found = sorted((_plugin(kind, n, classes, base) for n in classes.values() if _registered_name(n, kind)),
                   key=lambda p: p.name)
    models = [m for tree in trees for m in _decorated_models(tree)] if kind == "task" else []
    for plugin in found if kind == "task" else []:  # models in their own files (@register_model) join their task's
        plugin.attributes["models"] = list(plugin.attributes["models"]) + [m for t, m in models if t == plugin.name]
        plugin.attributes["augmentations"] = list(plugin.attributes["augmentations"])
    return found


def grid_choices(name: str) -> list:
    """The valid values of a grid option (``poolings``, ``scopes``, ``normalizations``, ``replacements``, ``prunable``)."""
    return list(GRID_CHOICES[name])


def _task_line(task: Plugin) -> str:
    a = task.attributes
    models = ", ".join(f"{m}*" if m == a["default_model"] else m for m in a["models"])
    data = "" if a["reads_data_dir"] else "; no --data-dir (data ship with the packages)"
    augment = f"; --augmentation {' | '.join(a['augmentations'])}" if len(a["augmentations"]) > 1 else ""
    return (f"  {task.name:<14}models: {models}; epochs {a['epochs']}, batch size {a['batch_size']}, "
            f"learning rate {a['learning_rate']}{data}{augment}")


def option_text(name: str, option: Option) -> str:
    """One option as ``--list`` shows it: ``kind: empirical | true (default empirical); <doc>``."""
    values = " | ".join(map(str, option.choices)) if option.choices else \
        option.describe() if option.type is not None else ""
    values += "" if option.default is None else f" (default {option.default})"
    return f"{name}: " + "; ".join(part for part in (values.strip(), option.doc) if part)


def _measure_lines(measure: Plugin) -> list[str]:
    when = " [training-time]" if measure.attributes.get("training_time") else ""
    lines = [f"  {measure.name:<14}{measure.summary}{when}"]
    return lines + [f"  {'':<16}{option_text(n, o)}" for n, o in measure.options.items()]


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
