"""Checks of measure and aggregation options, and of the rules that read plugin facts, before TensorFlow is imported.

The plugins' declarations (``options``, ``training_time``, ``signed``,
``signed_when``, ``pools``, ``by_default``) are read from their files by
:mod:`harness.cli.catalog`, or taken from the live class of a plugin registered
at run time. Options are checked by :func:`harness.common.options.check_options`,
the check the classes themselves make. The rules that combine plugins with
other settings are checked here once before TensorFlow is imported, and again
by :class:`harness.pipeline.config.RunConfig`, which calls :func:`check_plugins`
with its resolved settings.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

from harness.cli import catalog
from harness.common.options import canonical_spec, check_options, signed
from harness.common.registry import parse_spec
from harness.common.validation import check_list, unknown_classes

REGISTRIES = {"measure": ("measures", "MEASURES"), "aggregation": ("aggregations", "AGGREGATIONS")}
FACTS = ("training_time", "signed", "signed_when", "pools", "by_default")


@dataclass(frozen=True)
class Declared:
    """One measure or aggregation spec with its checked option values and its class's facts."""

    spec: str
    name: str
    values: dict
    facts: dict

    @property
    def canonical(self) -> str:
        """An aggregation's spec as its ``spec`` property writes it: the options not at their default."""
        return canonical_spec(self.name, declaration("aggregation", self.name)[0], self.values)

    @property
    def signed(self) -> bool:
        """Whether this measure, with these options, may give negative scores."""
        return signed(self.facts.get("signed", False), self.facts.get("signed_when", {}), self.values)


@functools.cache
def _files(kind: str) -> dict:
    return {p.name: p for p in catalog.plugins(kind)}


def _live(kind: str):
    module, registry = REGISTRIES[kind]
    return getattr(sys.modules[module], registry) if module in sys.modules else None


def declaration(kind: str, name: str) -> tuple[dict, dict]:
    """The declared options and facts of plugin ``name``: from its file, else from its live class."""
    plugin = _files(kind).get(name)
    if plugin is not None:
        return plugin.options, {f: plugin.attributes[f] for f in FACTS if f in plugin.attributes}
    cls = _live(kind).get(name)  # registered at run time; the name was checked before
    return cls.options, {f: getattr(cls, f) for f in FACTS if hasattr(cls, f)}


def names(kind: str) -> list[str]:
    """Every declared or registered plugin name of ``kind``."""
    live = _live(kind)
    return sorted(set(_files(kind)) | set(live.names() if live is not None else []))


def declared(kind: str, spec: str) -> Declared:
    """The spec's plugin with its options checked.

    Raises:
        ValueError: a malformed spec, an unknown option or a bad value; the plugin's own message.
    """
    name, given = parse_spec(spec, kind)
    options, facts = declaration(kind, name)
    return Declared(spec, name, check_options(kind, name, options, given, received=spec), facts)


def _defaults(kind: str, settings: dict) -> list[str]:
    """The specs a run that names none uses (as :class:`harness.pipeline.config.RunConfig` chooses them)."""
    chosen = names(kind)
    if kind == "aggregation":
        return [n for n in chosen if declaration(kind, n)[1].get("by_default", True)]
    if settings.get("epochs") == 0:
        return [n for n in chosen if not declaration(kind, n)[1].get("training_time", False)]
    return chosen


def check_plugins(settings: dict, num_classes: int | None, task: str) -> None:
    """Measure and aggregation options, and every rule that reads what a plugin declares.

    Raises:
        ValueError: one line, with :class:`harness.pipeline.config.RunConfig`'s message.
    """
    measure_specs = settings.get("measures") or _defaults("measure", settings)
    measures = [declared("measure", spec) for spec in measure_specs]
    aggregations = [declared("aggregation", spec) for spec in settings.get("aggregations") or
                    _defaults("aggregation", settings)]
    check_list("aggregations", [a.canonical for a in aggregations])  # unit and unit:direction=in are one
    _check_forgetting(settings, measures, measure_specs)
    _check_lamp_and_output(settings, measures, aggregations, measure_specs)
    _check_groups(measures, num_classes, task)
    trained = [m.spec for m in measures if m.facts.get("training_time")]
    if settings.get("epochs") == 0 and trained:
        raise ValueError(f"epochs 0 scores the file's weights without training; the training-time measures {trained} "
                         "observe training steps and are refused (remove them, or fine-tune with epochs >= 1). "
                         "Received: epochs=0")


def _check_forgetting(settings: dict, measures: list[Declared], specs: list[str]) -> None:
    forget = settings.get("forget_classes")
    if forget is None:
        return
    forget = sorted(forget)
    signed_specs = [m.spec for m in measures if m.signed]
    if (settings.get("contrast") or "ratio") == "ratio" and signed_specs:
        raise ValueError(f"contrast 'ratio' divides importances and needs non-negative ones; measures {signed_specs} "
                         f"give signed scores (use contrast 'difference'). Received: measures={list(specs)}")
    for measure in measures:
        groups, target = measure.values.get("groups"), measure.values.get("target")
        if groups and sorted(groups[target]) != forget:
            raise ValueError(f"Measure {measure.spec!r} scores the share of group {groups[target]}; in a forgetting "
                             f"run its target group must be the forget set. Received: forget_classes={forget}")


def _check_lamp_and_output(settings: dict, measures: list[Declared], aggregations: list[Declared],
                           specs: list[str]) -> None:
    normalizations, scopes = settings.get("normalizations") or ["none"], settings.get("scopes") or ["layer"]
    if "lamp" in normalizations and settings.get("contrast") == "difference":
        raise ValueError("normalization 'lamp' squares item scores and needs non-negative ones; contrast 'difference' "
                         f"gives signed scores. Received: normalizations={normalizations}, contrast='difference'")
    signed_specs = [m.spec for m in measures if m.signed]
    if "lamp" in normalizations and signed_specs:
        raise ValueError(f"normalization 'lamp' squares item scores and needs non-negative ones; measures "
                         f"{signed_specs} give signed scores. Received: measures={list(specs)}, "
                         f"normalizations={normalizations}")
    if "output" in scopes and all(a.facts.get("pools", True) for a in aggregations):
        raise ValueError("scope 'output' ranks single weights within each output unit and applies to per-weight "
                         f"aggregations only (e.g. 'weight'). Received: aggregations={[a.canonical for a in aggregations]}")


def _check_groups(measures: list[Declared], num_classes: int | None, task: str) -> None:
    for measure in measures:
        groups = measure.values.get("groups") or []
        unknown = sorted(set(unknown_classes([c for group in groups for c in group], num_classes)))
        if unknown:
            raise ValueError(f"Measure {measure.spec!r} names classes {unknown} that task {task!r} does not have; "
                             f"valid classes: 0..{(num_classes or 1) - 1}. Received: groups={groups}")
