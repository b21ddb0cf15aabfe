"""Scoring the measures of an epoch: the importance samples, class subsets, forgetting's specificity, and the checks."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from harness.experiments import forgetting
from harness.pipeline.config import RunConfig
from harness.pipeline.seed import derived_seed
from measures import MeasureContext


def check_scores(spec: str, params, scores) -> list[np.ndarray]:
    """Check a measure's output: one finite array per parameter, shaped like it.

    Raises:
        ValueError: wrong count, shape or non-finite values; names the measure and parameter.
    """
    if len(scores) != len(params):
        raise ValueError(f"Measure {spec!r} returned {len(scores)} arrays for {len(params)} parameters.")
    checked = []
    for p, s in zip(params, scores):
        s = np.asarray(s)
        if s.shape != p.shape or not np.all(np.isfinite(s)):
            raise ValueError(f"Measure {spec!r} gave scores of shape {s.shape} (finite: {np.isfinite(s).all()}) "
                             f"for {p.name} of shape {p.shape}; expected finite scores of the parameter's shape.")
        checked.append(s)
    return checked


def draw_sample(x: np.ndarray, y: np.ndarray, n: int, seed: int, among: np.ndarray | None = None,
                stream: tuple[int, ...] = (7,)) -> tuple[np.ndarray, np.ndarray]:
    """Draw min(n, eligible) training examples without replacement, once per run, in their original order.

    Args:
        x: Training inputs.
        y: Training targets.
        n: Examples wanted.
        seed: The run's seed; the draw uses ``derived_seed(seed, *stream)``.
        among: Boolean mask ``(len(x),)`` of the eligible examples (those of some classes); None: all.
        stream: Distinguishes draws of one run (the forget set's and the rest's).
    """
    pool = np.arange(len(x)) if among is None else np.flatnonzero(among)
    chosen = np.random.default_rng(derived_seed(seed, *stream)).choice(len(pool), min(n, len(pool)), replace=False)
    index = np.sort(pool[chosen])
    return x[index], y[index]


def class_sample(data, n: int, seed: int, among: np.ndarray, label: str,
                 stream: tuple[int, ...] = (7,)) -> tuple[np.ndarray, np.ndarray]:
    """:func:`draw_sample` among the training examples ``among`` marks (those of some classes), all n of them.

    Raises:
        ValueError: fewer than ``n`` such examples; names the value, the count and ``label`` (the classes).
    """
    if among.sum() < n:
        raise ValueError(f"importance_samples={n} exceeds the {int(among.sum())} training examples of {label}; "
                         f"lower importance_samples to at most {int(among.sum())}.")
    return draw_sample(data.x_train, data.y_train, n, seed, among, stream)


def draw_samples(config: RunConfig, data, note: Callable[[str], None]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The importance sample of every class or of ``importance_classes``; a forgetting run's A and R (two samples).

    Raises:
        ValueError: fewer training examples of the chosen classes than ``importance_samples``.
    """
    n, seed = config.importance_samples, config.seed
    if config.forget_classes is not None:
        forget, rest = forgetting.split_classes(data.y_train, config.forget_classes)
        label = f"forget_classes={config.forget_classes}"
        return [class_sample(data, n, seed, forget, label),
                class_sample(data, n, seed, rest, f"the classes other than {label}", (7, 1))]
    if config.importance_classes is not None:
        among = forgetting.split_classes(data.y_train, config.importance_classes)[0]
        return [class_sample(data, n, seed, among, f"importance_classes={config.importance_classes}")]
    sample = draw_sample(data.x_train, data.y_train, n, seed)
    if n > len(sample[0]):
        note(f"importance_samples={n} exceeds the {len(sample[0])} training examples of {config.task}; all "
             f"{len(sample[0])} are used (recorded in the metadata)")
    return [sample]


class Scorer:
    """Scores the measures of a run on its importance sample(s), checked; in a forgetting run, their specificity.

    Args:
        config: The run's parameters.
        measures: The run's measures by spec.
        model: The live model (logits out).
        params: The prunable parameters.
        loss: The training loss.
        samples: :func:`draw_samples`: one ``(x, y)``, or a forgetting run's forget set's and the rest's.
        note: Tells the user one line.
    """

    def __init__(self, config: RunConfig, measures: dict, model, params: list, loss, samples: list[tuple],
                 note: Callable[[str], None]):
        self.config, self.measures, self.model, self.params, self.loss = config, measures, model, params, loss
        self.samples, self.note = samples, note
        self.class_blind: set[str] = set()  # measures noted as scoring the forget set and the rest alike

    @property
    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The importance sample (a forgetting run's forget set's)."""
        return self.samples[0]

    def score(self, spec: str, epoch: int) -> tuple[list[np.ndarray], float]:
        """Scores of one measure at this epoch, and the seconds they took.

        In a forgetting run: the specificity to the forget set (:func:`harness.experiments.forgetting.specificity`)
        of the scores on its sample and on the rest's, each checked.
        """
        start = time.perf_counter()
        scored = [check_scores(spec, self.params, self.measures[spec].score(self._context(sample, epoch)))
                  for sample in self.samples]
        if len(scored) == 1:
            return scored[0], time.perf_counter() - start
        scores, blind = forgetting.specificity(*scored, self.config.contrast)
        if blind and spec not in self.class_blind:
            self.class_blind.add(spec)
            self.note(f"measure {spec!r} scores the forget set and the rest identically (it reads no data): it is "
                      "ranked by its own scores, most important first (harness/experiments/forgetting.py)")
        return check_scores(spec, self.params, scores), time.perf_counter() - start

    def _context(self, sample: tuple, epoch: int) -> MeasureContext:
        return MeasureContext(self.model, self.params, *sample, self.loss, seed=derived_seed(self.config.seed, epoch))

    def facts(self, num_classes: int | None) -> dict:
        """The metadata of the samples: how many were drawn, of which classes; the forgetting set-up."""
        config, drawn = self.config, dict(importance_samples_drawn=len(self.sample[0]))
        if config.forget_classes is None:
            return dict(drawn, importance_classes=config.importance_classes)
        rest = [c for c in range(num_classes) if c not in config.forget_classes]
        eps = f"{forgetting.EPS:g} * mean(I_R) per parameter" if config.contrast == "ratio" else None
        return dict(drawn, forgetting=dict(forget_classes=config.forget_classes, retain_classes=rest,
                                           contrast=config.contrast, eps=eps,
                                           samples_drawn=dict(forget=len(self.samples[0][0]),
                                                              retain=len(self.samples[1][0]))))
