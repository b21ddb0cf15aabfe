"""SynFlow: each weight's share of the synaptic flow through the network's absolute weights, data-free."""

import numpy as np

from measures import Measure, MeasureContext, register_measure
from measures._flow import absolute_flow, check_flow_model


@register_measure("synflow")
class SynFlow(Measure):
    """Synaptic saliency of each parameter for the synaptic flow R, divided by R.

        S_k = |theta_k * dR/dtheta_k| / R,   R = 1^T f(1; |theta|)   (= 1^T (prod_l |W_l|) 1 without biases)

    ``f(1; |theta|)``: the model on an all-ones input with EVERY variable
    replaced by its absolute value (kernels, biases, BatchNorm's gamma, beta,
    moving mean and variance, as the authors' code does), in inference mode,
    in float64, on a clone built once per model (the live model is never
    touched). ReLU is kept; other activations (tanh, softmax, ...) become the
    identity, so without BatchNorm R is the path-product formula of the
    linear skeleton. Pooling acts as in the model; biases add paths starting
    at the bias. Dividing by R changes no ranking and keeps float32 finite;
    each layer's kernel scores then sum to 1 without biases (the paper's
    conservation law).

    Data-free (``ctx.x``, ``ctx.y`` unread). Single-shot at each epoch: the
    paper's iterative prune-and-rescore schedule, which avoids layer collapse,
    is not run. Returns one float32 array per parameter, >= 0. Cost: one
    forward and backward pass on one input.

    Raises:
        ValueError: subclassed model, several or variable-shape inputs, or a
            layer type outside ``measures._flow.FLOW_LAYERS`` (named).

    Source: Tanaka, Kunin, Yamins and Ganguli 2020, "Pruning neural networks
    without any data by iteratively conserving synaptic flow", NeurIPS.
    """

    def unsupported(self, model) -> str:
        """Why the flow cannot be computed on ``model`` (e.g. a transformer's attention and LayerNorm), or ``""``."""
        try:
            check_flow_model(model)
        except ValueError as error:
            return str(error)
        return ""

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``|theta * dR/dtheta| / R`` for each parameter."""
        flow, values, grads = absolute_flow(ctx.model)
        saliency = {id(v): np.abs(t * g) / (flow or 1.0)
                    for v, t, g in zip(ctx.model.trainable_variables, values, grads, strict=True)}
        return [saliency[id(p.variable)].astype(np.float32) for p in ctx.params]
