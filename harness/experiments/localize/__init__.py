"""Where knowledge is stored: seed 002's update-tally experiment, end to end.

Phase 1 trains one MLP on class group 1 vs group 2 (binary output), one
example at a time by default, and tallies every parameter's |update| per
group: a (group 1), b (group 2), relative updating r = a / (a + b). Four
copies then learn 1 vs {6, 8}, 7 vs {6, 8}, {1, 7} vs 6 and {1, 7} vs 8 from
the same weights; c = |theta(1 vs 68) - theta(7 vs 68)|, d = |theta(17 vs 6)
- theta(17 vs 8)|, relative difference s = c / (c + d). The seed's hypothesis:
r and s correlate (it reports R² = 0.28 over weights, 0.17 over biases).

``python -m harness.experiments.localize`` runs it; :func:`run` is the same from Python.
A single run imports no Ray; several seeds run one after another in-process.
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

from harness.experiments.localize.config import LocalizeConfig  # TensorFlow is imported by run() only: refusals stay fast
from harness.pipeline import results

RESULT, TABLE = "result.json", "parameters.csv"


def run(config: LocalizeConfig) -> Path:
    """Run every seed of ``config``; write the CSV, the figures and (last) the JSON; return the folder.

    Raises:
        ValueError: the folder already holds a result, or the data have too few examples.
        tasks.DatasetUnavailable: the task's data cannot be found.
    """
    from harness.experiments.localize.experiment import load_data, run_seed  # TensorFlow: after the cheap checks
    from harness.experiments.localize.report import figures, pixels, seed_stats, tidy

    folder = config.folder
    if (folder / RESULT).exists():
        raise ValueError(f"{folder} already holds a result ({RESULT}); delete it or choose another --output.")
    data = load_data(config)
    folder.mkdir(parents=True, exist_ok=True)
    frames, per_seed = [], []
    for seed in config.seeds:
        start = time.perf_counter()
        seed_run = run_seed(config, data, seed)
        frame = tidy(seed_run, config.tally, seed)
        stats = seed_stats(frame, seed_run)
        title = f"{config.activation}, hidden {config.hidden}, batch {config.batch_size}, {config.tally} half, seed {seed}"
        names = figures(frame, stats, pixels(frame, data.image), folder, seed, title)
        per_seed.append(dict(seed=seed, stats=stats, figures=names, seconds=time.perf_counter() - start, **seed_run.facts))
        frames.append(frame)
    _write_table(frames, folder / TABLE)
    results.write_metadata(folder / RESULT, _metadata(config, data, per_seed))
    return folder


def _write_table(frames: list, path: Path) -> None:
    import pandas as pd

    tmp = path.with_name(path.name + ".tmp")
    pd.concat(frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)


def _metadata(config: LocalizeConfig, data, per_seed: list[dict]) -> dict:
    from harness.experiments.localize.report import SEED_002, summary

    return dict(run_id=config.run_id, settings=config.result_defining(), command=" ".join(sys.argv),
                summary=summary(per_seed), seed_002=SEED_002, seeds=per_seed, data=data.info,
                model=f"{data.x.shape[1]}-{config.hidden}-2, {config.activation} hidden, {_output(config)}, plain SGD, "
                      "He-normal kernels and biases",
                versions=results.package_versions(), git_commit=results.git_commit(),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat())


def _output(config: LocalizeConfig) -> str:
    if config.output_layer == "softmax":
        return "logits out, softmax cross-entropy"
    return f"{config.output_layer} out, squared error on one-hot labels"


__all__ = ["LocalizeConfig", "run"]
