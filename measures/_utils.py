"""Numeric helpers shared by several measures: chunking a sample, quiet pfor tracing, statistics over kernels.

The rest of the measures' machinery lives by concern: ``_losses.py`` (the
likelihood behind a loss), ``_per_example.py`` and ``_layer_grads.py``
(per-example gradients), ``_hessian.py`` (gradient and Hessian-vector
products of the mean loss), ``_layer_inputs.py`` (layer inputs),
``_flow.py`` (SynFlow's flow) and ``_cache.py`` (compiled steps).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

ZERO = tf.UnconnectedGradients.ZERO


def chunks(arrays: tuple[np.ndarray, ...], size: int) -> Iterator[tuple[tf.Tensor, ...]]:
    """Yield the rows ``[start, start + size)`` of every array together, as tensors, until the rows run out."""
    for start in range(0, len(arrays[0]), size):
        yield tuple(tf.constant(a[start:start + size]) for a in arrays)


@contextlib.contextmanager
def expected_pfor_fallback():
    """Silence pfor's "Conv2DBackpropFilter uses a while_loop" warning while tracing.

    Per-example conv filter gradients run as an in-graph loop by design (still
    no Python loop); the warning would otherwise repeat at every trace.
    """
    quiet = logging.Filter()
    quiet.filter = lambda record: "uses a while_loop" not in record.getMessage()
    tf.get_logger().addFilter(quiet)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(quiet)


def spread_over_kernel(per_feature: np.ndarray, shape: tuple[int, ...], groups: int = 1) -> np.ndarray:
    """Lay a statistic of each unfolded input feature, shape ``(F,)``, over a kernel of ``shape``.

    ``F`` is ordered as :func:`measures._layer_inputs.unfold` orders it (all
    input channels); with ``groups`` > 1, output channel ``o`` reads the
    input channels of its group ``o // (cout / groups)``.
    """
    per_group = np.swapaxes(per_feature.reshape(*shape[:-2], groups, -1), -1, -2)
    return np.repeat(per_group, shape[-1] // groups, axis=-1)

