"""The layer structure sweeps rely on: Dense and convolution layers, what follows them, and cost counts.

Structured removal (the "Removing activations" posts, seed 000's series):
when every kernel weight into a unit (a Dense output neuron, a convolution
filter) is replaced by zero, the unit outputs the constant ``act(b_j)`` at
every position. Its kernel column can then be dropped, the next layer's
matching kernel rows too, and their contribution ``act(b_j) * W_next[j, :]``
(summed over the next layer's taps, or over the flattened positions) folded
into the next layer's bias: the smaller model computes what the masked one
does. This is exact only when every path from the unit to the next Dense or
convolution layer keeps a constant constant and channels separate (pooling,
flattening, dropout, element-wise activations), and the next layer sees no
padding (``valid``, or ``same`` that pads nothing). Otherwise, and for the
model's last layer, removed units stay in place as zero columns (masking).

Models that are not one chain (residual additions, attention, several
branches) have no shrunk forward pass: the ``shrunk`` sweep method falls back
to masking there, and :attr:`Structure.notes` says so for every Dense and
convolution layer, naming the first layer that breaks the chain. Channels
joined by an ``Add`` are coupled (a residual block's output channel ``c`` is
the sum of its branch's channel ``c`` and its shortcut's), so removing one
needs its whole group removed, as Torch-Pruning's dependency graph does; that
grouping is not implemented, so masking is what such models get, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np

from measures._base import CONV_LAYERS, CONV_TRANSPOSE

NOT_ELEMENTWISE = ("softmax", "log_softmax")
VALUE_PRESERVING = (
    keras.layers.Flatten, keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
    keras.layers.AlphaDropout, keras.layers.ActivityRegularization,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
)
ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)
RUNNABLE = (keras.layers.BatchNormalization,)  # channel-wise layers a chain may hold; they stop folding


def is_dense_or_conv(layer) -> bool:
    """Whether ``layer`` is a Dense or (non-transposed) convolution layer."""
    return isinstance(layer, keras.layers.Dense) or (
        isinstance(layer, CONV_LAYERS) and not isinstance(layer, CONV_TRANSPOSE))


def activation_name(layer) -> str:
    """Name of a layer's activation (``linear`` when it has none)."""
    fn = getattr(layer, "activation", None)
    return "linear" if fn is None else getattr(fn, "__name__", str(fn))


def elementwise(layer) -> bool:
    """Whether ``layer`` acts on each value separately (so a constant channel stays one channel's constant)."""
    if isinstance(layer, keras.layers.Activation):
        return activation_name(layer) not in NOT_ELEMENTWISE
    return isinstance(layer, ELEMENTWISE)


@dataclass
class Link:
    """A Dense or convolution layer and where its units go.

    Attributes:
        layer: The layer.
        positions: Output positions per example (1 for a Dense layer on
            vectors, ``prod(output spatial shape)`` for a convolution); None
            when the model gives no output shape.
        consumer: Index (in :attr:`Structure.links`) of the next Dense or
            convolution layer when removed units fold into it exactly, else None.
        between: Element-wise layers between this layer and its consumer.
        reason: Why the units do not fold, or ``""``.
    """

    layer: keras.layers.Layer
    positions: int | None
    consumer: int | None = None
    between: list = field(default_factory=list)
    reason: str = ""

    @property
    def kernel(self):
        """The kernel variable, shape ``(*taps, in, out)``."""
        return self.layer.kernel

    @property
    def bias(self):
        """The bias variable ``(out,)``, or None."""
        return self.layer.bias if self.layer.use_bias else None

    @property
    def units(self) -> int:
        """Number of output units (neurons or filters)."""
        return int(self.layer.kernel.shape[-1])


def chain_layers(model) -> list | None:
    """The model's layers when they form one chain (each feeds only the next), else None."""
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
        return None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            return None
        previous = layer.output
    return layers if previous is outputs[0] else None


def chain_break(model) -> str:
    """The first reason ``model`` is not one supported chain, in a few words (for notes)."""
    if not getattr(model, "inputs", None) or len(model.inputs) != 1 or len(getattr(model, "outputs", None) or []) != 1:
        return f"model {model.name!r} is not a functional model with one input and one output"
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:  # merges first: they name the coupling (a residual Add sums channel c of both branches)
        inputs = [t for node in layer._inbound_nodes for t in node.input_tensors]
        if len(inputs) > 1:
            coupled = ", so the channels it adds are coupled" if isinstance(layer, keras.layers.Add) else ""
            return f"{type(layer).__name__} {layer.name!r} joins {len(inputs)} tensors{coupled}"
    for layer in layers:
        if len(layer._outbound_nodes) > 1:
            return f"{layer.name!r} feeds {len(layer._outbound_nodes)} layers"
        if not runnable(layer):
            return f"{type(layer).__name__} {layer.name!r} is not supported by the shrunk forward pass"
    return "its layers do not follow each other in order"


def runnable(layer) -> bool:
    """Whether the chain forward pass supports ``layer``."""
    if is_dense_or_conv(layer):
        return getattr(layer, "data_format", "channels_last") == "channels_last" and getattr(layer, "groups", 1) == 1 \
            and getattr(layer, "padding", "valid") in ("valid", "same")
    if isinstance(layer, VALUE_PRESERVING) or isinstance(layer, RUNNABLE):
        return getattr(layer, "data_format", "channels_last") == "channels_last"
    return elementwise(layer)


def pads_nothing(layer) -> bool:
    """Whether a convolution pads no input (``valid``, or ``same`` whose padding is empty)."""
    if isinstance(layer, keras.layers.Dense) or layer.padding == "valid":
        return True
    sizes = layer.input.shape[1:-1]
    for n, k, s, d in zip(sizes, layer.kernel_size, layer.strides, layer.dilation_rate):
        if n is None or max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0) > 0:
            return False
    return True


def output_positions(layer) -> int | None:
    """Output positions per example of a Dense or convolution layer, or None when unknown."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return int(np.prod(shape[1:-1])) if all(s is not None for s in shape[1:-1]) else None


class Structure:
    """The Dense and convolution layers of a model, how their units fold, and the parameter count.

    Args:
        model: A built Keras model.

    Attributes:
        chain: The layers in order when the model is one supported chain
            (then shrunk and batched forward passes exist), else None.
        links: Every Dense and convolution layer, in order.
        n_params: ``model.count_params()``.
        notes: One line per layer whose removed units cannot fold, saying why.
    """

    def __init__(self, model):
        self.model = model
        self.n_params = int(model.count_params())
        layers = chain_layers(model)
        self.chain = layers if layers is not None and all(runnable(layer) for layer in layers) else None
        leaves = self.chain if self.chain is not None else _leaf_layers(model)
        self.links = [Link(layer, output_positions(layer)) for layer in leaves if is_dense_or_conv(layer)]
        if self.chain is not None:
            self._find_consumers()
        else:
            cause = chain_break(model)
            for link in self.links:
                link.reason = f"the model is not one chain of supported layers ({cause})"
        self.notes = [f"{link.layer.name}: {link.reason}" for link in self.links if link.reason]

    def _find_consumers(self) -> None:
        index = {id(link.layer): i for i, link in enumerate(self.links)}
        for link in self.links:
            link.reason = "its outputs are the model's outputs"
            if activation_name(link.layer) in NOT_ELEMENTWISE:
                link.reason = f"its activation {activation_name(link.layer)!r} mixes units"
                continue
            for layer in self.chain[self.chain.index(link.layer) + 1:]:
                if is_dense_or_conv(layer):
                    fits = pads_nothing(layer)
                    link.consumer = index[id(layer)] if fits else None
                    link.reason = "" if fits else f"the next layer {layer.name} pads its input"
                    break
                if elementwise(layer):
                    link.between.append(layer)
                elif not isinstance(layer, VALUE_PRESERVING):
                    link.reason = f"{type(layer).__name__} {layer.name} lies between it and the next layer"
                    break

    def link_of(self, variable) -> tuple[int, str] | None:
        """``(link index, "kernel" or "bias")`` of a variable, or None."""
        for i, link in enumerate(self.links):
            if link.kernel is variable:
                return i, "kernel"
            if link.bias is variable:
                return i, "bias"
        return None

    def row_units(self, i: int) -> np.ndarray:
        """For link ``i``'s consumer, the unit of link ``i`` feeding each kernel row (input channel).

        Flattening a ``(..., C)`` tensor puts channel ``r % C`` at row ``r``.
        """
        consumer = self.links[self.links[i].consumer]
        return np.arange(int(consumer.kernel.shape[-2])) % self.links[i].units


def _leaf_layers(model) -> list:
    children = getattr(model, "layers", None)
    if not children:
        return [model]
    return [leaf for child in children for leaf in _leaf_layers(child)]


def unit_steps(structure: Structure, zero_steps: dict, never: int) -> dict[int, np.ndarray]:
    """Per link whose units fold, the first threshold step at which each unit is removed.

    A unit is removed once every weight of its kernel slice is replaced by zero.

    Args:
        structure: The model's structure.
        zero_steps: ``{id(variable): steps}``, per element the first step at
            which it holds a zero replacement (``never`` if it never does).
        never: The step that stands for "never" (the number of thresholds).

    Returns:
        ``{link index: steps}``, each of shape ``(units,)``.
    """
    out = {}
    for i, link in enumerate(structure.links):
        if link.consumer is not None:
            steps = zero_steps.get(id(link.kernel))
            out[i] = steps.reshape(-1, link.units).max(0) if steps is not None else np.full(link.units, never)
    return out


def removal_counts(structure: Structure, zero_steps: dict, never: int) -> tuple[np.ndarray, np.ndarray]:
    """Parameters left and FLOPs of one forward pass after structured removal, at every threshold step.

    Removed are: weights replaced by zero; the bias of a removed unit and its
    consumer's kernel rows (both folded into the consumer's bias). FLOPs:
    ``2 * sum over Dense and convolution layers of positions * remaining
    kernel weights`` per example (multiply-adds of the kernels; biases,
    activations and pooling are not counted); NaN when an output shape is unknown.

    Args:
        structure: The model's structure.
        zero_steps: As in :func:`unit_steps`.
        never: Number of thresholds K.

    Returns:
        ``(params_remaining, flops)``, each of shape ``(K,)``.
    """
    dead = dict(zero_steps)
    for i, steps in unit_steps(structure, zero_steps, never).items():
        link, consumer = structure.links[i], structure.links[structure.links[i].consumer]
        rows = steps[structure.row_units(i)][:, None]
        dead[id(consumer.kernel)] = np.minimum(_steps_of(dead, consumer.kernel, never), rows)
        if link.bias is not None:
            dead[id(link.bias)] = np.minimum(_steps_of(dead, link.bias, never), steps)
    removed = {key: np.cumsum(np.bincount(np.ravel(d), minlength=never + 1))[:never] for key, d in dead.items()}
    params = structure.n_params - sum(removed.values(), np.zeros(never))
    if any(link.positions is None for link in structure.links):
        return params, np.full(never, np.nan)
    flops = sum((2 * link.positions * (int(np.prod(link.kernel.shape)) - removed.get(id(link.kernel), 0))
                 for link in structure.links), np.zeros(never))
    return params, flops


def _steps_of(steps: dict, variable, never: int) -> np.ndarray:
    """``steps[id(variable)]``, or "never" for every element of a variable not listed."""
    found = steps.get(id(variable))
    return found if found is not None else np.full(tuple(variable.shape), never, np.int64)
