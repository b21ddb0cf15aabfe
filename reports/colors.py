"""One colour per measure in every figure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import seaborn as sns


def measure_colors(names: Iterable[str]) -> dict:
    """One colour per name, by sorted name: tab10 up to 10 names, tab20 up to 20, husl beyond."""
    names = sorted(set(map(str, names)))
    palette = "tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "husl"
    return dict(zip(names, sns.color_palette(palette, n_colors=len(names)), strict=True))


def treatment_colors(table: pd.DataFrame, compare: Sequence[str] = ("measure",), colors: dict | None = None) -> dict:
    """Colour of each treatment label: its measure's colour when the measure is compared, else one per label."""
    if "measure" not in compare:
        return measure_colors(table["treatment"])
    colors = colors or measure_colors(table["measure"])
    return dict(zip(table["treatment"], table["measure"].map(colors), strict=True))
