"""The README's examples, run as a user runs them: the "Extending lrsc" block as a notebook through
papermill (its dataset, model and metric live in the kernel's __main__, which no worker can
import), sweeping on local worker processes and on Dask; and the hand-trained example."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from lrsc.collect import load
from lrsc.results import config_values

ROOT = Path(__file__).resolve().parents[1]


def _block(heading: str, index: int = 0) -> str:
    """The ``index``-th python block under the README's ``heading``."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[index]


def _run_notebook(code: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return papermill.execute_notebook(nb, str(cwd / "out.ipynb"), kernel_name="python3", cwd=str(cwd),
                                      progress_bar=False)


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("extending")
    nb = _run_notebook(_block("Extending lrsc"), cwd)
    printed = "".join(out.get("text", "") for out in nb.cells[0].outputs if out.get("name") == "stdout")
    return cwd, printed


def test_registered_extensions_run_on_workers_and_dask(extended):
    cwd, printed = extended
    for engine in ("workers", "dask"):
        ds = load(cwd / "results" / "extending" / engine / "results.nc")
        assert (ds.status == "done").all(), ds.status.values  # every run done, on processes that never saw the notebook
        assert "bc_acc" in ds and ds.bc_acc.notnull().all()
        assert "units" not in ds.bc_acc.attrs and ds.bc_acc.attrs["long_name"] == "bias-conflicting accuracy"
    workers, dask = (load(cwd / "results" / "extending" / e / "results.nc") for e in ("workers", "dask"))
    assert (workers.bc_acc == dask.bc_acc).all()  # one store: the Dask sweep found the runs already trained
    assert "model 'fcn' is already registered" in printed


def test_collect_keeps_a_metric_registered_elsewhere(extended):
    cwd, _ = extended
    out = cwd / "results" / "extending" / "workers"
    before = load(out / "results.nc")
    (out / "results.nc").unlink()
    # a new process, which knows nothing of the notebook's registrations
    proc = subprocess.run([sys.executable, "-m", "lrsc.cli", "collect", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = load(out / "results.nc")
    assert "bc_acc" in after and (after.bc_acc == before.bc_acc).all()
    assert after.bc_acc.attrs["long_name"] == "bias-conflicting accuracy"
    # and its stored config reads back without the registry entry that made it
    assert config_values(after)["n_train"] == 400
    assert json.loads(after.attrs["config"])["dataset"] == "toy_spurious"


def test_a_hand_trained_model_plots_like_a_sweep(tmp_path):
    code = "import matplotlib\nmatplotlib.use('Agg')\nfrom lrsc import plots\n" + \
        _block("From your own notebook", 1) + "\nprint(to_grid(rows, dims=('lr',)).test_acc.dims)\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "('lr',)" in proc.stdout
