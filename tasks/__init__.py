"""Tasks: one file each, registered with ``@register_task``; models for a task with ``@register_model``."""

from collections.abc import Callable

from harness.common.registry import Registry, import_all
from tasks import _models
from tasks._task import DatasetUnavailable, Task, TaskData

TASKS: Registry = Registry("task")


def register_task(name: str) -> Callable[[type], type]:
    """Register a :class:`Task` subclass as ``name``; models registered for ``name`` join its ``models``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(cls: type) -> type:
        TASKS.register(name)(cls)
        _models.attach(cls)
        return cls

    return decorator


def register_model(task: str, name: str, **defaults) -> Callable:
    """Register a model builder ``f(input_shape, num_classes) -> keras.Model`` for an existing task.

    One file per model, anywhere in ``tasks/`` (or any module imported before
    the run); no edit to the task's file. ``defaults`` may set the model's
    ``batch_size``, ``epochs``, ``learning_rate`` and ``augmentation``; options
    given in the run's config still win.

    Example::

        @register_model("mnist", "tiny_cnn", batch_size=32)
        def tiny_cnn(input_shape, num_classes):
            ...

    Raises:
        ValueError: the task already has a model ``name``, or an unknown default.
    """
    return _models.register_model(TASKS, task, name, defaults)


def unregister_model(task: str, name: str) -> None:
    """Remove model ``name`` of ``task`` (tests and notebooks that register toys)."""
    _models.unregister_model(TASKS, task, name)


def get_task(name: str) -> Task:
    """Return a new instance of the task registered as ``name``.

    Raises:
        ValueError: ``name`` is unknown; the message lists the valid names.
    """
    return TASKS.get(name)()


import_all(__name__, __path__)

__all__ = [
    "TASKS", "DatasetUnavailable", "Task", "TaskData", "get_task", "register_model", "register_task",
    "unregister_model",
]
