"""Run ids: which parameters define a run's results, their 12-hex-digit hash, and how two runs differ.

TensorFlow-free (standard library only). :class:`harness.pipeline.config.RunConfig`,
:class:`harness.study.driver.Study` and :class:`harness.experiments.localize.LocalizeConfig`
hash the same way, so the run ids of results already written stay what they
were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json


def digest(value) -> str:
    """12 hex digits of the SHA-256 of ``value`` as canonical JSON (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def result_defining(config, excluded, later_defaults: dict | None = None) -> dict:
    """The fields of dataclass ``config`` that define its results.

    Args:
        config: A dataclass instance (a run's or an experiment's settings).
        excluded: Field names that never define results (output paths, progress bars, ...).
        later_defaults: Fields added after results were written, left out at these defaults so that
            those results keep their run ids.
    """
    later = later_defaults or {}
    return {k: v for k, v in dataclasses.asdict(config).items()
            if k not in excluded and (k not in later or later[k] != v)}


def differences(old: dict, new: dict) -> dict:
    """``{name: (old, new)}`` for every parameter that differs."""
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
