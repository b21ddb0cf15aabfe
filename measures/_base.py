"""The measure contract: prunable parameters, the context a measure reads, the base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from harness.common.constants import PRUNABLE_CHOICES
from harness.common.options import Option, check_options, signed

CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
CONV_TRANSPOSE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


@dataclass(frozen=True, eq=False)
class Param:
    """One prunable variable and the layer that owns it.

    Attributes:
        variable: The Keras variable.
        layer: The leaf layer owning the variable.
        layer_index: Position of ``layer`` among layers with prunable variables;
            the group used by layer-wise scope and by unit aggregation.
        role: ``"kernel"``, ``"bias"`` or ``"other"``.
        kind: ``"dense"``, ``"conv"``, ``"einsum"`` (an ``EinsumDense`` layer,
            e.g. a query, key, value or output projection of a
            ``MultiHeadAttention``) or ``"other"`` (the layer's type).
        owner: The ``MultiHeadAttention`` whose projection ``layer`` is, else None.
    """

    variable: keras.Variable
    layer: keras.layers.Layer
    layer_index: int
    role: str
    kind: str
    owner: keras.layers.Layer | None = None

    @property
    def name(self) -> str:
        """``layer/variable`` name, unique within a model (the variable's path for ``einsum`` layers, whose names repeat)."""
        return self.variable.path if self.kind == "einsum" else f"{self.layer.name}/{self.variable.name}"

    @property
    def shape(self) -> tuple[int, ...]:
        """The variable's shape."""
        return tuple(self.variable.shape)


def _leaf_layers(layer: keras.layers.Layer) -> list[tuple[keras.layers.Layer, keras.layers.Layer | None]]:
    """(leaf layer, the MultiHeadAttention it projects for or None), in model order."""
    if isinstance(layer, keras.layers.MultiHeadAttention):  # its four projections, in the order they are applied
        return [(dense, layer) for dense in (layer._query_dense, layer._key_dense, layer._value_dense,
                                             layer._output_dense)]
    children = getattr(layer, "layers", None)
    if not children:
        return [(layer, None)]
    return [leaf for child in children for leaf in _leaf_layers(child)]


def _kind(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if isinstance(layer, CONV_LAYERS) and not isinstance(layer, CONV_TRANSPOSE):
        return "conv"
    if isinstance(layer, keras.layers.EinsumDense):
        return "einsum"
    return "other"


def _role(layer: keras.layers.Layer, variable: keras.Variable) -> str:
    for role in ("kernel", "bias"):
        if getattr(layer, role, None) is variable:
            return role
    return "other"


def _wanted(kind: str, role: str, prunable: str) -> bool:
    if prunable == "all":
        return True
    if kind == "other":
        return False
    return role == "kernel" or (role == "bias" and prunable == "kernels+biases")


def prunable_params(model: keras.Model, prunable: str = "kernels") -> list[Param]:
    """Select the prunable variables of a built model.

    Args:
        model: A built Keras model.
        prunable: ``"kernels"`` (Dense, Conv and EinsumDense kernels, the
            default; a ``MultiHeadAttention`` layer contributes the kernels of
            its query, key, value and output projections, of shapes
            ``(d, heads, d_head)`` and ``(heads, d_head, d)``),
            ``"kernels+biases"`` (and their biases), ``"all"`` (every
            trainable variable, as in the original study, seed 003) or
            ``"hidden-kernels"`` (the kernels but the output layer's, the last
            with a kernel: removing a class's output unit, a trivial way to
            forget it, is then impossible; seed 001 kept its outer layers whole).

    Returns:
        The selected parameters in layer order.

    Raises:
        ValueError: ``prunable`` is not a valid choice, or nothing is selected.
    """
    if prunable not in PRUNABLE_CHOICES:
        raise ValueError(f"prunable must be one of {list(PRUNABLE_CHOICES)}. Received: prunable={prunable!r}")
    params: list[Param] = []
    layers = _leaf_layers(model)
    if prunable == "hidden-kernels":
        output = [layer for layer, _ in layers if _kind(layer) != "other"][-1:]
        layers, prunable = [(layer, owner) for layer, owner in layers if layer not in output], "kernels"
    for layer, owner in layers:
        kind = _kind(layer)
        chosen = [v for v in layer.trainable_weights if _wanted(kind, _role(layer, v), prunable)]
        index = len({p.layer_index for p in params})
        params += [Param(v, layer, index, _role(layer, v), kind, owner) for v in chosen]
    if not params:
        raise ValueError(f"Model {model.name!r} has no prunable variables for prunable={prunable!r}.")
    return params


@dataclass
class MeasureContext:
    """What a measure reads when it scores a model.

    Attributes:
        model: The live model; a measure must leave its weights untouched.
        params: The prunable parameters to score.
        x: Importance sample inputs, shape ``(N, *input_shape)``.
        y: Importance sample targets, shape ``(N,)`` (class ids) or ``(N, C)``.
        loss: The task's Keras loss object.
        seed: Seed for any randomness inside the measure.
        batch_size: Examples per vectorised chunk.
    """

    model: keras.Model
    params: list[Param]
    x: np.ndarray
    y: np.ndarray
    loss: keras.losses.Loss
    seed: int = 0
    batch_size: int = 256

    @property
    def variables(self) -> list[keras.Variable]:
        """The prunable variables, in the order of ``params``."""
        return [p.variable for p in self.params]


@dataclass(frozen=True, eq=False)
class StepBatch:
    """The examples of one training step, given to measures whose ``needs_batch`` is true.

    Attributes:
        x: The step's inputs, shape ``(B, *input_shape)``.
        y: The step's targets, shape ``(B,)`` (class ids) or ``(B, C)``.
        tape: The persistent ``tf.GradientTape`` of the step's forward pass.
        per_example: Per-example training losses ``l_n``, shape ``(B,)``
            (a loss over more axes is averaged over them first).
        variables: The prunable variables, in parameter order.
    """

    x: Any
    y: Any
    tape: tf.GradientTape
    per_example: Any
    variables: list

    def gradients(self, weights) -> list:
        """Gradients of weighted parts of the batch loss, at the values before the step.

            G_k = d/dtheta [ (1/B) * sum_n weights[n, k] * l_n ]

        With 0/1 weights marking a group of examples, ``G_k`` is that group's
        share of the batch-mean gradient: the shares of disjoint groups
        covering the batch sum to the gradient of the (unregularised) loss.

        Args:
            weights: float32 tensor ``(B, K)``; ``K`` must be static.

        Returns:
            One tensor ``(K, *param.shape)`` per prunable parameter (zeros
            where a parameter does not affect the loss).
        """
        scaled = weights / tf.cast(tf.size(self.per_example), tf.float32)
        grads = [self.tape.gradient(self.per_example, self.variables, output_gradients=scaled[:, k])
                 for k in range(weights.shape[-1])]
        zero = [tf.zeros(v.shape, tf.float32) for v in self.variables]
        return [tf.stack([zero[i] if g[i] is None else tf.cast(g[i], tf.float32) for g in grads])
                for i in range(len(self.variables))]


class Measure:
    """Base class of an importance measure; register subclasses with ``@register_measure``.

    A measure returns one finite float array per prunable parameter, shaped
    like it, where higher means more important.

    Training-time measures set ``training_time = True``: the harness calls
    :meth:`build` once before the first training step and :meth:`observe`
    inside every compiled training step, then :meth:`score` after each epoch.
    A training-time measure that also sets ``needs_batch = True`` (a class
    or instance attribute) gets the step's :class:`StepBatch` as the keyword
    argument ``batch`` of :meth:`observe`; all others are called with
    ``(grads, before, after)`` only.

    Options are declared as data, a literal dict of
    :class:`harness.common.options.Option` in the class attribute ``options``
    (``--list`` reads it from the file without importing it). The base
    ``__init__`` checks the given options against it and sets each as an
    attribute of the same name (defaults for those not given); a subclass
    that needs more calls ``super().__init__(**options)`` first.

    Attributes:
        options: Option name -> :class:`~harness.common.options.Option`; empty: no options.
        training_time: Whether the measure observes training steps.
        signed: Whether scores may be negative (normalization ``lamp`` and contrast ``ratio`` refuse them).
        signed_when: Option name -> the values that make scores signed (``{"hessian": ("exact",)}``).
    """

    name: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    training_time: ClassVar[bool] = False
    signed: ClassVar[bool] = False
    signed_when: ClassVar[dict[str, tuple]] = {}
    needs_batch: bool = False

    def __init__(self, **options):
        values = check_options("measure", getattr(self, "name", type(self).__name__), type(self).options, options)
        for key, value in values.items():
            setattr(self, key, value)
        if type(self).signed_when:
            self.signed = signed(type(self).signed, type(self).signed_when, values)

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return one importance array per parameter in ``ctx.params``."""
        raise NotImplementedError

    def unsupported(self, model: keras.Model) -> str:
        """Why this measure cannot score ``model``, in one sentence; ``""`` when it can (the default).

        The harness asks before training and refuses the run with the reason.
        """
        return ""

    def build(self, params: list[Param]) -> None:
        """Create training-time accumulators (``tf.Variable``) for ``params``."""

    def observe(self, grads: list, before: list, after: list) -> None:
        """Accumulate one training step; runs inside ``tf.function``.

        Args:
            grads: Gradient of the training loss per parameter, at ``before``.
            before: Parameter values before the optimizer step (tensors).
            after: Parameter values after the optimizer step (tensors).
        """

    def state(self) -> list:
        """The ``tf.Variable`` accumulators, for checkpoints."""
        return []
