"""Models as plugins: ``@register_model(task, name)`` adds a model to an existing task from its own file.

A registered builder is written into the task class's ``models`` (and its
defaults into ``model_defaults``), so everything that reads ``Task.models``
(``build_model``, config validation, ``--list``) sees it. A model registered
before its task waits until the task registers; discovery order does not matter.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.common.registry import Registry

DEFAULT_KEYS = ("batch_size", "epochs", "learning_rate", "augmentation")
_pending: dict[str, dict[str, tuple[Callable, dict]]] = {}


def attach(cls: type) -> None:
    """Write the models waiting for task ``cls.name`` into ``cls.models`` (the class's own copy).

    Raises:
        ValueError: a waiting model's name is already one of the task's models.
    """
    waiting = _pending.pop(cls.name, {})
    clash = sorted(set(waiting) & set(cls.models))
    if clash:
        raise ValueError(f"model {clash[0]!r} for task {cls.name!r} is already registered; names must be unique.")
    cls.models = {**cls.models, **{name: builder for name, (builder, _) in waiting.items()}}
    cls.model_defaults = {**cls.model_defaults, **{name: d for name, (_, d) in waiting.items() if d}}


def register_model(tasks: Registry, task: str, name: str, defaults: dict) -> Callable:
    """Return the decorator that registers a builder ``f(input_shape, num_classes) -> Model`` as ``name``.

    Raises:
        ValueError: a default is not one of ``DEFAULT_KEYS``, or the name is taken.
    """
    unknown = sorted(set(defaults) - set(DEFAULT_KEYS))
    if unknown:
        raise ValueError(f"Unknown model default(s) {unknown}; available: {list(DEFAULT_KEYS)}")

    def decorator(builder: Callable) -> Callable:
        if name in _pending.get(task, {}) or (task in tasks.names() and name in tasks.get(task).models):
            raise ValueError(f"model {name!r} for task {task!r} is already registered; names must be unique.")
        _pending.setdefault(task, {})[name] = (builder, dict(defaults))
        if task in tasks.names():
            attach(tasks.get(task))
        return builder

    return decorator


def unregister_model(tasks: Registry, task: str, name: str) -> None:
    """Remove a registered model (tests and notebooks that register toys)."""
    _pending.get(task, {}).pop(name, None)
    if task in tasks.names():
        cls = tasks.get(task)
        cls.models = {k: v for k, v in cls.models.items() if k != name}
        cls.model_defaults = {k: v for k, v in cls.model_defaults.items() if k != name}
