"""main.ipynb: its structure as committed, and an end-to-end run on digits with a tiny grid."""

import ast
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "main.ipynb"
TOY = "toy_taylor"
MEASURES = ["magnitude", "random"]
AGGREGATIONS = ["weight", "unit"]
THRESHOLDS = [0, 0.5, 1]
EPOCHS = 2


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_index(nb) -> int:
    indices = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(indices) == 1, f"expected exactly one cell tagged 'parameters', found {len(indices)}"
    return indices[0]


def outputs(nb) -> list:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


class ThisInterpreter(KernelSpecManager):
    """Serves "python3" as an ipykernel of the interpreter running the tests, whatever is installed globally."""

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3 (tests)", language="python",
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})


def test_one_parameters_cell_defining_what_the_tests_override():
    nb = read_notebook()
    source = nb.cells[parameters_index(nb)].source
    names = {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}
    wanted = {"TASK", "MODEL", "MEASURES", "AGGREGATIONS", "THRESHOLDS", "EPOCHS", "SEED", "IMPORTANCE_SAMPLES",
              "SCOPES", "REPLACEMENTS", "DATA_DIR", "OUTPUT", "FIGURES", "RESUME", "INCLUDE_TOY_MEASURE",
              "FORGET_CLASSES", "FORGET_MEASURES", "FORGET_EPOCHS", "FORGET_THRESHOLDS", "FORGET_SAMPLES"}
    assert wanted <= names, f"parameters cell lacks {sorted(wanted - names)}"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_committed_notebook_has_no_outputs():
    nb = read_notebook()
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None] == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_runs_end_to_end_on_digits(tmp_path):
    output, figures = tmp_path / "results.csv", tmp_path / "figures"
    nb = read_notebook()
    overrides = dict(OUTPUT=str(output), FIGURES=str(figures), EPOCHS=EPOCHS, THRESHOLDS=THRESHOLDS,
                     MEASURES=MEASURES, AGGREGATIONS=AGGREGATIONS, IMPORTANCE_SAMPLES=64, INCLUDE_TOY_MEASURE=True)
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in overrides.items()),
                                         metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(parameters_index(nb) + 1, injected)
    run_cell = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith("csv_path = run(config)"))
    nb.cells.insert(run_cell + 1, nbformat.v4.new_code_cell(nb.cells[run_cell].source))  # the claim: a rerun is safe

    km = KernelManager(kernel_name="python3", kernel_spec_manager=ThisInterpreter())
    NotebookClient(nb, km=km, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()

    assert [out for out in outputs(nb) if out.output_type == "error"] == []
    setup = "".join(out.get("text", "") for out in nb.cells[parameters_index(nb) + 3].outputs)
    assert "device: CPU" in setup or "device: GPU" in setup
    assert not [out for out in outputs(nb) if out.get("name") == "stderr" and "E0000" in out.get("text", "")]
    run_id = next(line.split()[1].rstrip(":") for out in outputs(nb) for line in out.get("text", "").splitlines()
                  if line.startswith("run ") and "task=" in line)
    first, rerun = (cell.outputs for cell in nb.cells[run_cell : run_cell + 2])
    assert f"run {run_id}: " in "".join(out.get("text", "") for out in first if out.get("name") == "stdout")
    assert f"run {run_id} is already complete in {output}; nothing was recomputed" in rerun[0]["text"]
    bar = "".join(out.get("text", "") for out in first if out.get("name") == "stderr")
    assert f"run {run_id}: 100%" in bar and f"{EPOCHS}/{EPOCHS}" in bar  # a text bar: readable once saved
    assert not [out for out in outputs(nb) if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    frame = pd.read_csv(output)
    assert set(frame["measure"]) == {*MEASURES, TOY}
    assert set(frame["epoch"]) == set(range(1, EPOCHS + 1))
    assert set(frame["aggregation"]) == set(AGGREGATIONS)
    counts = frame.groupby(["epoch", "measure", "aggregation"]).size()
    assert len(counts) == EPOCHS * 3 * len(AGGREGATIONS) and (counts == len(THRESHOLDS)).all()
    pngs = sorted(figures.glob("*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
    assert {p.name.split("_")[0] for p in pngs} >= {"loss", "accuracy", "rank"}
    inline = [out for out in outputs(nb) if "image/png" in out.get("data", {})]
    assert len(inline) >= 5, "the loss, accuracy, rank, forgetting and selectivity figures should be displayed inline"
    forget = pd.read_csv(tmp_path / "results_forget.csv")  # the forgetting section, beside OUTPUT
    assert set(forget["order"]) == {"most"} and (tmp_path / "results_forget.per_class.csv").is_file()
