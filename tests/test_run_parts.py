"""The parts of one run: recovery specs parsed once without TensorFlow, and the plan's sweep keys, by hand."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.pipeline.config import RunConfig
from harness.pipeline.plan import Plan, sweep_key
from harness.thresholding.recovery_spec import Recovery

ROOT = Path(__file__).resolve().parents[1]


def test_recovery_specs_are_checked_before_tensorflow_is_imported():
    script = ("import sys; from harness.cli.inputs import check_setting\n"
              "try:\n    check_setting('recoveries', ['bn:batches=0'])\nexcept ValueError as e:\n    print('REFUSED', e)\n"
              "print('HEAVY', sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "REFUSED batches must be a positive integer. Received: recovery='bn:batches=0'" in out.stdout
    assert "HEAVY []" in out.stdout


def test_config_holds_the_parsed_recoveries_in_order():
    config = RunConfig(recoveries=["none", "finetune:steps=05", "bn:batches=20"], epochs=3, progress=False)
    assert config.recoveries == ["none", "finetune:steps=5", "bn"]
    assert config.parsed_recoveries == [Recovery("none", {}), Recovery("finetune", {"steps": 5}),
                                        Recovery("bn", {"batches": 20})]
    assert "parsed_recoveries" not in config.result_defining()  # parsed, not a parameter: the run id is unchanged
    assert config.epochs_swept == frozenset({1, 2, 3}) and RunConfig(epochs=4, sweep_epochs="every:2").epochs_swept \
        == frozenset({2, 4})


@pytest.fixture
def plan():
    config = RunConfig(measures=["magnitude", "random"], controls=["shuffled"], replacements=["zero", "random"],
                       recoveries=["none", "bn"], epochs=3, sweep_epochs=[2, 3], progress=False)
    grid = [dict(aggregation="weight", pooling="none", scope=s, normalization="none", order="least")
            for s in ("layer", "global")]
    return Plan(config, grid, config.parsed_recoveries, done=set()), grid


def test_plan_expects_every_combination_of_the_swept_epochs(plan):
    plan, grid = plan
    assert plan.expected_keys(1) == set()  # not swept
    keys = plan.expected_keys(2)
    assert len(keys) == 2 * 2 * 2 * 2 * 2  # measures x (itself, control) x conditions x replacements x recoveries
    assert sweep_key(2, "random~shuffled", grid[1], "random", "bn") in keys
    assert plan.missing_epochs() == [2, 3] and not plan.complete(keys)


def test_plan_todo_leaves_out_what_is_done(plan):
    plan, grid = plan
    done_key = sweep_key(3, "magnitude~shuffled", grid[0], "zero", "bn")
    finished = Plan(plan.config, grid, plan.recoveries, plan.expected_keys(2) | {done_key})
    assert finished.missing_epochs() == [3]
    todo = finished.todo("magnitude", 3)
    assert [c for c, _ in todo] == grid and len(todo[0][1]) == 7 and len(todo[1][1]) == 8
    assert ("shuffled", "zero", Recovery("bn", {"batches": 20})) not in todo[0][1]
    assert finished.todo("magnitude", 2) == [] and finished.complete(finished.done | plan.expected_keys(3))
