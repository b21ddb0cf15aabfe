"""Selective forgetting (seed 001): how specific each parameter is to a forget set A of classes.

A forgetting run scores every measure twice per epoch: ``I_A`` from training
examples of the classes in A, ``I_R`` from training examples of the other
classes R (``importance_samples`` of each). The score the sweep ranks is a
contrast of the two, and the sweep replaces the most A-specific fraction t
first (``order = "most"``), so the model should lose A before it loses R.

Measures that read no data (magnitude, random, synflow, the training-time
measures) give ``I_A = I_R`` exactly; any contrast of equal scores is
constant and carries no class information. Such a measure is **class-blind**
and is ranked by its own scores instead, most important first: magnitude
then removes the largest weights first (a non-selective reference), random
removes in random order (the control), and a grouped training-time tally
(``update_tally:groups=[[7],[...]],target=0``), whose own score is already
the forget group's share of the updates, is used as that share.
"""

from __future__ import annotations

import numpy as np

from harness.common.constants import CONTRASTS

EPS = 1e-3  # relative to the mean importance on R of the parameter: see ratio()


def ratio(i_a: np.ndarray, i_r: np.ndarray) -> np.ndarray:
    """Importance on A over importance on R, per element of one parameter.

        C = (I_A + eps) / (I_R + eps),    eps = EPS * mean(I_R)   (EPS = 1e-3)

    The mean is over the parameter's elements (where it is 0: EPS * mean(I_A),
    then 1). eps is relative to the scale of I_R, so the contrast does not
    depend on the measure's units: an element whose importance on R is below
    0.1% of the parameter's average counts as unused by R, and its ratio is
    bounded by I_A / eps instead of dividing by (nearly) zero. It is added
    to both sides so that equal importances give exactly 1 (an element used
    by neither set is neutral, not "unspecific"); for I_A, I_R >> eps this is
    the plain ``I_A / (I_R + eps)``. Needs non-negative scores.

    Args:
        i_a: Importance on A, >= 0.
        i_r: Importance on R, same shape, >= 0.

    Returns:
        float64 array of that shape, > 0.
    """
    i_a, i_r = np.asarray(i_a, np.float64), np.asarray(i_r, np.float64)
    eps = EPS * next((m for m in (i_r.mean() if i_r.size else 0.0, i_a.mean() if i_a.size else 0.0) if m > 0), 1.0)
    return (i_a + eps) / (i_r + eps)


def difference(i_a: np.ndarray, i_r: np.ndarray) -> np.ndarray:
    """Normalised difference of importance on A and on R, per element of one parameter.

        C = I_A / mean|I_A| - I_R / mean|I_R|

    Each importance is divided by its mean absolute value over the
    parameter's elements (a term whose mean is 0 is 0), so the two sets
    weigh equally whatever their overall scale (a class with a higher loss
    has larger gradients everywhere). Works for signed scores.

    Returns:
        float64 array of the parameter's shape.
    """
    return _normalised(i_a) - _normalised(i_r)


def _normalised(scores) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    scale = np.abs(scores).mean() if scores.size else 0.0
    return scores / scale if scale > 0 else np.zeros_like(scores)


def contrast(i_a: list[np.ndarray], i_r: list[np.ndarray], how: str) -> list[np.ndarray]:
    """``ratio`` or ``difference`` per parameter; the arrays of A and R are paired by position.

    Raises:
        ValueError: unknown ``how`` (the choices are listed).
    """
    if how not in CONTRASTS:
        raise ValueError(f"Unknown contrast {how!r}; available: {list(CONTRASTS)}")
    function = ratio if how == "ratio" else difference
    return [function(a, r) for a, r in zip(i_a, i_r, strict=True)]


def class_blind(i_a: list[np.ndarray], i_r: list[np.ndarray]) -> bool:
    """Whether the scores on A and on R are identical, element for element (a measure that reads no data)."""
    return all(np.array_equal(a, r) for a, r in zip(i_a, i_r, strict=True))


def specificity(i_a: list[np.ndarray], i_r: list[np.ndarray], how: str) -> tuple[list[np.ndarray], bool]:
    """The scores a forgetting sweep ranks, and whether the measure was class-blind.

    The contrast of ``i_a`` and ``i_r`` (:func:`contrast`); for a class-blind
    measure (:func:`class_blind`) its own scores ``i_a`` (see the module docstring).
    """
    if class_blind(i_a, i_r):
        return [np.asarray(a) for a in i_a], True
    return contrast(i_a, i_r, how), False


def split_classes(y: np.ndarray, forget: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the examples in the forget set and of the rest; ``y`` holds class ids ``(n,)`` or rows ``(n, C)``."""
    labels = np.asarray(y)
    labels = labels.argmax(-1) if labels.ndim == 2 and labels.shape[-1] > 1 else labels.reshape(-1)
    in_a = np.isin(labels, forget)
    return in_a, ~in_a
