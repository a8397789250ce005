"""Fault injection: bad input stops before anything is written, damaged result folders heal,
failing and dying workers are contained, and concurrent sweeps agree with a clean one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml

from conftest import TINY_PARITY
from lrsc import sweep
from lrsc import store
from lrsc.cli import main


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> xr.Dataset:
    """The tiny parity sweep, run once without faults (one thread, as every test here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sweep.run_sweep(TINY_PARITY, tmp_path_factory.mktemp("clean"), device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)


def _params(tmp_path: Path, cfg: dict) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("lrsc: error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("override,message", [
    ("dataset_params.rho=1.5", "parity: dataset_params.rho must lie in [0, 1]"),
    ("dataset_params.n_train=10", "train.batch_size=50 exceeds the 10 training samples of parity"),
    ("metrics.prune_scope=everywhere", "metrics.prune_scope must be one of layer, global"),
    ("metrics.snapshot_steps=[10,5]", "metrics.snapshot_steps must be increasing"),
    ("grid.optimizer=[sgd,rmsprop]", "train.optimizer must be one of sgd, adam, adamw, psgd_kron, got 'rmsprop'"),
    ("train.schedule=linear", "train.schedule must be one of constant, step, cosine, wsd, got 'linear'"),
    ("grid.l1=[0,-0.001]", "train.l1 must be non-negative, got -0.001"),
    ("train.weight_decay=-1", "train.weight_decay must be non-negative"),
    ("grid.focal_gamma=[-1]", "train.focal_gamma must be non-negative, got -1"),
    ("grid.asam_rho=[-0.5]", "train.asam_rho must be non-negative"),
    ("train.batch_size=100000", "train.batch_size=100000 exceeds the"),
    ("train.momentum=1.5", "train.momentum must lie in [0, 1)"),
    ("metrics.bg_mask=sam", "metrics.bg_mask must be one of none, grabcut, deeplab, got 'sam'"),
    ("metrics.bg_mask=deeplab", "metrics.bg_mask=deeplab needs torchvision's deeplabv3_resnet50 weights"),
    ("model_params.depth=0", "fcn needs depth >= 1"),
])
def test_bad_input_found_before_running(tmp_path, tiny_parity, capsys, override, message):
    out = tmp_path / "out"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--set", override]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_image_data_checked_before_running(tmp_path, tiny_parity, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    image = {**tiny_parity, "dataset": "colored_mnist", "dataset_params": {"n_train": 300, "data_root": str(empty)}}
    out = tmp_path / "out"
    # too many digits: found from the source's size, before the data root is even looked at
    assert main(["sweep", _params(tmp_path, image), "--out", str(out), "--set", "dataset_params.n_train=100000"]) == 2
    assert "n_train=100000 exceeds the 60000 training images of mnist" in _one_error_line(capsys)
    # an empty data root: one line naming the folder and the files it needs
    assert main(["sweep", _params(tmp_path, image), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert f"MNIST not found under data root {empty}" in line and "MNIST/raw/train-images-idx3-ubyte" in line
    assert not out.exists()


def test_out_naming_a_file(tmp_path, tiny_parity, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "taken")]) == 2
    assert "is a file; give a folder" in _one_error_line(capsys)


def _copy_sweep(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)
    (dst / "results.nc").unlink()


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "another run's file", "unfinished temporary file"])
def test_damaged_run_file_heals(tmp_path, tiny_parity, clean, capsys, damage):
    out = tmp_path / "out"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    runs = sorted((out / "runs").glob("*.nc"))
    victim = runs[0]
    if damage == "random bytes":
        victim.write_bytes(os.urandom(victim.stat().st_size))
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:1000])
    elif damage == "another run's file":
        victim.write_bytes(runs[1].read_bytes())
    else:  # killed while writing: the temporary file is left, the result never renamed into place
        victim.rename(victim.with_name(f".{victim.name}.12345.tmp"))
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    if damage != "unfinished temporary file":
        reason = "its stored config hashes to" if damage == "another run's file" else "cannot be read"
        assert f"{victim}: {reason}" in err and "moved aside" in err
        assert victim.with_name(victim.name + ".corrupt").exists()
    xr.testing.assert_identical(store.load(out / "results.nc"), clean)


def test_collect_names_a_damaged_file_and_exits_1(tmp_path, tiny_parity, clean, capsys):
    out = tmp_path / "out"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    victim = sorted((out / "runs").glob("*.nc"))[0]
    victim.write_bytes(b"garbage")
    assert main(["collect", str(out)]) == 1
    assert f"{victim}: cannot be read" in capsys.readouterr().err
    assert (store.load(out / "results.nc").status == "pending").sum() == 1
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)  # the sweep recomputes it
    xr.testing.assert_identical(store.load(out / "results.nc"), clean)


def test_stale_run_shown_and_rerun(tmp_path, tiny_parity, clean, capsys):
    out = tmp_path / "out"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    run = sweep.expand(sweep.plan(tiny_parity)[0])[0]
    h = sweep.run_hash(run)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.run_path(out, h).unlink()  # as if that process had died while training the run
    store.write_status(out, h, {"status": "running", "host": os.uname().nodename, "pid": dead.pid, "started": 0})
    assert main(["status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "stale          1" in shown and "process of this host that is gone" in shown
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    xr.testing.assert_identical(store.load(out / "results.nc"), clean)


def test_stale_stored_runs_are_completed_from_their_weights(tmp_path, tiny_parity, clean, capsys, monkeypatch):
    out = tmp_path / "out"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    for path in (out / "runs").glob("*.nc"):  # as stored by a version that knew no CSI
        store.write_atomic(store.load(path).drop_vars(["csi", "class_sep"]), path)
    trained = []
    monkeypatch.setattr(sweep, "train_batched", lambda *a, **k: trained.append(a))
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert not trained and "lacked class_sep, csi; completed from their stored weights" in capsys.readouterr().err
    xr.testing.assert_identical(ds, clean)
    for path in (out / "runs").glob("*.nc"):  # no weights, and a training variable missing: trained again
        store.write_atomic(store.load(path).drop_vars(["logit_norm"]), path)
    monkeypatch.undo()
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert "lacked logit_norm; trained again" in capsys.readouterr().err
    xr.testing.assert_identical(ds, clean)


def test_every_run_failing_is_one_line_and_exit_1(tmp_path, tiny_parity, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of device memory")

    monkeypatch.setattr(sweep, "load_data", broken)
    out = tmp_path / "out"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 1
    line = _one_error_line(capsys)
    assert "4 of 4 runs failed" in line and "RuntimeError: out of device memory" in line
    ds = store.load(out / "results.nc")
    assert (ds.status == "failed").all() and "converged" in ds and ds.test_acc.isnull().all()


def kills_seed_one(batch: list[dict], out_dir: str, device: str) -> list[dict]:
    """``sweep.execute``, except that a unit holding a seed-1 run kills its worker process, always."""
    if any(run["seed"] == 1 for run in batch):
        os._exit(1)
    return sweep.execute(batch, out_dir, device)


def test_only_the_worker_killer_is_charged(tmp_path, tiny_parity, monkeypatch):
    # spawned workers unpickle kills_seed_one from this module, where it calls the real sweep.execute
    monkeypatch.setattr(sweep, "execute", kills_seed_one)
    with pytest.raises(sweep.RunsFailed, match="2 of 4 runs failed.*BrokenProcessPool"):
        sweep.run_sweep(tiny_parity, tmp_path, device="cpu", progress=False, models_at_once=1, workers=2, retries=1)
    ds = store.load(tmp_path / "results.nc")
    assert ds.status.sel(seed=0).values.tolist() == ["done", "done"]  # broken pools took them too, uncharged
    assert ds.status.sel(seed=1).values.tolist() == ["failed", "failed"]
    errors = [json.loads(p.read_text()).get("error", "") for p in (tmp_path / "runs").glob("*.json")]
    assert sum("worker lost 2 times" in e for e in errors) == 2  # its first try alone, then one retry


def test_two_sweeps_on_one_folder(tmp_path, tiny_parity, clean):
    params, out = _params(tmp_path, tiny_parity), tmp_path / "out"
    cmd = [sys.executable, "-m", "lrsc.cli", "sweep", params, "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    xr.testing.assert_identical(store.load(out / "results.nc"), clean)
