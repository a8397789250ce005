"""Sweeps end to end: the CLI, bad input, the collected dataset, resume after interruption."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml

from conftest import run_store
from lrsc import sweep, worker
from lrsc.cli import main
from lrsc.collect import read_results

VARIABLES = ["test_acc", "worst_group_acc", "prunability", "prune_curve", "act_comp", "act_sparsity", "class_sep",
             "csi", "bsi", "csi_shuffled", "attr_core", "attr_spurious", "attr_noise", "attr_entropy",
             "max_bc_loss_ratio", "train_acc", "steps", "converged", "diverged", "loss", "bc_loss_ratio", "bc_loss",
             "ba_loss", "confident_bc", "logit_norm", "param_norm", "status"]


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_sweep_end_to_end(tmp_path, tiny_parity):
    params = _write(tmp_path, tiny_parity)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "lrsc.cli", "sweep", str(params), "--out", str(out),
                           "--set", "grid.seed=[0]", "--device", "cpu"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ds = read_results(out / "results.nc")
    # no snapshots asked: no zero-length snapshot dim, and no variables on it
    assert dict(ds.sizes) == {"lr": 2, "seed": 1, "step": ds.sizes["step"], "prune_fraction": 2, "neuron": 32}
    assert "neuron_csi" not in ds and len(ds.drop_dims("step").to_dataframe()) == 2 * 2 * 32
    assert all(v in ds for v in VARIABLES) and (ds.status == "done").all()
    assert ds.prune_fraction.values.tolist() == [0.2, 0.5] and ds.step.values[0] == 10
    assert ds.prunability.equals(ds.prune_curve.mean("prune_fraction").astype(ds.prunability.dtype))
    assert all(ds[v].attrs["description"] and ds[v].attrs["long_name"] for v in VARIABLES)
    assert "units" not in ds.test_acc.attrs  # dimensionless: no CF units, so axes read its name, not "[1]"
    assert ds.test_acc.attrs["display_units"] == "%" and ds.test_acc.attrs["display_scale"] == 100
    assert ds.lr.values.tolist() == [0.3, 1.0] and ds.seed.values.tolist() == [0]
    assert "lrsc_version" in ds.attrs and "test_acc" in ds.attrs["definitions"]
    assert yaml.safe_load(ds.attrs["config"])["grid"]["seed"] == [0]
    assert ds.converged.all() and not ds.diverged.any()
    shares = ds.attr_core + ds.attr_spurious + ds.attr_noise
    assert float(abs(shares - 1).max()) < 1e-5
    assert len(list(run_store(out).root.glob("*.nc"))) == 2
    assert (out / "results.nc").read_bytes()[:3] == b"CDF"  # netCDF-3: no groups, no zero-length dims
    provenance = xr.load_dataset(out / "provenance.nc")
    assert {"lrsc_version", "torch_version", "python_version", "git_commit", "git_dirty", "device", "threads",
            "training_path", "wall_time_s", "fit_step"} <= set(provenance.data_vars)
    assert (provenance.device == "cpu").all() and (provenance.wall_time_s > 0).all()
    assert (provenance.training_path == "stacked kernel").all() and provenance.wall_time_s.attrs["units"] == "s"
    assert (provenance.fit_step.values == ds.steps.values).all()


@pytest.mark.parametrize("override,message", [
    ("trian.lr=0.1", "unknown key 'trian'"),
    ("train.lrate=0.1", "unknown key train.lrate; valid keys: lr, batch_size"),
    ("train.batch_size=ten", "train.batch_size must be an integer, got 'ten'"),
    ("grid.lr=[0.1,-1]", "train.lr must be positive, got -1"),
    ("dataset=cifar5", "unknown dataset 'cifar5'; valid names:"),
    ("dataset_params.n_cores=3", "unknown parameter 'n_cores' for dataset 'parity'"),
])
def test_bad_params_exit_2_with_one_line_and_write_nothing(tmp_path, tiny_parity, override, message, capsys):
    params = _write(tmp_path, tiny_parity)
    out = tmp_path / "out"
    argv = ["sweep", str(params), "--out", str(out), "--set", override]
    if override.startswith("trian"):  # once through a real process: its exit status and stderr
        proc = subprocess.run([sys.executable, "-m", "lrsc.cli", *argv], capture_output=True, text=True)
        code, err = proc.returncode, proc.stderr
    else:  # the rest in this process, as main() is what the process exits with
        code, err = main(argv), capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrsc: error:") and message in lines[0], err
    assert not out.exists()


def test_missing_params_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_interrupted_sweep_resumes_and_matches(tmp_path, tiny_parity, monkeypatch):
    full = sweep.run_sweep(tiny_parity, tmp_path / "a" / "full", device="cpu", progress=False, models_at_once=1)

    calls = []
    real = worker._train_one

    def interrupted(store, run, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the third run
        calls.append(run)
        return real(store, run, *args, **kwargs)

    monkeypatch.setattr(worker, "_train_one", interrupted)
    out = tmp_path / "b" / "resumed"
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1)
    assert len(list(run_store(out).root.glob("*.nc"))) == 2
    assert not (out / "results.nc").exists() and not list(run_store(out).root.glob("*.claim"))

    calls.clear()
    monkeypatch.setattr(worker, "_train_one", lambda store, run, *a, **k: calls.append(run) or real(store, run, *a, **k))
    resumed = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1)
    assert len(calls) == 2  # only the two unfinished runs
    xr.testing.assert_identical(full.drop_attrs(), resumed.drop_attrs())


def test_general_grid_axes(tmp_path, tiny_parity):
    tiny_parity["grid"] = {"dataset_params.rho": [0.05, 0.2], "lr": [1.0], "seed": [0]}
    ds = sweep.run_sweep(tiny_parity, tmp_path / "o", device="cpu", progress=False)
    assert list(ds.test_acc.dims) == ["rho", "lr", "seed"] and ds.rho.values.tolist() == [0.05, 0.2]
    # the same axis from the command line: a dotted grid key is one axis, not a nested section
    params = _write(tmp_path, {**tiny_parity, "grid": {"lr": [1.0], "seed": [0]}})
    assert main(["sweep", str(params), "--out", str(tmp_path / "cli"), "--set", "grid.dataset_params.rho=[0.05,0.2]"]) == 0
    cli = read_results(tmp_path / "cli" / "results.nc")  # the same runs, from the shared store, the axis last
    xr.testing.assert_identical(cli.test_acc.transpose(*ds.test_acc.dims), ds.test_acc)


def test_snapshots_and_records_in_the_results(tmp_path, tiny_parity):
    tiny_parity["metrics"]["snapshot_steps"] = [0, 20, 5000]  # 5000: beyond every run's end
    tiny_parity["train"]["record_every"] = 10
    tiny_parity["grid"] = {"lr": [1.0], "seed": [0]}
    ds = sweep.run_sweep(tiny_parity, tmp_path / "o", device="cpu", progress=False)
    assert ds.snapshot.values.tolist() == [0, 20, 5000] and ds.sizes["neuron"] == 32
    csi = ds.neuron_csi.sel(lr=1.0, seed=0)
    assert csi.sel(snapshot=[0, 20]).notnull().any("neuron").all() and csi.sel(snapshot=5000).isnull().all()
    steps = int(ds.steps.sel(lr=1.0, seed=0))
    assert ds.step.values.tolist() == list(range(10, steps + 1, 10))  # a record every 10 steps
    assert ds.param_norm.notnull().all() and (ds.confident_bc >= 0).all()


def test_results_to_take_away(tmp_path, tiny_parity):
    from xarray.plot.utils import label_from_attrs

    from lrsc import results, runs, sweepdir
    from lrsc.errors import ConfigError
    from lrsc.models import predict

    out = tmp_path / "out"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    ds = xr.open_dataset(out / "results.nc")
    assert "snapshot" not in ds.sizes  # no run fills it: left out, with its variables
    assert len(ds.to_dataframe()) == math.prod(ds.sizes.values())  # every dim crossed
    table = results.table(ds)
    assert len(table) == 4 and table.index.names == ["lr", "seed"]
    assert {"run", "status", "test_acc", "prunability", "steps", "converged"} <= set(table.columns)
    assert not {"loss", "neuron_csi", "prune_curve"} & set(table.columns)  # traces and per-neuron values stay in ds
    assert sorted(table.run) == sorted(sweepdir.read_grid(out)["hashes"])
    assert table.loc[(1.0, 1), "test_acc"] == float(ds.test_acc.sel(lr=1.0, seed=1))
    # one call from a grid point to its trained model, from the dataset or from the folder
    model = runs.model_at(ds, lr=1.0, seed=1)
    same = runs.model_at(out, lr=1.0, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    test_set = runs.load_data(results.config(ds) | {"seed": 1})[1]
    accuracy = (predict(model, test_set.x)[1].argmax(1) == test_set.y).double().mean().item()
    assert accuracy == pytest.approx(float(ds.test_acc.sel(lr=1.0, seed=1)), abs=1e-6)
    with pytest.raises(ConfigError, match="give a value for each grid dim of the dataset: lr, seed"):
        runs.model_at(ds, lr=1.0)
    with pytest.raises(ConfigError, match="lr=2.0 is not in the grid"):
        runs.model_at(out, lr=2.0, seed=0)
    # axes labelled by name and units, never "[1]"
    assert label_from_attrs(ds.test_acc) == "unbiased test accuracy" and label_from_attrs(ds.lr) == "learning rate"
    assert label_from_attrs(results.scaled(ds, "test_acc")) == "unbiased test accuracy [%]"
    assert not any(ds[v].attrs.get("units") == "1" for v in [*ds.data_vars, *ds.coords])
