"""Probability outputs: detect a final softmax or sigmoid and read the model's logits instead.

Every task's loss is a cross-entropy; the harness computes it from logits,
so that training, every measure (per-example gradients included) and the
sweep differentiate one well-conditioned function. A model whose last layer
applies a softmax or a sigmoid (an ``activation=`` of its last layer, or a
final ``Softmax`` / ``Activation`` layer) is turned into its logits model by
:func:`logits_model`, sharing every variable, and the loss into its
``from_logits=True`` twin. The run says so once (a note in its log and
metadata).

For a softmax the change is exact: cross-entropy on the probabilities
``softmax(z)`` equals cross-entropy from the logits ``z``, and the predicted
class is the same. For a sigmoid the pre-activations ``z`` are read as the
logits of the task's softmax cross-entropy: the predicted class is the same
(sigmoid is increasing), the loss is the task's on ``z``, not a binary
cross-entropy on ``sigmoid(z)``.
"""

from __future__ import annotations

import keras

PROBABILITY_ACTIVATIONS = {"softmax": keras.activations.softmax, "sigmoid": keras.activations.sigmoid}


def _last_layer(model: keras.Model) -> tuple[keras.layers.Layer, int] | None:
    """The layer that computes the model's (single) output and the index of that call; None if unknown."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1 or not hasattr(outputs[0], "_keras_history"):
        return None
    history = outputs[0]._keras_history
    return history.operation, history.node_index


def _activation_name(layer: keras.layers.Layer) -> str | None:
    """``"softmax"`` or ``"sigmoid"`` when ``layer`` applies one last; else None."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return next((name for name, f in PROBABILITY_ACTIVATIONS.items() if activation is f), None)


def probability_output(model: keras.Model) -> tuple[str, str] | None:
    """Return ``(activation, where)`` when the model ends in a softmax or sigmoid, else None.

    ``where`` says how: ``"the activation of its last layer 'logits'"`` or
    ``"its final Softmax layer 'softmax'"``. Subclassed models and models
    with several outputs are not inspected (None).
    """
    last = _last_layer(model)
    if last is None:
        return None
    layer = last[0]
    name = _activation_name(layer)
    if name is None:
        return None
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        return name, f"its final {type(layer).__name__} layer {layer.name!r}"
    return name, f"the activation of its last layer {layer.name!r}"


def logits_loss(loss: keras.losses.Loss) -> keras.losses.Loss:
    """The same loss reading logits (``from_logits=True``); unchanged if it has no ``from_logits`` option."""
    config = loss.get_config()
    if "from_logits" not in config or config["from_logits"]:
        return loss
    return type(loss).from_config({**config, "from_logits": True})


def logits_model(model: keras.Model, loss: keras.losses.Loss) -> tuple[keras.Model, keras.losses.Loss, str | None]:
    """Return ``(model, loss, note)`` where the model outputs logits and the loss reads them.

    A final ``Softmax`` or ``Activation`` layer is cut off: the model returned
    is the functional sub-model ending at its input, sharing every layer and
    variable. An ``activation="softmax"`` or ``"sigmoid"`` of the last layer
    is set to linear on that layer, in place (the model returned is
    ``model``, which now outputs logits). ``loss`` becomes its
    ``from_logits=True`` twin (:func:`logits_loss`). A model with logits
    already, or a loss without a ``from_logits`` option (a regression loss),
    is returned as given with ``note`` None.

    Args:
        model: A built functional or Sequential model.
        loss: The task's loss.

    Returns:
        The logits model, the loss to use with it, and one sentence saying
        what was changed (None when nothing was).
    """
    found = probability_output(model)
    if found is None or "from_logits" not in loss.get_config():
        return model, loss, None
    layer, node_index = _last_layer(model)
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        inputs = layer._inbound_nodes[node_index].input_tensors
        view = keras.Model(model.inputs, inputs[0], name=model.name)
    else:
        layer.activation, view = keras.activations.linear, model
    new_loss = logits_loss(loss)
    note = (f"model {model.name!r} outputs probabilities ({found[0]}, {found[1]}): training, every measure and the "
            f"sweep read its logits instead (the {found[0]} removed, the same variables) with the loss "
            f"{type(new_loss).__name__}(from_logits=True)")
    return view, new_loss, note
