"""Output folders: the default name from the inputs, and no analysis silently replacing another input's files.

Each report records its inputs in ``inputs.json`` in its folder (the paths given, relative to the folder so that
a repository can move, or ``null`` for a DataFrame). A
folder that holds another input's record, or files without a record, is not written into: an explicit
``--out`` is refused, the default folder gives way to ``<name>-2``, ``<name>-3``, ...
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from reports.options import check_out_dir, expand_paths

RECORD = "inputs.json"
DEFAULT_ROOT = Path("figures")


def default_name(paths) -> str:
    """``figures/<name>``'s name: the study folder's name or the CSV's stem; several inputs joined by "+"."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    names = [Path(str(p).rstrip("/")).name if Path(p).is_dir() else Path(str(p)).stem for p in paths]
    names = [re.sub(r"[^A-Za-z0-9._-]+", "-", n).strip("-") or "results" for n in names]
    name = "+".join(dict.fromkeys(names))
    return name if len(name) <= 80 else f"{names[0]}+{len(names) - 1}-more"


def input_record(paths_or_df) -> list[str] | None:
    """The inputs as recorded: the real paths given, sorted; None for a DataFrame.

    Files and folders by their real path (a study that grows stays the same input), globs as absolute patterns.

    Raises:
        FileNotFoundError: a path, glob or folder matches no CSV (see ``load``).
    """
    if isinstance(paths_or_df, pd.DataFrame):
        return None
    paths = [paths_or_df] if isinstance(paths_or_df, str | Path) else list(paths_or_df)
    expand_paths(paths)
    return sorted({os.path.realpath(p) if Path(p).exists() else os.path.abspath(p) for p in map(str, paths)})


def output_folder(out_dir, paths_or_df, record) -> Path:
    """The folder to write: ``out_dir``, or by default ``figures/<name>`` (``-2``, ... when taken by other inputs).

    Raises:
        ValueError: an explicit ``out_dir`` holds another input's analysis, or files without a record; or it cannot
            be written (see ``check_out_dir``).
    """
    if out_dir is not None:
        out = check_out_dir(out_dir)
        _refuse_other_inputs(out, record)
        return out
    name = "dataframe" if isinstance(paths_or_df, pd.DataFrame) else default_name(paths_or_df)
    for i in range(1, 1000):
        out = check_out_dir(DEFAULT_ROOT / (name if i == 1 else f"{name}-{i}"))
        if _holder(out) in (_EMPTY, json.dumps(relative(record, out))):
            return out
    raise ValueError(f"Output folders {DEFAULT_ROOT / name}, -2, ... -999 all hold other analyses; give --out")


_EMPTY = "empty"


def _holder(out: Path) -> str:
    """``_EMPTY`` for a missing folder or one without files (subfolders aside), the record's JSON, or "unrecorded"."""
    if not out.is_dir() or not any(p.is_file() for p in out.iterdir()):
        return _EMPTY
    record = out / RECORD
    if not record.is_file():
        return "unrecorded"
    try:
        return json.dumps(json.loads(record.read_text(encoding="utf-8"))["inputs"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "unrecorded"


def relative(record, out: Path):
    """The recorded paths relative to the output folder (None stays None)."""
    if record is None:
        return None
    return sorted(os.path.relpath(p, os.path.realpath(out)) for p in record)


def _refuse_other_inputs(out: Path, record) -> None:
    holder = _holder(out)
    if holder in (_EMPTY, json.dumps(relative(record, out))):
        return
    what = "files of no recorded analysis" if holder == "unrecorded" else f"the analysis of {json.loads(holder)}"
    raise ValueError(f"Output folder {out} holds {what}; this analysis of {relative(record, out)} would replace them. "
                     "Give another --out, or empty the folder")  # fmt: skip


def write_record(out: Path, record, options: dict) -> Path:
    """Writes ``inputs.json``: the inputs and the options of the analysis whose files the folder holds."""
    text = json.dumps({"inputs": relative(record, out), "options": options}, indent=1, default=str)
    (out / RECORD).write_text(text + "\n", encoding="utf-8")
    return out / RECORD
