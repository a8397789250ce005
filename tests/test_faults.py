"""Fault injection: bad input stops before anything is written; damaged stores heal to the clean
sweep's dataset; failing and dying workers are contained; interrupts, a full disk and an
unwritable folder end in one line; concurrent sweeps on one store train each run once."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml

from conftest import TINY_PARITY, records, run_store
from lrsc import sweep, units
from lrsc.cli import main
from lrsc.collect import load
from lrsc.errors import RunsFailed


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> xr.Dataset:
    """The tiny parity sweep, run once without faults (one thread, as every test here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("clean") / "sweep"
        return sweep.run_sweep(TINY_PARITY, out, device="cpu", progress=False).drop_attrs()
    finally:
        torch.set_num_threads(threads)


def _params(tmp_path: Path, cfg: dict | None) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg) if cfg is not None else "")
    return str(path)


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("lrsc: error:")]
    assert len(err) == 1, err
    return err[0]


def _results(out: Path) -> xr.Dataset:
    return load(out / "results.nc").drop_attrs()


@pytest.mark.parametrize("override,message", [
    ("dataset_params.rho=1.5", "parity: dataset_params.rho must lie in [0, 1]"),
    ("dataset_params.n_train=10", "train.batch_size=50 exceeds the 10 training samples of parity"),
    ("metrics.prune_scope=everywhere", "metrics.prune_scope must be one of layer, global"),
    ("metrics.snapshot_steps=[10,5]", "metrics.snapshot_steps must be increasing"),
    ("metrics.prune_fractions=[]", "metrics.prune_fractions must be a non-empty list"),
    ("grid.optimizer=[sgd,rmsprop]", "train.optimizer must be one of sgd, adam, adamw, psgd_kron, got 'rmsprop'"),
    ("train.schedule=linear", "train.schedule must be one of constant, step, cosine, wsd, got 'linear'"),
    ("grid.l1=[0,-0.001]", "train.l1 must be non-negative, got -0.001"),
    ("train.weight_decay=-1", "train.weight_decay must be non-negative"),
    ("grid.focal_gamma=[-1]", "train.focal_gamma must be non-negative, got -1"),
    ("grid.asam_rho=[-0.5]", "train.asam_rho must be non-negative"),
    ("train.batch_size=100000", "train.batch_size=100000 exceeds the"),
    ("train.momentum=1.5", "train.momentum must be in [0, 1)"),
    ("metrics.bg_mask=sam", "metrics.bg_mask must be one of none, grabcut, deeplab, got 'sam'"),
    ("metrics.bg_mask=deeplab", "metrics.bg_mask=deeplab needs torchvision's deeplabv3_resnet50 weights"),
    ("model_params.depth=0", "fcn needs depth >= 1"),
    # not finite: NaN and infinity pass no range check by accident
    ("grid.lr=[.nan]", "train.lr must be a finite number, got nan"),
    ("grid.lr=[.inf]", "train.lr must be a finite number, got inf"),
    ("train.momentum=.nan", "train.momentum must be a finite number"),
    ("train.weight_decay=.nan", "train.weight_decay must be a finite number"),
    ("dataset_params.rho=.nan", "dataset 'parity' parameter rho must be a finite number"),
    # repeats after normalisation: 1 and 1.0 are one run
    ("grid.lr=[1,1.0]", "the grid holds one run twice"),
])
def test_bad_input_found_before_running(tmp_path, tiny_parity, capsys, override, message):
    out = tmp_path / "out" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--set", override]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,message", [
    (["--device", "cuda:7"], "--device cuda:7: this machine has"),
    (["--device", "foo"], "--device 'foo' is not a device"),
    (["--out", ""], "--out must name a folder"),
])
def test_bad_options_found_before_running(tmp_path, tiny_parity, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "out" / "sweep"), *argv]
    assert main(args) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists() and not (tmp_path / "grid.json").exists()


def test_no_gpu_is_a_clear_error(tmp_path, tiny_parity, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "o" / "s"), "--device", "cuda"]) == 2
    assert "this machine has no CUDA device; use --device cpu" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_empty_params_and_sections(tmp_path, tiny_parity, capsys):
    assert main(["sweep", _params(tmp_path, None), "--out", str(tmp_path / "o")]) == 2
    assert "is empty" in _one_error_line(capsys)
    # an empty metrics: section (or --set metrics=null) means the defaults
    empty = {**tiny_parity, "metrics": None, "grid": {"lr": [1.0], "seed": [0]}}
    cfg, runs = sweep.plan(empty)
    assert runs[0].config["metrics"]["n_act"] == 1000
    assert sweep.plan(tiny_parity, ["metrics=null"])[1][0].config["metrics"]["q"] == 0.1


def test_out_naming_a_file_or_an_unwritable_folder(tmp_path, tiny_parity, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "taken")]) == 2
    assert "is a file; give a folder" in _one_error_line(capsys)
    # /proc refuses new files even to root
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", "/proc/lrsc-test/sweep"]) == 2
    assert "cannot write under '/proc'" in _one_error_line(capsys)


def test_a_full_disk_is_one_line(tmp_path, tiny_parity, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(units.torch, "save", full)  # the weights are the first file a run writes
    out = tmp_path / "o" / "sweep"
    code = main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"])
    assert code in (1, 2) and "the disk is full" in _one_error_line(capsys)
    assert not list(run_store(out).root.glob("*.pt")) and not list(run_store(out).root.glob(".*.tmp"))


def _damage(store, run_hash: str, kind: str, how: str) -> None:
    path = store.path(run_hash, kind)
    if how == "random bytes":
        path.write_bytes(os.urandom(path.stat().st_size))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "removed":
        path.unlink()
    else:  # a record that is valid JSON but no record
        path.write_text(how)


@pytest.mark.parametrize("kind,how", [
    ("nc", "random bytes"), ("nc", "truncated"), ("nc", "removed"), ("pt", "random bytes"), ("pt", "truncated"),
    ("json", "{}"), ("json", "[]"), ("json", '"done"'), ("json", "truncated")])
def test_each_damaged_file_is_seen_and_heals(tmp_path, tiny_parity, clean, capsys, kind, how):
    """Damage one stored file of one run: status reports it (exit 1), collect sets it aside
    (exit 1), and a rerun trains it again to the clean sweep's dataset, every variable."""
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)
    victim = sweep.plan(tiny_parity)[1][0].hash
    _damage(store, victim, kind, how)
    assert main(["status", str(out)]) == 1
    shown = capsys.readouterr().out
    assert "damaged        1" in shown and victim in shown
    assert main(["collect", str(out)]) == 1
    assert (_results(out).status == "damaged").sum() == 1 and victim in capsys.readouterr().err
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)
    assert main(["status", str(out)]) == 0


def test_a_damaged_sweep_config_is_one_line_and_a_rerun_rewrites_it(tmp_path, tiny_parity, clean, capsys):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    (out / "grid.json").write_text("{not json")
    for command in ("status", "collect"):
        assert main([command, str(out)]) == 2
        assert "run the sweep again to rewrite it" in _one_error_line(capsys)
    (out / "sweep.yaml").write_text("[1, 2")
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)


def test_a_stale_claim_is_shown_and_taken_over(tmp_path, tiny_parity, clean, capsys):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)
    h = sweep.plan(tiny_parity)[1][0].hash
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.set_aside(h, "lost")  # as if that process had died while training the run
    store.path(h, "claim").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": 0}))
    assert main(["status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "stale          1" in shown and f"pid {dead.pid}" in shown
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    xr.testing.assert_identical(_results(out), clean)
    assert not store.path(h, "claim").exists()


def test_stored_runs_lacking_a_variable_are_completed_from_their_weights(tmp_path, tiny_parity, clean, caplog,
                                                                        monkeypatch):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)

    def drop(names):  # as stored by a version that knew no such variables
        for h in sweep.plan(tiny_parity)[1]:
            ds = load(store.path(h.hash, "nc")).drop_vars(names)
            record = store.state(h.hash).record
            store.commit(h.hash, lambda p: ds.to_netcdf(p, engine="h5netcdf"),
                         lambda p: p.write_bytes(store.path(h.hash, "pt").read_bytes()),
                         {**record, "variables": sorted(ds.data_vars)})

    drop(["csi", "class_sep"])
    trained = []
    monkeypatch.setattr(units, "train_batched", lambda *a, **k: trained.append(a))
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert not trained and "lacked class_sep, csi; completed from their stored weights" in caplog.text
    xr.testing.assert_identical(ds.drop_attrs(), clean)
    drop(["logit_norm"])  # a training variable: trained again
    monkeypatch.undo()
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert "lacked logit_norm; trained again" in caplog.text
    xr.testing.assert_identical(ds.drop_attrs(), clean)


def test_runs_of_an_older_lrsc_are_adopted(tmp_path, tiny_parity, clean):
    """A sweep folder with its runs inside (runs/<old hash>.nc, .pt, .json) moves into the store."""
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store, legacy = run_store(out), out / "runs"
    legacy.mkdir()
    for h in records(out):
        for kind in ("nc", "pt"):
            store.path(h, kind).rename(legacy / f"old{h[:6]}.{kind}")
        store.path(h, "json").unlink()
    (out / "grid.json").unlink()
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    xr.testing.assert_identical(ds.drop_attrs(), clean)
    assert not legacy.exists() and len(records(out)) == 4


def test_every_run_failing_is_one_line_and_exit_1(tmp_path, tiny_parity, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of device memory")

    monkeypatch.setattr(units, "load_data", broken)
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 1
    line = _one_error_line(capsys)
    assert "4 of 4 runs failed" in line and "RuntimeError: out of device memory" in line
    ds = _results(out)
    assert (ds.status == "failed").all() and "converged" in ds and ds.test_acc.isnull().all()


def kills_seed_one(unit, store_root: str, *args):
    """``units.execute``, except that a unit holding a seed-1 run kills its worker process, always."""
    if any(run.config["seed"] == 1 for run in unit):
        os._exit(1)
    return units.execute(unit, store_root, *args)


def test_only_the_worker_killer_is_charged(tmp_path, tiny_parity, monkeypatch):
    import lrsc.drive

    # spawned workers unpickle kills_seed_one from this module, where it calls the real units.execute
    monkeypatch.setattr(lrsc.drive, "execute", kills_seed_one)
    out = tmp_path / "o" / "sweep"
    with pytest.raises(RunsFailed, match="2 of 4 runs failed.*BrokenProcessPool"):
        sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1, workers=2, retries=1)
    ds = _results(out)
    assert ds.status.sel(seed=0).values.tolist() == ["done", "done"]  # broken pools took them too, uncharged
    assert ds.status.sel(seed=1).values.tolist() == ["failed", "failed"]
    errors = [r.get("error", "") for r in records(out).values()]
    assert sum("worker lost 2 times" in e for e in errors) == 2  # its first try alone, then one retry


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a suite started in the background inherits an ignored SIGINT, which Python keeps ignored;
    # the sweep should see Ctrl-C as it would from a terminal
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    return subprocess.Popen([sys.executable, "-m", "lrsc.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=restore, **kw)


def test_two_sweeps_on_one_store_train_each_run_once(tmp_path, tiny_parity, clean):
    params = _params(tmp_path, tiny_parity)
    procs = [_cli(["sweep", params, "--out", str(tmp_path / "o" / name), "--device", "cpu", "--no-batch"])
             for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    for name in ("a", "b"):
        xr.testing.assert_identical(_results(tmp_path / "o" / name), clean)
    store = run_store(tmp_path / "o" / "a")
    assert len(list(store.root.glob("*.nc"))) == 4  # each run trained and stored once
    trainers = {r["provenance"]["pid"] for r in records(tmp_path / "o" / "a").values()}
    assert trainers <= {p.pid for p in procs}  # by one sweep or the other, never twice


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_is_one_line_and_resumes(tmp_path, tiny_parity, clean, sig):
    params, out = _params(tmp_path, tiny_parity), tmp_path / "o" / "sweep"
    proc = _cli(["sweep", params, "--out", str(out), "--device", "cpu", "--no-batch"])
    deadline = time.time() + 120
    while not list(run_store(out).root.glob("*.claim")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read().strip().splitlines()
    assert err[-1] == "lrsc: error: interrupted; run the same command again to resume (finished runs are kept)"
    assert "Traceback" not in "\n".join(err)
    assert not list(run_store(out).root.glob("*.claim"))  # the claims were let go
    assert main(["sweep", params, "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    found, frontier = set(), {pid}
    while frontier:
        parents, frontier = frontier, set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in parents:
                child = int(stat.parent.name)
                found.add(child)
                frontier.add(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def test_killing_the_sweep_leaves_no_worker_behind(tmp_path, tiny_parity):
    tiny_parity["train"]["max_steps"] = 5000
    tiny_parity["grid"]["lr"] = [0.001, 0.002]  # too small to converge: the workers stay busy
    params, out = _params(tmp_path, tiny_parity), tmp_path / "o" / "sweep"
    proc = _cli(["sweep", params, "--out", str(out), "--device", "cpu", "--workers", "2", "--no-batch"])
    deadline = time.time() + 120
    while len(list(run_store(out).root.glob("*.claim"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    below = _children(proc.pid)
    assert below, "the sweep started no worker"
    proc.kill()
    proc.wait()
    deadline = time.time() + 20
    while _alive(below) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(below), "processes of the killed sweep still run"


def test_status_is_light(tmp_path):
    """lrsc status on a sweep of 100 stored runs answers without importing torch (its time is
    measured by hand, not asserted: the machine is shared)."""
    from lrsc import sweepdir
    from lrsc.store import RunStore

    out, store = tmp_path / "o" / "sweep", RunStore(tmp_path / "o" / "runs")
    hashes = [f"{i:016x}" for i in range(100)]
    for h in hashes:
        store.commit(h, lambda p: p.write_bytes(os.urandom(20_000)), lambda p: p.write_bytes(os.urandom(40_000)),
                     {"status": "done", "config": {}})
    out.mkdir(parents=True)
    (out / "grid.json").write_text(json.dumps({"store": "../runs", "dims": {"lr": list(range(100))},
                                               "axes": ["lr"], "hashes": hashes}))
    code = ("import sys; from lrsc.cli import main; code = main(['status', sys.argv[1]]); "
            "print('torch' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert "done         100" in proc.stdout
    assert len(sweepdir.states(out)) == 100
