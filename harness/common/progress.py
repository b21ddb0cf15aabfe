"""Progress output fitted to where it goes: bars on a terminal, text bars in a notebook, lines in a file.

- A terminal (stderr is a TTY): nested tqdm bars, redrawn in place: the
  run's epochs, the epoch's batches with the running mean of its training
  loss, the sweeps' measures; a study's trials.
- A notebook (an IPython kernel): one text bar at a time, the outermost
  (epochs, or trials). Text, unlike a widget, stays readable in the saved
  notebook; nested text bars would need cursor movements a notebook does not
  render.
- Anything else (a file, a pipe, a CI log): no bar; :func:`line` writes one
  line per epoch (or trial) instead of a line per refresh.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

REFRESH_SECONDS = 0.2  # how often a bar's numbers (a running mean) are brought from the device


def mode() -> str:
    """``"terminal"``, ``"notebook"`` or ``"log"``: where stderr goes."""
    if getattr(sys.stderr, "isatty", lambda: False)():
        return "terminal"
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return "notebook" if shell is not None and "IPKernelApp" in getattr(shell, "config", {}) else "log"


def bar(iterable=None, *, desc: str, unit: str, enabled: bool = True, nested: bool = False, **options) -> tqdm:
    """A tqdm bar on stderr, or a disabled one (a file or pipe; a nested bar in a notebook; ``enabled`` False).

    Args:
        iterable: What the bar iterates, or None with ``total`` in ``options``.
        desc: The bar's label.
        unit: What it counts: ``"epoch"``, ``"batch"``, ``"measure"``, ``"trial"``.
        enabled: False hides it everywhere.
        nested: Whether it is drawn inside another bar (shown on a terminal only).
        **options: Further tqdm options (``total``, ``initial``, ``leave``).
    """
    where = mode()
    shown = enabled and (where == "terminal" or (where == "notebook" and not nested))
    return tqdm(iterable, desc=desc, unit=unit, disable=not shown, file=sys.stderr, **options)


def line(text: str, enabled: bool = True) -> None:
    """Write one progress line to stderr where no bar is drawn (a file or pipe)."""
    if enabled and mode() == "log":
        print(text, file=sys.stderr, flush=True)
