"""Sweep engines: a killed sweep resumes with only its unfinished runs, every engine gives the
same dataset, lost workers are retried, failing runs are recorded, and ``lrsc status`` /
``lrsc collect`` read a sweep folder."""
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from lrsc import config, engines, models, plan, runs, sweep, worker
from lrsc.cli import main
from lrsc.collect import read_results
from lrsc.errors import ConfigError, RunsFailed

from conftest import TINY_PARITY, records, run_store


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> xr.Dataset:
    """The tiny parity sweep, uninterrupted, one run at a time, in this process on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run outside conftest's one-thread fixture
    try:
        return sweep.run_sweep(TINY_PARITY, tmp_path_factory.mktemp("reference") / "sweep", device="cpu",
                               progress=False, models_at_once=1).drop_attrs()
    finally:
        torch.set_num_threads(threads)


def _same(ds: xr.Dataset, reference: xr.Dataset) -> None:
    """Every variable of ``ds`` equals the reference's, bit for bit (attrs name the store, so differ)."""
    xr.testing.assert_identical(ds.drop_attrs(), reference)


def _pids(out: Path) -> dict[str, int]:
    return {h: r["provenance"]["pid"] for h, r in records(out).items() if "provenance" in r}


def test_killed_sweep_resumes_only_unfinished_runs(tmp_path, tiny_parity, reference):
    params, out = tmp_path / "params.yaml", tmp_path / "out"
    params.write_text(yaml.safe_dump(tiny_parity))
    args = ["sweep", str(params), "--out", str(out), "--device", "cpu", "--no-batch"]
    proc = subprocess.Popen([sys.executable, "-m", "lrsc.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    store = run_store(out)
    while not list(store.root.glob("*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {h for h in _pids(out)}
    assert 0 < len(before) < 4 and not (out / "results.nc").exists()

    assert main(args) == 0
    pids = _pids(out)
    assert {h for h, pid in pids.items() if pid == proc.pid} == before  # finished runs were not redone
    assert all(pid == os.getpid() for h, pid in pids.items() if h not in before)
    assert len(pids) == 4 and {r["status"] for r in records(out).values()} == {"done"}
    _same(read_results(out / "results.nc"), reference)
    (out / "results.nc").unlink()
    assert main(["collect", str(out)]) == 0
    _same(read_results(out / "results.nc"), reference)


def test_dask_worker_processes_give_identical_results(tmp_path, tiny_parity, reference):
    # a LocalCluster of two worker processes (not threads of this one), as a real cluster's workers
    out = tmp_path / "sweep"
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1, engine="dask", workers=2)
    _same(ds, reference)
    assert {r["status"] for r in records(out).values()} == {"done"}
    assert os.getpid() not in set(_pids(out).values())  # trained in the workers


def test_slurm_engine_sends_units_in_arrays_below_the_limit(tmp_path, tiny_parity, reference, monkeypatch):
    # submitit's local stand-in for SLURM runs each task as a process; the arrays SLURM itself
    # makes are checked on a real cluster in tests/test_slurm_cluster.py
    import submitit

    arrays = []
    real = submitit.AutoExecutor.map_array

    def counted(self, fn, *iterables):
        arrays.append(len(iterables[0]))
        return real(self, fn, *iterables)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", counted)
    monkeypatch.setattr(engines, "SLURM_MAX_ARRAY_SIZE", 3)  # the stand-in has no scontrol: the declared limit
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job processes use one thread, as this one
    out = tmp_path / "slurm"
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1,
                         engine="slurm", slurm=engines.SlurmOptions(cluster="local", time_min=5))
    assert arrays == [3, 1]  # four units: one array of three, then one of the rest
    _same(ds, reference)
    assert {r["status"] for r in records(out).values()} == {"done"}


def test_slurm_resources_come_from_options_then_sweep_then_models():
    given = engines.SlurmOptions(time_min=30)
    by_model = {"fcn": models.resources("fcn"), "resnet18": models.resources("resnet18")}
    assert models.resources("fcn")["gpus"] == 0 and models.resources("resnet18")["gpus"] == 1
    filled = given.for_sweep({"cpus": 2, "mem_gb": 3}, by_model)
    # --slurm-time, the sweep's cpus and memory, then the most any of its models asks for
    assert (filled.time_min, filled.cpus, filled.mem_gb, filled.gpus) == (30, 2, 3.0, 1)
    bare = engines.SlurmOptions().for_sweep(None, {"mine": {}})  # a model registered without resources
    assert (bare.gpus, bare.cpus, bare.mem_gb, bare.time_min) == (0, 1, None, 60)


@pytest.mark.parametrize("resources,message", [
    ({"gpu": 1}, "unknown key resources.gpu; valid keys: gpus, cpus, mem_gb, time_min"),
    ({"cpus": 0}, "resources.cpus must be at least 1, got 0"),
    ({"time_min": 1.5}, "resources.time_min must be an integer, got 1.5"),
    ([1], "resources must map gpus, cpus, mem_gb, time_min to numbers"),
])
def test_bad_sweep_resources_exit_2_with_any_engine(tmp_path, tiny_parity, capsys, resources, message):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**tiny_parity, "resources": resources}))
    assert main(["sweep", str(params), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_sweep_resources_are_no_part_of_a_run(tmp_path, tiny_parity):
    plain = plan.plan(tiny_parity)[1]
    stated = plan.plan({**tiny_parity, "resources": {"gpus": 1, "time_min": 240}})[1]
    assert [r.hash for r in stated] == [r.hash for r in plain] and [r.config for r in stated] == [r.config for r in plain]


def die_once(unit, store_root: str, *args):
    """``worker.execute``, except that the first call anywhere kills its worker process."""
    marker = Path(store_root) / "killed-once"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os._exit(1)
    return worker.execute(unit, store_root, *args)


def test_local_workers_retry_a_killed_worker(tmp_path, tiny_parity, reference, monkeypatch):
    # spawned workers unpickle die_once from this module, where it calls the real worker.execute
    import lrsc.drive

    monkeypatch.setattr(lrsc.drive, "execute", die_once)
    out = tmp_path / "sweep"
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1, workers=2)
    assert (run_store(out).root / "killed-once").exists()
    assert {r["status"] for r in records(out).values()} == {"done"}
    _same(ds, reference)  # two workers of one thread each, as the reference


class LosesSeedOne(engines.InProcess):
    """Runs units here, except that a unit holding a seed-1 run always 'loses its worker'."""

    lost_errors = (ConnectionError,)
    submitted: list[int] = []

    def submit(self, fn, /, *args):
        seeds = [run.config["seed"] for run in args[0]]
        self.submitted.extend(seeds)
        if 1 not in seeds:
            return super().submit(fn, *args)
        future = Future()
        future.set_exception(ConnectionError("worker lost"))
        return future


def test_retries_are_bounded_then_the_unit_fails(tmp_path, tiny_parity, monkeypatch):
    monkeypatch.setattr(engines, "make_executor", lambda *a, **k: LosesSeedOne())
    tiny_parity["grid"] = {"lr": [1.0], "seed": [0, 1]}
    out = tmp_path / "sweep"
    with pytest.raises(RunsFailed, match=r"1 of 2 runs failed; the first \(\w+\): ConnectionError: worker lost"):
        sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1, retries=2)
    ds = read_results(out / "results.nc")
    assert LosesSeedOne.submitted == [0, 1, 1, 1]  # the lost unit: its first try and two retries
    assert ds.status.values.tolist() == [["done", "failed"]]
    failed = records(out)[plan.plan(tiny_parity)[1][1].hash]
    assert "worker lost 3 times" in failed["error"] and "ConnectionError" in failed["error"]


def test_failing_run_is_recorded_and_the_others_complete(tmp_path, tiny_parity, monkeypatch, capsys):
    real = runs.load_data

    def broken_for_200(run, dev="cpu"):
        if run["dataset_params"]["n_train"] == 200:
            raise ValueError("broken data")
        return real(run, dev)

    monkeypatch.setattr(worker, "load_data", broken_for_200)
    tiny_parity["grid"] = {"dataset_params.n_train": [300, 200], "lr": [1.0], "seed": [0, 1]}
    out = tmp_path / "sweep"
    with pytest.raises(RunsFailed, match="2 of 4 runs failed; the first .*: ValueError: broken data"):
        sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    ds = read_results(out / "results.nc")  # written all the same: the failures are NaN with a status
    assert ds.status.values.tolist() == [[["done", "done"]], [["failed", "failed"]]]
    assert np.isnan(ds.test_acc.sel(n_train=200)).all() and np.isfinite(ds.test_acc.sel(n_train=300)).all()
    assert (ds.reason.sel(n_train=200) == "failed").all() and not ds.converged.sel(n_train=200).any()

    assert main(["status", str(out)]) == 1  # runs failed: status says so in its exit code too
    shown = capsys.readouterr().out
    assert "done           2" in shown and "failed         2" in shown and "pending        0" in shown
    assert "n_train=200 lr=1.0 seed=1  ValueError: broken data" in shown

    (out / "results.nc").unlink()
    assert main(["collect", str(out)]) == 0
    xr.testing.assert_identical(read_results(out / "results.nc"), ds)


def test_failing_run_in_a_batch_leaves_the_others(tmp_path, tiny_parity, monkeypatch):
    def broken_batch(*args, **kwargs):
        raise RuntimeError("batched step failed")

    real = worker._train_one

    def seed_one_fails(store, run, *args, **kwargs):
        if run.config["seed"] == 1:
            raise ValueError("bad seed")
        return real(store, run, *args, **kwargs)

    monkeypatch.setattr(worker, "_train_stack", broken_batch)
    monkeypatch.setattr(worker, "_train_one", seed_one_fails)
    tiny_parity["grid"] = {"lr": [1.0], "seed": [0, 1]}
    out = tmp_path / "sweep"
    with pytest.raises(RunsFailed, match="ValueError: bad seed"):
        sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)  # one unit of two runs
    ds = read_results(out / "results.nc")
    assert ds.status.values.tolist() == [["done", "failed"]]
    found = sorted(records(out).values(), key=lambda r: r["status"])
    assert [r["status"] for r in found] == ["done", "failed"] and "ValueError: bad seed" in found[1]["error"]


def test_any_parameter_is_an_axis(tmp_path, tiny_parity):
    tiny_parity["train"]["max_steps"] = 60
    tiny_parity["grid"] = {"dataset": ["parity"], "model": ["fcn"], "model_params.width": [16, 32],
                           "train.batch_size": [50, 100], "seed": [0]}
    out = tmp_path / "sweep"
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert list(ds.test_acc.dims) == ["dataset", "model", "width", "batch_size", "seed"]
    assert list(ds.loss.dims) == ["dataset", "model", "width", "batch_size", "seed", "step"]
    assert ds.width.values.tolist() == [16, 32] and ds.batch_size.values.tolist() == [50, 100]
    assert ds.dataset.values.tolist() == ["parity"] and (ds.status == "done").all()
    configs = [json.loads(read_results(p).attrs["config"]) for p in run_store(out).root.glob("*.nc")]
    assert sorted((c["model_params"]["width"], c["train"]["batch_size"]) for c in configs) == \
           [(16, 50), (16, 100), (32, 50), (32, 100)]


@pytest.mark.parametrize("grid,message", [
    ({"lr": [0.1], "train.lr": [0.3]}, "second dim named 'lr'"),
    ({"metrics.prune_fractions": [[0.5], [0.2]]}, "must be numbers, strings or booleans"),
])
def test_grids_that_cannot_be_collected_are_refused(tiny_parity, grid, message):
    tiny_parity["grid"] = grid
    with pytest.raises(ConfigError, match=message):
        config.load(tiny_parity)


@pytest.mark.parametrize("argv,message", [
    (["--engine", "spark"], "unknown engine 'spark'; valid engines: local, dask, slurm"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--retries", "-1"], "--retries must be at least 0"),
    (["--scheduler", "tcp://x:8786"], "--scheduler is for --engine dask"),
    (["--engine", "slurm", "--slurm-cpus", "0"], "--slurm-cpus must be at least 1"),
    (["--engine", "slurm", "--slurm-mem", "0"], "--slurm-mem must be at least 1"),
])
def test_bad_engine_options_exit_2(tmp_path, tiny_parity, capsys, argv, message):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_parity))
    assert main(["sweep", str(params), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrsc: error:") and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_status_of_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "no readable grid.json" in capsys.readouterr().err
