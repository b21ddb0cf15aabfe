"""Tasks: one file each, registered with ``@register_task``."""

from tasks._registry import Registry, import_all
from tasks._task import DatasetUnavailable, Task, TaskData

TASKS: Registry = Registry("task")
register_task = TASKS.register


def get_task(name: str) -> Task:
    """Return a new instance of the task registered as ``name``.

    Raises:
        ValueError: ``name`` is unknown; the message lists the valid names.
    """
    return TASKS.get(name)()


import_all(__name__, __path__)

__all__ = ["TASKS", "DatasetUnavailable", "Task", "TaskData", "get_task", "register_task"]
