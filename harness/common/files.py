"""Writing a run's small files safely: JSON written atomically, and a full disk reported by name.

TensorFlow-free (standard library only); :mod:`harness.pipeline.results` and
:mod:`harness.pipeline.checkpoint` both write through it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path


class DiskFull(OSError):
    """The disk holding a run's files is full; the message names the file and the bytes needed."""


def disk_full(path: Path, needed: int) -> DiskFull:
    """A :class:`DiskFull` naming ``path``, the bytes the write needed and the bytes free."""
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free} free"
    except OSError:
        free = "free space unknown"
    return DiskFull(f"No space left on device writing {path}: {needed} bytes needed, {free}. "
                    "Free some space (or choose another output path), then continue with --resume.")


@contextlib.contextmanager
def reporting_full_disk(path: Path, needed: int):
    """Turn ENOSPC/EDQUOT while writing ``path`` into :class:`DiskFull` (other errors pass through)."""
    try:
        yield
    except OSError as error:
        if isinstance(error, DiskFull) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise disk_full(path, needed) from None


def write_metadata(path: Path, content: dict) -> None:
    """Write ``content`` as JSON atomically: a temporary file, flushed and fsynced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(content, indent=2, default=str)
    try:
        with reporting_full_disk(tmp, len(text.encode())), tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
