"""Checks of single values shared by every config, each a one-line ``ValueError`` that quotes what it received.

TensorFlow-free (imports the standard library only), so the pre-TensorFlow
checks (:mod:`harness.cli.inputs`), :class:`harness.pipeline.config.RunConfig`, the
thresholding and sweep modules and :mod:`harness.experiments.localize` use the same
checks and messages.
"""

from __future__ import annotations

import math

import tomllib


def check_choice(name: str, value, choices) -> None:
    """Raise ``ValueError("Unknown <name> 'x'; available: [...]")`` if ``value`` is not a choice."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; available: {list(choices)}")


def check_list(name: str, values, kind: type | tuple = str, what: str = "strings") -> list:
    """A non-empty list of distinct values of type ``kind`` (booleans refused), as a list.

    Raises:
        ValueError: not a non-empty list or tuple, a value of another type, or duplicates.
    """
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list of {what}. Received: {name}={values!r}")
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of {what}. Received: {name}={list(values)!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates. Received: {name}={list(values)}")
    return list(values)


def check_number(name: str, value, what: str, valid) -> None:
    """A number (not a boolean, not NaN) for which ``valid(value)`` holds; ``what`` says what is valid.

    Raises:
        ValueError: ``<name> must be <what>. Received: <name>=<value>``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not valid(value):
        raise ValueError(f"{name} must be {what}. Received: {name}={value!r}")


def check_positive_int(name: str, value, limit: int | None = None) -> None:
    """An integer in ``[1, limit]`` (no upper limit where ``limit`` is None); booleans refused.

    Raises:
        ValueError: names the setting and the value (and the limit, when it is exceeded).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if limit is not None and value > limit:
        raise ValueError(f"{name} must be at most {limit}. Received: {name}={value!r}")


def unknown_classes(values, num_classes: int | None) -> list:
    """The values that are no class id in ``[0, num_classes)`` (every value where ``num_classes`` is None)."""
    return [c for c in values if isinstance(c, bool) or not isinstance(c, int) or num_classes is None
            or not 0 <= c < num_classes]


def read_toml(path) -> dict:
    """The TOML file's table.

    Raises:
        ValueError: the file cannot be read or is not valid TOML; names the file (and the place).
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as error:
        raise ValueError(f"Cannot read the config file {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None


def known_settings(values: dict, valid: list[str], source: str) -> dict:
    """``values`` unchanged when every key is one of ``valid``.

    Raises:
        ValueError: ``Unknown setting(s) [...] in <source>; available: [...]``.
    """
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown} in {source}; available: {valid}")
    return values
