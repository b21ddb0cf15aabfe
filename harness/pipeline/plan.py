"""What one run sweeps and what is done: the grid of conditions, the sweep keys, the epochs, the missing sweeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import aggregations
from harness.pipeline import results
from harness.pipeline.config import RunConfig
from harness.thresholding.controls import control_name
from harness.thresholding.recovery_spec import Recovery


def conditions(config: RunConfig) -> Iterator[dict]:
    """Every (aggregation, pooling, scope, normalization, order) of the grid; pooling is "none" where it has no effect.

    Scope ``output`` is skipped for aggregations that pool weights into items
    (unit, filter): their items are whole units, one per output segment.
    """
    for name in config.aggregations:
        pools = aggregations.get_aggregation(name).pools
        for pooling in config.poolings if pools else ["none"]:
            for scope in [s for s in config.scopes if not (pools and s == "output")]:
                for normalization in config.normalizations if scope == "global" else ["none"]:
                    for order in config.orders:
                        yield dict(aggregation=name, pooling=pooling, scope=scope, normalization=normalization,
                                   order=order)


def aggregations_of(config: RunConfig) -> dict:
    """One instance of each aggregation of the run, by spec, with the run's ``structured_bn``."""
    return {name: aggregations.get_aggregation(name, config.structured_bn) for name in config.aggregations}


def build_grid(config: RunConfig, kinds: dict, params: list, note: Callable[[str], None]) -> list[dict]:
    """The conditions swept on this model: aggregations that form no items of their own are skipped, with a note.

    Args:
        config: The run's parameters.
        kinds: :func:`aggregations_of` the run.
        params: The model's prunable parameters.
        note: Tells the user one line.

    Raises:
        ValueError: no aggregation applies to the model.
    """
    applies = {name: kind.applies_to(params) for name, kind in kinds.items()}
    every = list(conditions(config))
    grid = [c for c in every if applies[c["aggregation"]]]
    for name in dict.fromkeys(c["aggregation"] for c in every if not applies[c["aggregation"]]):
        note(f"aggregation {name!r} is skipped: on model {config.model!r} its items are single weights, as in 'weight'")
    for name in dict.fromkeys(c["aggregation"] for c in grid):
        for line in kinds[name].span(params).notes:
            note(f"aggregation {name!r}: {line}")
    if not grid:
        raise ValueError(f"No aggregation of {config.aggregations} applies to model {config.model!r}.")
    return grid


def sweep_key(epoch: int, spec: str, condition: dict, replacement: str, recovery: str = "none") -> tuple:
    """The sweep key (:func:`harness.pipeline.results.sweep_key`) of one measure (or control), condition and replacement."""
    return results.sweep_key(dict(epoch=epoch, measure=spec, **condition, replacement=replacement, recovery=recovery))


class Plan:
    """The sweeps of one run, and which of them the CSV holds already.

    Args:
        config: The run's parameters.
        grid: The conditions swept on this model (:func:`build_grid`).
        recoveries: The recoveries applied on this model (``bn`` is skipped on a model without BatchNorm).
        done: The sweep keys the CSV holds complete.
    """

    def __init__(self, config: RunConfig, grid: list[dict], recoveries: list[Recovery], done: set[tuple]):
        self.config, self.grid, self.recoveries, self.done = config, grid, list(recoveries), set(done)
        self.variants = [None, *config.controls]  # the measure itself, then its controls
        self.epochs = range(1, config.epochs + 1) if config.epochs else range(0, 1)  # 0: a model file scored as it is

    def expected_keys(self, epoch: int) -> set[tuple]:
        """Every sweep key of one epoch: measures and their controls; empty for an epoch ``sweep_epochs`` skips."""
        if not self.config.sweeps_after(epoch):
            return set()
        return {sweep_key(epoch, control_name(spec, variant), condition, mode, recovery.spec)
                for spec in self.config.measures for variant in self.variants for condition in self.grid
                for mode in self.config.replacements for recovery in self.recoveries}

    def missing_epochs(self) -> list[int]:
        """The epochs with sweeps not yet in the CSV, in order."""
        return sorted({key[0] for epoch in self.epochs for key in self.expected_keys(epoch) - self.done})

    def todo(self, spec: str, epoch: int) -> list[tuple[dict, list[tuple]]]:
        """The sweeps of one measure and its controls after ``epoch`` not yet in the CSV.

        Returns:
            ``(condition, [(control or None, replacement, recovery), ...])`` for each condition with any.
        """
        todo = [(condition, [(variant, mode, recovery) for variant in self.variants
                             for mode in self.config.replacements for recovery in self.recoveries
                             if sweep_key(epoch, control_name(spec, variant), condition, mode, recovery.spec)
                             not in self.done])
                for condition in self.grid]
        return [(condition, sweeps) for condition, sweeps in todo if sweeps]

    def complete(self, done: set[tuple]) -> bool:
        """Whether ``done`` holds every sweep of the run."""
        return {key for epoch in self.epochs for key in self.expected_keys(epoch)} <= done
