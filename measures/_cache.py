"""A small bounded cache of objects built from live models: compiled steps, Keras sub-models, item numberings.

A key is made of ``id()`` values and plain values. Ids are unique only while
their objects live, so each entry also HOLDS the objects whose ids it uses
(``keep``): while an entry exists no id in its key can be reused by a new
object. The least recently used entry is dropped beyond ``size`` entries, so
at most ``size`` models are kept alive by a cache.

Each user documents, where it builds its key, what every component is and why
nothing else changes what is built (``tests/test_caches.py`` checks that a
change of any component misses the cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from measures._base import MeasureContext


class Recent:
    """The ``size`` most recently used values, each built once per key.

    Attributes:
        size: Most entries kept.
        builds: How many values were built (misses), for tests.
    """

    def __init__(self, size: int):
        self.size, self.builds = size, 0
        self._entries: OrderedDict[Hashable, tuple] = OrderedDict()

    def get(self, key: Hashable, keep: tuple, build: Callable[[], object]) -> object:
        """Return the value under ``key``, building it with ``build()`` (holding ``keep``) on a miss."""
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self.builds += 1
            self._entries[key] = (keep, build())
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return self._entries[key][1]

    def clear(self) -> None:
        """Drop every entry (a benchmark's cold start)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


COMPILED = Recent(20)
"""The measures' compiled steps and Keras sub-models (20: the three caches it replaced held 8 + 8 + 4).

Keys, by first component:

- ``"taps"``, ``"pfor"`` (per-example gradients), ``"gradient"``, ``"hvp"``
  (of the mean loss): ``(kind, id(model), ids of the Params, id(loss),
  *extra)``, ``extra`` = ``(terms_fn, transform)`` for per-example steps (see
  :func:`compiled_step`).
- ``"tap_model"``: ``(kind, id(model), ids of the tapped layers)``, the model
  mapping the input to those layers' inputs and outputs.
- ``"inputs"``: ``(kind, name, id(model), ids of the layers)``, the pass that
  reduces layer inputs chunk by chunk; ``name`` names the caller's reducers.
- ``"flow"``: ``(kind, id(model))``, SynFlow's float64 clone and its step.

Complete because a step closes over exactly these objects, and reads
everything else as arguments at call time: variable values (never copied
into the graph), the chunk of examples, targets and probes. An argument of
another shape or dtype makes ``tf.function`` trace anew (its own cache), so
it needs no place in the key.
"""


def compiled_step(ctx: MeasureContext, kind: str, build: Callable, params: tuple, *extra) -> Callable:
    """The step ``build(model, list(params), loss, *extra)`` on ``ctx``'s model and loss, built once per key.

    Args:
        ctx: Gives the model and the loss.
        kind: Names ``build`` (``"taps"``, ``"pfor"``, ``"gradient"``, ``"hvp"``).
        build: Returns the compiled step.
        params: The Params the step differentiates.
        *extra: Further arguments of ``build``, hashable (module-level functions).
    """
    keep = (ctx.model, params, ctx.loss)
    key = (kind, id(ctx.model), tuple(map(id, params)), id(ctx.loss), *extra)
    return COMPILED.get(key, keep, lambda: build(ctx.model, list(params), ctx.loss, *extra))
