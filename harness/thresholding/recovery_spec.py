"""Recovery specs (``none``, ``bn:batches=B``, ``finetune:steps=k``) parsed into :class:`Recovery`, without TensorFlow.

The recoveries themselves are in :mod:`harness.thresholding.recovery`; this module only
reads their specs, so that :mod:`harness.cli.inputs` can refuse a bad one before
TensorFlow is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.common.validation import check_choice

RECOVERIES = ("none", "bn", "finetune")
OPTIONS = {"none": {}, "bn": {"batches": 20}, "finetune": {"steps": None}}  # None: required


@dataclass(frozen=True)
class Recovery:
    """A parsed recovery spec: its kind and options (``batches`` for bn, ``steps`` for finetune)."""

    kind: str
    options: dict

    @property
    def spec(self) -> str:
        """The canonical text (``none``, ``bn``, ``bn:batches=8``, ``finetune:steps=50``): the CSV's value."""
        shown = {k: v for k, v in self.options.items() if OPTIONS[self.kind][k] is None or v != OPTIONS[self.kind][k]}
        return self.kind + (":" + ",".join(f"{k}={v}" for k, v in shown.items()) if shown else "")


def parse_recovery(spec) -> Recovery:
    """Parse ``none``, ``bn``, ``bn:batches=B`` or ``finetune:steps=k`` (B, k positive integers).

    Raises:
        ValueError: not a string, an unknown kind or option, a missing
            ``steps``, or a value that is not a positive integer; the message
            quotes the spec and lists the choices.
    """
    if not isinstance(spec, str):
        raise ValueError(f"recoveries must be a list of strings. Received: recovery={spec!r}")
    kind, _, rest = spec.strip().partition(":")
    check_choice("recovery", kind, RECOVERIES)
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = (s.strip() for s in item.partition("="))
        if key not in OPTIONS[kind] or not sep or key in options:
            raise ValueError(f"Bad option {item!r} of recovery {kind!r}; options: {list(OPTIONS[kind])}, written "
                             f"{kind}:key=value, each once. Received: recovery={spec!r}")
        if not value.isdigit() or int(value) == 0:
            raise ValueError(f"{key} must be a positive integer. Received: recovery={spec!r}")
        options[key] = int(value)
    missing = [k for k, v in OPTIONS[kind].items() if v is None and k not in options]
    if missing:
        raise ValueError(f"recovery {kind!r} needs {missing[0]}=k, a positive integer (e.g. {kind}:{missing[0]}=50). "
                         f"Received: recovery={spec!r}")
    return Recovery(kind, {**{k: v for k, v in OPTIONS[kind].items() if v is not None}, **options})
