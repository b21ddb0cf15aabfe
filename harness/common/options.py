"""Plugin options declared as data, and the one check of given values against them.

A measure or aggregation declares its options on its class, as a literal::

    options = {"kind": Option(default="empirical", choices=("empirical", "true"), doc="...")}

The base class's ``__init__`` calls :func:`check_options` with that
declaration, and :mod:`harness.cli.catalog` reads the same declaration from the
file's source (with :mod:`ast`, without importing it), so ``--list`` shows
every option's choices and the checks made before TensorFlow is imported
(:mod:`harness.cli.inputs`) refuse a bad value with the same message. This module
imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GROUPS_EXAMPLE = "[[1, 7], [6, 8]]"


@dataclass(frozen=True)
class Option:
    """One option of a plugin: its default and what values are valid.

    Attributes:
        default: The value when the option is not given.
        choices: The valid values (None: any value of ``type``).
        type: ``int``, ``float`` (finite; an int is accepted) or None (checked by ``choices`` or ``rule``).
        low: Smallest valid value of a number (inclusive), or None.
        above: A number must be greater than this (exclusive), or None.
        rule: A named check of :data:`RULES` for values no type describes: ``"class_groups"``
            (lists of class ids) or ``"group_index"`` (an index into the option ``groups``).
        doc: One line on what the option does.
    """

    default: Any = None
    choices: tuple | None = None
    type: type | None = None
    low: float | None = None
    above: float | None = None
    rule: str | None = None
    doc: str = ""

    def describe(self) -> str:
        """What a valid value is, in words (``"a positive integer"``, ``"a finite number > 0"``)."""
        if self.type is int:
            return "a positive integer" if self.low == 1 else f"an integer >= {self.low}"
        bound = f" > {self.above}" if self.above is not None else f" >= {self.low}" if self.low is not None else ""
        return f"a finite number{bound}"

    def check(self, key: str, value, values: dict):
        """Return ``value`` if valid for option ``key`` (normalised by a rule), given all the options' ``values``.

        Raises:
            ValueError: names the option, the value and what is valid.
        """
        if self.rule is not None:
            return RULES[self.rule](key, value, values)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{key} must be one of {list(self.choices)}. Received: {key}={value!r}")
        if self.type is not None and not self._valid_number(value):
            raise ValueError(f"{key} must be {self.describe()}. Received: {key}={value!r}")
        return value

    def _valid_number(self, value) -> bool:
        kinds = (int,) if self.type is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (self.above is None or value > self.above)


def check_options(kind: str, name: str, declared: dict[str, Option], given: dict, received=None) -> dict:
    """Every declared option's value: the given ones checked, the others at their defaults.

    Args:
        kind: ``"measure"`` or ``"aggregation"``, for the messages.
        name: The plugin's registered name.
        declared: The plugin class's ``options``.
        given: The options given (from a spec, or keyword arguments).
        received: What to quote as received for an unknown option (the spec); default ``given``.

    Raises:
        ValueError: one line: an unknown option (listing the declared ones) or a bad value
            (naming the plugin, the value and what is valid).
    """
    unknown = sorted(set(given) - set(declared))
    shown = given if received is None else repr(received)
    if unknown and not declared:
        raise ValueError(f"{kind.capitalize()} {name!r} takes no options. Received: {shown}")
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} of {kind} {name!r}; available: {list(declared)}. "
                         f"Received: {shown}")
    values = {key: option.default for key, option in declared.items()} | dict(given)
    for key, option in declared.items():
        if key in given or option.rule is not None:
            try:
                values[key] = option.check(key, values[key], values)
            except ValueError as error:
                raise ValueError(f"{kind.capitalize()} {name!r}: {error}") from None
    return values


def canonical_spec(name: str, declared: dict[str, Option], values: dict) -> str:
    """``name``, or ``name:key=value,...`` with the options whose value is not their default (a spec's one form)."""
    given = {key: values[key] for key, option in declared.items() if values[key] != option.default}
    return name + ("" if not given else ":" + ",".join(f"{k}={v}" for k, v in given.items()))


def class_groups(key: str, groups, values: dict) -> list[list[int]] | None:
    """At least two non-empty, disjoint lists of class ids (ints >= 0); None stays None (no groups).

    Raises:
        ValueError: not such a list, or a class in two groups; quotes the value.
    """
    if groups is None:
        return None
    shaped = isinstance(groups, (list, tuple)) and len(groups) >= 2 and all(
        isinstance(g, (list, tuple)) and g and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in g)
        for g in groups)
    if not shaped:
        raise ValueError(f"{key} must be a list of at least two non-empty lists of class ids >= 0, e.g. "
                         f"{GROUPS_EXAMPLE}. Received: {key}={groups!r}")
    flat = [c for g in groups for c in g]
    repeated = sorted({c for c in flat if flat.count(c) > 1})
    if repeated:
        raise ValueError(f"{key} must be disjoint; class(es) {repeated} appear more than once. "
                         f"Received: {key}={groups!r}")
    return [list(g) for g in groups]


def group_index(key: str, target, values: dict) -> int | None:
    """The index of one of the option ``groups``' groups: 0 when not given; None without groups.

    Raises:
        ValueError: an index without ``groups``, or not an index into them.
    """
    groups = class_groups("groups", values.get("groups"), values)
    if groups is None:
        if target is not None:
            raise ValueError(f"{key} needs groups. Received: {key}={target!r}, groups=None")
        return None
    target = 0 if target is None else target
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(groups):
        raise ValueError(f"{key} must be a group index in 0..{len(groups) - 1}. Received: {key}={target!r}")
    return target


RULES = {"class_groups": class_groups, "group_index": group_index}


def signed(cls_signed: bool, signed_when: dict, values: dict) -> bool:
    """Whether a measure with these option ``values`` may give negative scores.

    Args:
        cls_signed: The class's ``signed``: true for every instance.
        signed_when: The class's ``signed_when``: option name -> the values that make scores signed
            (``{"hessian": ("hutchinson", "exact")}``).
        values: The instance's options.
    """
    return bool(cls_signed) or any(values.get(key) in choices for key, choices in signed_when.items())
