"""The harness: trains, thresholds by importance, and writes the result CSV.

One sub-package per stage of the data flow (task -> model -> train -> measure -> aggregate -> threshold ->
evaluate -> CSV -> analysis):

- :mod:`harness.common`: small TensorFlow-free helpers every stage shares (column names, validation, run ids,
  the plugin registry, a quiet start, progress output);
- :mod:`harness.cli`: the command line, its pre-TensorFlow checks, the plugin catalogue, instant answers;
- :mod:`harness.pipeline`: one run as a pipeline of small parts (config, plan, training, scoring, sweep step,
  checkpoints, the run's files);
- :mod:`harness.thresholding`: one sweep (ranking, masks, evaluators, controls, recovery);
- :mod:`harness.study`: many runs over seeds on Ray;
- :mod:`harness.experiments`: selective forgetting and seed 002's localisation.

The public API is importable from here and loaded on first use, so that ``import harness`` (and
``python -m harness --help``) imports no TensorFlow: ``RunConfig``, ``run``, ``Study``, ``Thresholder``,
``Evaluator``, ``sweep``, ``Trainer``.
"""

from harness.common import quiet  # noqa: F401  (the environment TensorFlow reads, set before anything imports it)
from harness.common.lazy import lazy_attributes

API = {
    "RunConfig": "harness.pipeline.config",
    "run": "harness.pipeline.experiment",
    "Study": "harness.study.driver",
    "Thresholder": "harness.thresholding.threshold",
    "Evaluator": "harness.thresholding.evaluator",
    "sweep": "harness.thresholding.sweep",
    "Trainer": "harness.pipeline.train",
}
__all__ = sorted(API)
__getattr__, __dir__ = lazy_attributes("harness", API, globals())
