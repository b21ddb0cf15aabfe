"""Whether a file can be created under a path: the one probe of the harness's and the analysis's output checks.

Imports nothing beyond the standard library, so refusals need no TensorFlow. Used by
:func:`harness.cli.inputs.check_writable` (the result CSV's folder, a study's storage) and
:func:`reports.outputs.check_out_dir` (the analysis's output folder).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(path, what: str) -> Path:
    """That a file can be created in folder ``path``, or in the nearest folder above it that exists.

    Nothing is left behind: the probe is a temporary file, deleted at once.

    Args:
        path: a folder, existing or to be created.
        what: how the message names it, e.g. ``"beside data/r.csv"`` or ``"output folder figures/x"``.

    Returns:
        The nearest existing folder (``path`` itself when it exists).

    Raises:
        ValueError: ``Cannot write <what>: <reason> (<folder>). Choose another path.``; the reason is the
            system's (``Permission denied``, ``Read-only file system``), or ``Not a directory`` when a file
            stands where a folder should be.
    """
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"Cannot write {what}: Not a directory ({folder}). Choose another path.")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"Cannot write {what}: {error.strerror or error} ({folder}). Choose another path.") from None
    return folder
