"""The README's examples, run as a user runs them: the "Extending lrsc" block as a notebook through
papermill (its dataset, model and metric live in the kernel's __main__, which no worker can
import), sweeping on local worker processes and on Dask; and the hand-trained example. A user's
module as a plugin of the command line (``lrsc sweep --import``, a sweep file's ``plugins``), on
worker processes and on Dask."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from lrsc.collect import read_results
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
        ds = read_results(cwd / "results" / "extending" / engine / "results.nc")
        assert (ds.status == "done").all(), ds.status.values  # every run done, on processes that never saw the notebook
        assert "bc_acc" in ds and ds.bc_acc.notnull().all()
        assert "units" not in ds.bc_acc.attrs and ds.bc_acc.attrs["long_name"] == "bias-conflicting accuracy"
    workers, dask = (read_results(cwd / "results" / "extending" / e / "results.nc") for e in ("workers", "dask"))
    assert (workers.bc_acc == dask.bc_acc).all()  # one store: the Dask sweep found the runs already trained
    assert "model 'fcn' is already registered" in printed


def test_collect_keeps_a_metric_registered_elsewhere(extended):
    cwd, _ = extended
    out = cwd / "results" / "extending" / "workers"
    before = read_results(out / "results.nc")
    (out / "results.nc").unlink()
    # a new process, which knows nothing of the notebook's registrations
    proc = subprocess.run([sys.executable, "-m", "lrsc.cli", "collect", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = read_results(out / "results.nc")
    assert "bc_acc" in after and (after.bc_acc == before.bc_acc).all()
    assert after.bc_acc.attrs["long_name"] == "bias-conflicting accuracy"
    # and its stored config reads back without the registry entry that made it
    assert config_values(after)["n_train"] == 400
    assert json.loads(after.attrs["config"])["dataset"] == "toy_spurious"


def _run_script(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` saved as a script and run with ``python``, as a user runs a README block."""
    (cwd / "example.py").write_text(code)
    return subprocess.run([sys.executable, "example.py"], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def test_the_extending_block_runs_as_a_script(tmp_path):
    proc = _run_script(_block("Extending lrsc"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model 'fcn' is already registered" in proc.stdout
    for engine in ("workers", "dask"):
        assert (read_results(tmp_path / "results" / "extending" / engine / "results.nc").status == "done").all()


def _tiny_sweep_file(cwd: Path) -> str:
    """A tiny sweep file in place of the README's params/quick/parity.yaml (minutes of CPU time):
    the same code, on a sweep a test can afford."""
    from conftest import TINY_PARITY

    (cwd / "tiny.yaml").write_text(yaml.safe_dump(TINY_PARITY))
    return str(cwd / "tiny.yaml")


@pytest.mark.parametrize("how", ["notebook", "script"])
def test_the_notebook_blocks_run_in_a_notebook_and_as_a_script(tmp_path, how):
    sweep_block = _block("From your own notebook", 0).replace("params/quick/parity.yaml", _tiny_sweep_file(tmp_path))
    checks = "\nprint('rows', len(results.table(ds)), type(model).__name__)\n"
    for code, expected in ((sweep_block + checks, "rows 6 FCN"), (_block("From your own notebook", 1), "")):
        if how == "notebook":
            nb = _run_notebook(code, tmp_path)
            printed = "".join(out.get("text", "") for out in nb.cells[0].outputs if out.get("name") == "stdout")
        else:
            proc = _run_script(code, tmp_path)
            assert proc.returncode == 0, proc.stderr[-3000:]
            printed = proc.stdout
        assert expected in printed


def test_the_sweep_commands_run_as_written(tmp_path):
    section = (ROOT / "README.md").read_text().split("## Sweeps from the command line")[1]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]
    bin_dir = str(Path(sys.executable).parent)
    script = block.replace(".venv/bin", bin_dir).replace("params/quick/parity.yaml", _tiny_sweep_file(tmp_path))
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wide = read_results(tmp_path / "results" / "mine" / "parity-wide" / "results.nc")
    assert dict(wide.sizes)["lr"] == 3 and dict(wide.sizes)["rho"] == 2 and (wide.status == "done").all()


PLUGIN = '''
import torch
from torch import nn

from lrsc import datasets, models, variables
from lrsc.datasets import Info, Split


@datasets.register("shapes_on_bg", check=lambda p: Info(p["n_train"], (2,), 2))
def shapes_on_bg(*, seed: int = 0, n_train: int = 200, n_test: int = 200):
    g = torch.Generator().manual_seed(seed)

    def split(n: int, biased: bool) -> Split:
        y = torch.randint(2, (n,), generator=g)
        b = y.clone() if biased else torch.randint(2, (n,), generator=g)
        x = torch.stack([y + 0.5 * torch.randn(n, generator=g), b + 0.1 * torch.randn(n, generator=g)], 1)
        return Split(x.float(), y, b, num_classes=2, num_bias=2)

    return split(n_train, True), split(n_test, False)


@models.register("plain_mlp")
def plain_mlp(*, input_shape: tuple, num_classes: int, width: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_classes))


variables.register(variables.Variable(
    "bc_share", "share of bias-conflicting samples in the unbiased test set", "the unbiased test set",
    "bias-conflicting share", "model", lambda ev: ev.test.conflicting.float().mean().item()))
'''


@pytest.mark.parametrize("engine", ["workers", "dask"])
def test_a_plugin_reaches_the_command_line_and_every_engine(tmp_path, engine):
    (tmp_path / "shapes_plugin.py").write_text(PLUGIN)
    cfg = {"dataset": "shapes_on_bg", "model": "plain_mlp", "train": {"batch_size": 50, "max_steps": 40,
           "eval_every": 20}, "metrics": {"n_act": 50, "n_attr": 10, "ig_steps": 4, "prune_fractions": [0.5]},
           "grid": {"lr": [0.1, 0.5], "seed": [0, 1]}}
    if engine == "dask":  # the sweep file names the plugin, by its path relative to the file
        (tmp_path / "sweeps").mkdir()
        params = tmp_path / "sweeps" / "plugin.yaml"
        params.write_text(yaml.safe_dump({**cfg, "plugins": ["../shapes_plugin.py"]}))
        extra = ["--engine", "dask", "--workers", "2"]
    else:  # --import, a module found in the current folder
        params = tmp_path / "plugin.yaml"
        params.write_text(yaml.safe_dump(cfg))
        extra = ["--import", "shapes_plugin", "--workers", "2"]
    lrsc = [str(Path(sys.executable).with_name("lrsc"))]  # the console script: the current folder is not on its path
    out = tmp_path / "out"
    proc = subprocess.run([*lrsc, "sweep", str(params), "--out", str(out), *extra], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ds = read_results(out / "results.nc")
    assert (ds.status == "done").all() and ds.sizes["neuron"] == 8
    assert ds.bc_share.notnull().all() and ds.test_acc.notnull().all()
    saved = yaml.safe_load((out / "sweep.yaml").read_text())["plugins"]
    assert saved == ([str((tmp_path / "shapes_plugin.py").resolve())] if engine == "dask" else ["shapes_plugin"])
    # lrsc status plans the sweep with the plugin its sweep.yaml names: nothing to retrain, nothing unplannable
    status = subprocess.run([*lrsc, "status", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert status.returncode == 0 and "cannot be planned" not in status.stdout and "done" in status.stdout, status


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"dataset": "shapes_on_bg", "grid": {"lr": [0.1]}}))
    for plugin, message in (("no_such_plugin", "plugin 'no_such_plugin' cannot be imported: No module named"),
                            ("broken.py", "broken.py' raised while it was imported: ZeroDivisionError")):
        (tmp_path / "broken.py").write_text("1 / 0\n")
        proc = subprocess.run([sys.executable, "-m", "lrsc.cli", "sweep", "params.yaml", "--out", "out", "--import",
                               plugin], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
