"""Settings of the update-tally localisation experiment (seed 002), their validation and the run id."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.cli.inputs import task_facts
from harness.common.run_id import digest, result_defining
from harness.common.validation import (
    check_choice,
    check_number,
    check_positive_int,
    known_settings,
    read_toml,
    unknown_classes,
)

ACTIVATIONS = ("softplus", "relu", "sigmoid")
TALLY_HALVES = ("first", "second", "all")
INPUT_SCALINGS = ("seed", "unit")
OUTPUT_LAYERS = ("softmax", "sigmoid", "softplus")
# Settings added after results were committed: left out of the run id at their default, so those runs keep their ids.
LATER_DEFAULTS = {"output_layer": "softmax", "fork_passes": 1}
NOT_RESULT_DEFINING = ("output", "progress")
LIMITS = {"hidden": 100_000, "batch_size": 2**31 - 1, "phase1_examples": 10_000_000, "fork_examples": 10_000_000,
          "fork_passes": 10_000}


@dataclass
class LocalizeConfig:
    """Everything that defines a localisation run; validated on construction.

    Attributes:
        task: Registered task giving the images and labels (``mnist``; ``digits`` for quick checks).
        groups: Two groups of two classes each, ``[[1, 7], [6, 8]]``: phase 1
            learns group 1 vs group 2; the forks split each group into its two classes.
        activation: Hidden activation: ``softplus`` (the seed's log(1 + e^x)), ``relu`` or ``sigmoid``.
        hidden: Width of the one hidden layer (the seed: 100).
        batch_size: Examples per SGD step (1: the seed's one example at a time).
        learning_rate: Plain SGD step size (the seed does not give one).
        tally: Which half of phase 1 is tallied for r: ``first``, ``second`` (the seed) or ``all``.
        inputs: ``seed`` maps pixels in [0, 1] to [1/256, 1] (x * 255/256 + 1/256,
            the seed's scaling: no input is ever exactly 0); ``unit`` keeps [0, 1].
        phase1_examples: Phase-1 training examples, equal numbers of each of the
            four classes (the seed: 1200); a multiple of 4.
        fork_examples: Steps of each fork, half from each side; None for as many
            as the examples left after phase 1 allow.
        fork_passes: Passes of each fork over its examples (1: one pass, the seed's "the remainder").
        output_layer: Output layer and loss: ``softmax`` (2 logits, softmax cross-entropy), ``sigmoid`` or
            ``softplus`` (2 outputs with that activation, squared error on the one-hot labels: the
            seed's [1, 0] / [0, 1] labels on a network written by hand).
        seeds: Seeds run one after another in this process (data draw, order, initialisation).
        data_dir: Folder with the task's data (the shared MNIST split, or full MNIST).
        output: Result folder; None for ``data/localize/<run_id>``.
        progress: Show progress bars.

    Raises:
        ValueError: any value is invalid; the message quotes it and lists the choices.
    """

    task: str = "mnist"
    groups: list = field(default_factory=lambda: [[1, 7], [6, 8]])
    activation: str = "softplus"
    hidden: int = 100
    batch_size: int = 1
    learning_rate: float = 0.01
    tally: str = "second"
    inputs: str = "seed"
    phase1_examples: int = 1200
    fork_examples: int | None = None
    fork_passes: int = 1
    output_layer: str = "softmax"
    seeds: list = field(default_factory=lambda: [0])
    data_dir: str | None = None
    output: str | None = None
    progress: bool = True

    def __post_init__(self):
        task = task_facts(self.task)
        if self.data_dir is not None and not task["reads_data_dir"]:
            raise ValueError(f"Task {self.task!r} reads no data folder; remove data_dir. "
                             f"Received: data_dir={self.data_dir!r}")
        num_classes = task["num_classes"]
        self.groups = check_groups(self.groups, num_classes)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("tally", self.tally, TALLY_HALVES)
        check_choice("inputs", self.inputs, INPUT_SCALINGS)
        check_choice("output_layer", self.output_layer, OUTPUT_LAYERS)
        for name in ("hidden", "batch_size", "phase1_examples", "fork_passes"):
            check_positive_int(name, getattr(self, name), LIMITS[name])
        if self.phase1_examples % 4:
            raise ValueError(f"phase1_examples must be a multiple of 4 (equal numbers of the four classes). "
                             f"Received: phase1_examples={self.phase1_examples}")
        if self.fork_examples is not None:
            check_positive_int("fork_examples", self.fork_examples, LIMITS["fork_examples"])
            if self.fork_examples % 2:
                raise ValueError("fork_examples must be even (half from each side). "
                                 f"Received: fork_examples={self.fork_examples}")
        check_number("learning_rate", self.learning_rate, "a finite number > 0", lambda x: math.isfinite(x) and x > 0)
        self.learning_rate = float(self.learning_rate)
        self.seeds = _check_seeds(self.seeds)

    def result_defining(self) -> dict:
        """The settings that define results (all but the output folder, progress bars and later settings at default)."""
        return result_defining(self, NOT_RESULT_DEFINING, LATER_DEFAULTS)

    @property
    def run_id(self) -> str:
        """12 hex digits of the SHA-256 of the result-defining settings as canonical JSON."""
        return digest(self.result_defining())

    @property
    def folder(self) -> Path:
        """The result folder: ``output``, else ``data/localize/<run_id>``."""
        return Path(self.output) if self.output else Path("data") / "localize" / self.run_id

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> LocalizeConfig:
        """Read a TOML file whose keys are this class's fields; ``overrides`` win.

        Raises:
            ValueError: a key is not a field; the message lists the valid keys.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        return cls(**{**known_settings(read_toml(path), valid, str(path)), **overrides})


def check_groups(groups, num_classes: int) -> list[list[int]]:
    """Two disjoint groups of two distinct class ids of the task each, e.g. ``[[1, 7], [6, 8]]``.

    Raises:
        ValueError: wrong shape, empty, an unknown class or a class used twice; quotes the value.
    """
    shaped = isinstance(groups, (list, tuple)) and len(groups) == 2 and all(
        isinstance(g, (list, tuple)) and len(g) == 2 for g in groups)
    if not shaped:
        raise ValueError("groups must be two groups of two classes each, e.g. [[1, 7], [6, 8]] (the forks split each "
                         f"group into its two classes). Received: groups={groups!r}")
    flat = [c for g in groups for c in g]
    unknown = unknown_classes(flat, num_classes)
    if unknown:
        raise ValueError(f"groups name unknown class(es) {unknown}; valid classes: {list(range(num_classes))}. "
                         f"Received: groups={groups!r}")
    if len(set(flat)) != 4:
        raise ValueError(f"groups must not overlap or repeat a class. Received: groups={groups!r}")
    return [list(g) for g in groups]


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple)) or not seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers >= 0. Received: seeds={seeds!r}")
    return list(seeds)
