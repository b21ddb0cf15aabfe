"""The parts of one run, built once its data are loaded: the model, its trainer and evaluator, and the pipeline.

The pipeline: :class:`harness.pipeline.plan.Plan` (what to run, what is done),
:class:`harness.pipeline.scoring.Scorer` (the measures of an epoch),
:class:`harness.pipeline.sweeping.EpochSweeps` (the sweeps after an epoch) and
:class:`harness.pipeline.epochs.EpochLoop` (training, epoch by epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.pipeline import checkpoint
from harness.pipeline.config import RunConfig
from harness.pipeline.epochs import EpochLoop
from harness.pipeline.plan import Plan, aggregations_of, build_grid
from harness.pipeline.recoveries import Recoveries, kept_recoveries
from harness.pipeline.results import RunStore
from harness.pipeline.scoring import Scorer, draw_samples
from harness.pipeline.seed import seed_everything
from harness.pipeline.sweeping import EpochSweeps, Sweeper
from harness.pipeline.train import Trainer
from harness.thresholding.evaluator import Evaluator
from measures import Measure, prunable_params
from tasks._model_file import check_model_shapes, file_sha256, load_model_file
from tasks._outputs import logits_model


@dataclass(frozen=True)
class Bench:
    """What one run trains and evaluates.

    The data, the model (logits out), its loss and prunable parameters, the
    trainer, the evaluator on the validation split, and the checkpointed state.
    """

    data: Any
    model: Any
    loss: Any
    params: list
    trainer: Trainer
    evaluate: Evaluator
    state: Any


def refuse_unsupported(config: RunConfig, task, measures: dict, model=None) -> bool:
    """Refuse a measure that cannot score this model (:meth:`measures.Measure.unsupported`); whether it was asked.

    Without ``model``, a throwaway copy is built for the task's example shape (or loaded from the model file),
    so the refusal comes before any data is loaded; a task whose shape is known only from its data is not asked.

    Raises:
        ValueError: names the measure, the model and the reason.
    """
    asking = {spec: m for spec, m in measures.items() if type(m).unsupported is not Measure.unsupported}
    if not asking:
        return True
    if model is None:
        if config.model_file is None and task.input_shape is None:
            return False
        built = load_model_file(config.model_file) if config.model_file else \
            task.build_model(config.model, task.input_shape)
        model = logits_model(built, task.loss())[0]
    for spec, measure in asking.items():
        reason = measure.unsupported(model)
        if reason:
            raise ValueError(f"measure {spec!r} cannot score model {config.model!r}: {reason}; remove it "
                             f"from measures. Received: measures={config.measures}")
    return True


def build_model(config: RunConfig, task, shape: tuple):
    """The task's model, or the model file's, checked against the data's example shape."""
    if config.model_file is None:
        return task.build_model(config.model, shape)
    model = load_model_file(config.model_file)
    check_model_shapes(model, shape, task.num_classes, config.task, config.model_file)
    if file_sha256(Path(config.model_file).expanduser()) != config.result_defining()["model_file_sha256"]:
        raise ValueError(f"model_file changed since the run was configured. Received: model_file={config.model_file!r}")
    return model


def load_bench(config: RunConfig, task, measures: dict, asked: bool, note: Callable[[str], None]) -> Bench:
    """Load the data, seed, build the model (logits out) and what trains and evaluates it.

    Raises:
        ValueError: the model file changed, or a measure cannot score the model (see :func:`refuse_unsupported`).
    """
    data = task.load(config.data_dir)
    seed_everything(config.seed, config.deterministic)
    model, loss, output_note = logits_model(build_model(config, task, data.x_train.shape[1:]), task.loss())
    if output_note:
        note(output_note)
    if not asked:
        refuse_unsupported(config, task, measures, model)
    params = prunable_params(model, config.prunable)
    optimizer = task.optimizer_for(config.learning_rate)
    trainer = Trainer(model, loss, optimizer, params, [m for m in measures.values() if m.training_time],
                      config.batch_size, config.seed, augment=task.augmenter(config.augmentation),
                      jit_compile=config.xla)
    evaluate = Evaluator(model, loss, data.x_val, data.y_val, classification=task.num_classes is not None,
                         jit_compile=config.xla, classes=task.num_classes if config.per_class else None)
    return Bench(data, model, loss, params, trainer, evaluate, checkpoint.tracked_state(model, optimizer, measures))


def assemble(config: RunConfig, task, measures: dict, store: RunStore, asked: bool, done: set[tuple],
             note: Callable[[str], None]) -> tuple[Bench, Plan, Scorer, EpochSweeps, EpochLoop]:
    """Load and build everything one run needs, in the order of its notes (model, grid, samples, recoveries).

    Args:
        config: The run's parameters.
        task: The run's task.
        measures: The run's measures by spec.
        store: The run's files.
        asked: Whether the measures were asked already if they can score the model (see :func:`refuse_unsupported`).
        done: The sweep keys the CSV holds complete.
        note: Tells the user one line.
    """
    bench = load_bench(config, task, measures, asked, note)
    kinds = aggregations_of(config)
    grid = build_grid(config, kinds, bench.params, note)
    scorer = Scorer(config, measures, bench.model, bench.params, bench.loss, draw_samples(config, bench.data, note),
                    note)
    kept = kept_recoveries(config, bench.model, note)
    plan = Plan(config, grid, kept, done)
    sweeper = Sweeper(config, bench.params, bench.evaluate, Recoveries(kept, config, bench), kinds)
    return bench, plan, scorer, EpochSweeps(config, plan, scorer, sweeper, store), EpochLoop(config, bench, store, note)
