"""Small text helpers shared by the report modules: labels, titles, file-name slugs, Markdown tables."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd


def _label(row, columns) -> str:
    return ", ".join(f"{c}={row[c]}" for c in columns)


def _title(pairs: tuple, per_line: int = 6) -> str:
    texts = [f"{c}={v}" for c, v in pairs]
    return "\n".join(", ".join(texts[i : i + per_line]) for i in range(0, len(texts), per_line))


DEFAULTS = {"pooling": ("mean", "none"), "scope": ("layer",), "normalization": ("none",), "replacement": ("zero",),
            "order": ("least",), "recovery": ("none",)}  # fmt: skip


def short_title(pairs) -> str:
    """One line: task and model, then only the settings that differ from the harness defaults (``DEFAULTS``)."""
    shown = [f"{c}={v}" for c, v in pairs
             if c in ("task", "model") or (str(v) != "-" and str(v) not in DEFAULTS.get(c, ()))]  # fmt: skip
    return ", ".join(shown)


def full_title(pairs) -> str:
    """Every (column, value) pair on one line, for a figure's metadata."""
    return ", ".join(f"{c}={v}" for c, v in pairs)


def _slug(values: Iterable) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(v)) for v in values)


def _varying(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if frame[c].nunique(dropna=False) > 1]


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table, without the optional ``tabulate`` dependency."""
    cells = df.map(lambda v: format(v, floatfmt) if isinstance(v, float) else str(v).replace("|", r"\|"))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]) + "\n"
