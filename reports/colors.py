"""One colour and line style per measure in every figure of every analysis, fixed by the measure's name.

A measure's style is fixed by its name alone, never by which other measures are present: the project's measures
take the slots of ``KNOWN`` in that order, any other name a slot from a hash of its name (``zlib.crc32``, stable
across runs). Slot i gets colour ``PALETTE[i % 8]`` and, beyond the palette, the next line style and marker.
``PALETTE`` is Okabe and Ito's colour-blind-safe set (2008, "Color universal design") without its pale yellow,
with Tol's wine as the eighth colour.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import pandas as pd

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255"]
LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["", "o", "s", "^", "D", "v"]
KNOWN = [
    "magnitude", "obd", "fisher", "snip", "synflow", "grasp", "taylor", "wanda", "maav", "mas", "si", "random",
    "momentum", "update_tally", "weight_change", "sign_flip",
]  # fmt: skip


def slot(name: str) -> int:
    """The style slot of a measure name: its index in ``KNOWN``, else a hash of the name beyond them."""
    name = str(name)
    return KNOWN.index(name) if name in KNOWN else len(KNOWN) + zlib.crc32(name.encode()) % 240


def measure_style(name: str) -> dict:
    """Matplotlib line keywords of a measure: ``color``, ``ls`` and ``marker`` (see the module docstring)."""
    i = slot(name)
    turn = i // len(PALETTE)
    return {"color": PALETTE[i % len(PALETTE)], "ls": LINE_STYLES[turn % len(LINE_STYLES)],
            "marker": MARKERS[(turn // len(LINE_STYLES)) % len(MARKERS)]}  # fmt: skip


def measure_styles(names: Iterable[str]) -> dict:
    """Name -> ``measure_style``, sorted by name."""
    return {name: measure_style(name) for name in sorted(set(map(str, names)))}


def measure_colors(names: Iterable[str]) -> dict:
    """Name -> colour, sorted by name; fixed by each name alone (see the module docstring)."""
    return {name: style["color"] for name, style in measure_styles(names).items()}


def treatment_colors(table: pd.DataFrame, compare: Sequence[str] = ("measure",), colors: dict | None = None) -> dict:
    """Colour of each treatment label: its measure's colour when the measure is compared, else one per label."""
    if "measure" not in compare:
        return measure_colors(table["treatment"])
    colors = colors or measure_colors(table["measure"])
    return dict(zip(table["treatment"], table["measure"].map(colors), strict=True))
