"""SynFlow's synaptic flow: the model on an all-ones input, every variable replaced by its absolute value.

    R = 1^T f(1; |theta|),   dR/dtheta at |theta|

Run in float64 on a clone of the model built once per model (the live model
is never touched); ReLU is kept, any other activation becomes the identity.
Only functional or Sequential models of the layer types in
:data:`FLOW_LAYERS` are supported.

Source: Tanaka, Kunin, Yamins and Ganguli 2020, "Pruning neural networks
without any data by iteratively conserving synaptic flow", NeurIPS.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from measures._cache import COMPILED

FLOW_ACTIVATIONS = tuple(getattr(keras.layers, n) for n in "Activation ReLU LeakyReLU ELU Softmax".split())
FLOW_LAYERS = FLOW_ACTIVATIONS + tuple(getattr(keras.layers, n) for n in (
    "InputLayer Dense Conv1D Conv2D Flatten Reshape Permute Identity BatchNormalization Dropout SpatialDropout1D "
    "SpatialDropout2D Add Concatenate MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D ZeroPadding1D "
    "ZeroPadding2D ZeroPadding3D GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D "
    "GlobalMaxPooling2D").split())


def _is_relu(layer) -> bool:  # ReLU, linear, or no activation at all
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
    plain = not isinstance(layer, FLOW_ACTIVATIONS) or isinstance(layer, keras.layers.Activation)
    return plain and getattr(layer, "activation", None) in (None, keras.activations.relu, keras.activations.linear)


def _skeleton_layer(layer):  # the layer in float64; an activation other than ReLU becomes the identity
    if isinstance(layer, FLOW_ACTIVATIONS) and not _is_relu(layer):
        return keras.layers.Identity(name=layer.name, dtype="float64")
    linear = {} if _is_relu(layer) else {"activation": "linear"}
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float64", **linear})


def check_flow_model(model: keras.Model) -> None:
    """Raise the ValueError of :func:`absolute_flow` for a model it cannot run (checked before training)."""
    _check_flow_model(model)


def _check_flow_model(model: keras.Model) -> None:
    if not getattr(model, "inputs", None) or len(model.inputs) != 1 or None in model.input_shape[1:]:
        raise ValueError(f"synflow needs a functional or Sequential model with one fixed-shape input. Received: {model!r}")
    for layer in model.layers:
        if type(layer) not in FLOW_LAYERS:
            raise ValueError(f"synflow supports layers {sorted(c.__name__ for c in FLOW_LAYERS)}. "
                             f"Received: layer {layer.name!r} of type {type(layer).__name__}")


def _flow_step(model: keras.Model):
    """Compiled ``(R, dR/dtheta)`` of the model's float64 clone at given variable values (built, not cached)."""
    _check_flow_model(model)
    skeleton = keras.models.clone_model(model, clone_function=_skeleton_layer)
    if [v.path for v in skeleton.trainable_variables] != [v.path for v in model.trainable_variables]:
        raise ValueError(f"synflow could not clone {model.name!r} with its variables in the same order.")
    ones = tf.ones((1, *model.input_shape[1:]), tf.float64)

    @tf.function
    def step(trainable, non_trainable):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            flow = tf.reduce_sum(skeleton.stateless_call(trainable, non_trainable, ones, training=False)[0])
        return flow, tape.gradient(flow, trainable, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return step


def _absolute(variables) -> list:  # float variables as float64 absolute values; others (seed states) as they are
    return [np.abs(np.asarray(v.numpy(), np.float64)) if "float" in str(v.dtype) else v.numpy() for v in variables]


def absolute_flow(model: keras.Model) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Return ``R``, ``|theta|`` and ``dR/dtheta`` at ``|theta|`` (float64, per trainable variable), SynFlow's flow.

    ``R = 1^T f(1; |theta|)``: the model on one all-ones input, every float
    variable (trainable or not) replaced by its absolute value, in inference
    mode and float64, evaluated with ``stateless_call`` on a clone built once
    per model (the live model is not touched); ReLU is kept and any other
    activation becomes the identity.

    Raises:
        ValueError: subclassed model, several or variable-shape inputs, or a
            layer type outside :data:`FLOW_LAYERS`.
    """
    step = COMPILED.get(("flow", id(model)), (model,), lambda: _flow_step(model))
    values = _absolute(model.trainable_variables)
    flow, grads = step(values, _absolute(model.non_trainable_variables))
    return float(flow), values, [g.numpy() for g in grads]
