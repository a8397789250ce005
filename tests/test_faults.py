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

from conftest import TINY_CNN, TINY_PARITY, records, run_store
from lrsc import netcdf, plan, sweep, worker
from lrsc.cli import main
from lrsc.collect import read_results
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
    return read_results(out / "results.nc").drop_attrs()


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
    cfg, runs = plan.plan(empty)
    assert runs[0].config["metrics"]["n_act"] == 1000
    assert plan.plan(tiny_parity, ["metrics=null"])[1][0].config["metrics"]["q"] == 0.1


def test_out_naming_a_file_or_an_unwritable_folder(tmp_path, tiny_parity, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "taken")]) == 2
    assert "is a file; give a folder" in _one_error_line(capsys)
    # /proc refuses new files even to root
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", "/proc/lrsc-test/sweep"]) == 2
    assert "cannot write under '/proc'" in _one_error_line(capsys)


def test_a_full_disk_is_one_line_and_leaves_the_run_pending(tmp_path, tiny_parity, clean, capsys, monkeypatch):
    import lrsc.store

    real_fsync = os.fsync

    def full(fd: int) -> None:  # the disk fills up as the first weights file is written
        if ".pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(lrsc.store.os, "fsync", full)
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert "the disk is full; free space and run the same command again" in line and ".pt" in line
    store = run_store(out)
    assert not list(store.root.glob("*.pt")) and not list(store.root.glob(".*.tmp"))
    assert not list(store.root.glob("*.json")) and not list(store.root.glob("*.claim"))  # pending, not failed
    monkeypatch.undo()
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)


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
    victim = plan.plan(tiny_parity)[1][0].hash
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
    h = plan.plan(tiny_parity)[1][0].hash
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
                                                                        capsys, monkeypatch):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)

    def drop(names):  # as stored by a version that knew no such variables
        for h in plan.plan(tiny_parity)[1]:
            ds = read_results(store.path(h.hash, "nc")).drop_vars(names)
            record = store.state(h.hash).record
            code = {**record["code"], "variables": {k: v for k, v in record["code"]["variables"].items()
                                                    if k not in names}}
            store.commit(h.hash, netcdf.dumps(ds), store.path(h.hash, "pt").read_bytes(),
                         {**record, "code": code, "variables": sorted(ds.data_vars)})

    drop(["csi", "class_sep"])
    assert main(["status", str(out)]) == 0
    assert "outdated       4" in capsys.readouterr().out
    trained = []
    monkeypatch.setattr(worker, "train_batched", lambda *a, **k: trained.append(a))
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert not trained and "lacks class_sep, csi (recomputed from its stored weights)" in caplog.text
    xr.testing.assert_identical(ds.drop_attrs(), clean)
    drop(["logit_norm"])  # a training variable: trained again
    monkeypatch.undo()
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert "lacks logit_norm (logit_norm from training: trained again)" in caplog.text
    xr.testing.assert_identical(ds.drop_attrs(), clean)


def test_runs_stored_without_code_fingerprints_are_outdated_and_trained_again(tmp_path, tiny_parity, clean,
                                                                            capsys):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)
    for h, record in records(out).items():  # as an older lrsc wrote them
        store.write_record(h, {k: v for k, v in record.items() if k not in ("code", "hashed")})
    assert main(["status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "outdated       4" in shown and "stored without the fingerprints of the code that made it" in shown
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)
    assert len(list(store.root.glob("*.json.outdated"))) == 4 and all("code" in r for r in records(out).values())


def test_every_run_failing_is_one_line_and_exit_1(tmp_path, tiny_parity, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of device memory")

    monkeypatch.setattr(worker, "load_data", broken)
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 1
    line = _one_error_line(capsys)
    assert "4 of 4 runs failed" in line and "RuntimeError: out of device memory" in line
    ds = _results(out)
    assert (ds.status == "failed").all() and "converged" in ds and ds.test_acc.isnull().all()


def kills_seed_one(unit, store_root: str, *args):
    """``worker.execute``, except that a unit holding a seed-1 run kills its worker process, always."""
    if any(run.config["seed"] == 1 for run in unit):
        os._exit(1)
    return worker.execute(unit, store_root, *args)


def test_only_the_worker_killer_is_charged(tmp_path, tiny_parity, monkeypatch):
    import lrsc.drive

    # spawned workers unpickle kills_seed_one from this module, where it calls the real worker.execute
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
    """lrsc status --quick on a sweep of 100 stored runs answers without importing torch, every
    file's checksum verified (its time is measured by hand, not asserted: the machine is shared)."""
    from lrsc import sweepdir
    from lrsc.store import RunStore

    out, store = tmp_path / "o" / "sweep", RunStore(tmp_path / "o" / "runs")
    hashes = [f"{i:016x}" for i in range(100)]
    for h in hashes:
        store.commit(h, os.urandom(20_000), os.urandom(40_000), {"status": "done", "config": {}})
    out.mkdir(parents=True)
    (out / "grid.json").write_text(json.dumps({"store": "../runs", "dims": {"lr": list(range(100))}, "axes": ["lr"],
                                               "hashes": hashes, "config": {}}))
    code = ("import sys; from lrsc.cli import main; code = main(['status', '--quick', sys.argv[1]]); "
            "print('torch' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert "done         100" in proc.stdout
    assert len(sweepdir.states(out)) == 100


# ----- divergence is a result -----

def _declared_shapes(ds: xr.Dataset, width: int) -> None:
    """Every variable of ``ds`` holds its declared dims, the neuron dim at the model's width."""
    from lrsc import variables

    for v in variables.declared():
        assert set(v.dims) <= set(ds[v.name].dims), v.name
    assert ds.sizes["neuron"] == width and ds.neuron_csi.shape[-2:] == (ds.sizes["snapshot"], width)


@pytest.mark.parametrize("cfg,lrs,width", [(TINY_PARITY, [20.0, 100.0, 1e6], 32), (TINY_CNN, [1e4], 64)],
                         ids=["fcn", "cnn"])
def test_diverged_runs_are_stored_as_results(tmp_path, cfg, lrs, width, capsys):
    """An FCN and a CNN that diverge are stored as diverged, every variable in its declared
    shape (NaN where undefined); none fails, and a rerun trains nothing and changes nothing."""
    import copy

    given = copy.deepcopy(cfg)
    given["metrics"]["snapshot_steps"] = [0, 20]
    given["grid"]["lr"] = lrs
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, given), "--out", str(out), "--device", "cpu"]) == 0
    ds = _results(out)
    assert (ds.status == "diverged").all() and ds.diverged.all() and not (ds.status == "failed").any()
    assert f"{ds.status.size} diverged" in capsys.readouterr().out
    _declared_shapes(ds, width)
    assert ds.neuron_csi.isel(snapshot=0).notnull().any()  # taken before it diverged
    stored = records(out)
    assert main(["sweep", _params(tmp_path, given), "--out", str(out), "--device", "cpu"]) == 0
    assert records(out) == stored  # nothing trained again
    xr.testing.assert_identical(_results(out), ds)


# ----- every stored file verified, by content and by name -----

@pytest.fixture(scope="module")
def trained_elsewhere(tmp_path_factory) -> Path:
    """The tiny parity sweep's results folder (``o/sweep`` and its store ``o/runs``), trained by
    another process: this one holds no memory of having written its files."""
    root = tmp_path_factory.mktemp("elsewhere")
    proc = _cli(["sweep", _params(root, TINY_PARITY), "--out", str(root / "o" / "sweep"), "--device", "cpu"])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return root / "o"


def _flip_keeping_time(path: Path) -> None:
    data, stat = bytearray(path.read_bytes()), path.stat()
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _swap(store, a: str, b: str, kinds: tuple[str, ...]) -> None:
    for kind in kinds:
        pa, pb = store.path(a, kind), store.path(b, kind)
        pa.rename(pa.with_name("swap"))
        pb.rename(pa)
        pa.with_name("swap").rename(pb)


def _edit_record(store, h: str, change) -> None:
    path = store.path(h, "json")
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("damage", [
    "flip a byte of .nc, time kept", "flip a byte of .pt, time kept", "swap two runs' files", "swap two runs' .nc",
    "swap two runs' .nc and .json", "edit a record's hashed settings", "edit a record's config"])
def test_damage_that_keeps_size_and_time_or_swaps_runs_is_found_and_heals(tmp_path, tiny_parity, clean, capsys,
                                                                          trained_elsewhere, damage):
    """Damage the store of a sweep another process trained: the next status finds it (exit 1),
    collect refuses to use it, and the next sweep retrains it to the clean sweep's dataset."""
    import shutil

    shutil.copytree(trained_elsewhere, tmp_path / "o")  # copy2: times kept
    out = tmp_path / "o" / "sweep"
    store = run_store(out)
    a, b = [r.hash for r in plan.plan(tiny_parity)[1][:2]]
    if damage.startswith("flip"):
        _flip_keeping_time(store.path(a, damage.split(".")[1].split(",")[0]))
        victims = {a}
    elif damage.startswith("swap"):
        _swap(store, a, b, {"swap two runs' files": ("nc", "pt", "json"), "swap two runs' .nc": ("nc",),
                            "swap two runs' .nc and .json": ("nc", "json")}[damage])
        victims = {a, b}
    elif damage == "edit a record's hashed settings":
        _edit_record(store, a, lambda r: r["hashed"]["train"].update(lr=9.0))
        victims = {a}
    else:
        _edit_record(store, a, lambda r: r["config"]["train"].update(lr=9.0))
        victims = {a}
    assert main(["status", str(out)]) == 1
    shown = capsys.readouterr().out
    assert f"damaged  {len(victims):>7}" in shown and all(v in shown for v in victims)
    assert main(["collect", str(out)]) == 1
    assert (_results(out).status == "damaged").sum() == len(victims)
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)
    assert main(["status", str(out)]) == 0


def test_an_edited_grid_json_is_refused_and_a_rerun_rewrites_it(tmp_path, tiny_parity, clean, capsys):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    grid = json.loads((out / "grid.json").read_text())
    grid["hashes"] = grid["hashes"][::-1]  # every run at another's grid point
    (out / "grid.json").write_text(json.dumps(grid))
    assert main(["collect", str(out)]) == 2
    assert "grid.json does not match its runs" in _one_error_line(capsys)
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--device", "cpu"]) == 0
    xr.testing.assert_identical(_results(out), clean)


# ----- claims that one process at a time can take over -----

def _contend(store_root: str, run_hash: str, start, results, trials: int) -> None:
    from lrsc.store import RunStore

    store = RunStore(store_root)
    for _ in range(trials):
        start.wait()
        results.put(store.claim(run_hash, "race") is None)
        start.wait()  # every contender has answered: the next trial may be set up


@pytest.mark.parametrize("contenders", [2, 4])
def test_one_stale_claim_taken_over_by_exactly_one_of_many(tmp_path, contenders):
    """N processes take over one dead owner's claim at the same moment, 100 times: one wins each time."""
    import multiprocessing

    from lrsc.store import RunStore

    trials, h = 100, "0123456789abcdef"
    store = RunStore(tmp_path / "runs")
    store.root.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(contenders + 1), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(store.root), h, start, results, trials)) for _ in range(contenders)]
    for p in procs:
        p.start()
    winners = []
    for _ in range(trials):
        for leftover in store.root.glob(f"{h}.*"):
            leftover.unlink()
        store.path(h, "claim").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": 0,
                                                      "generation": 0}))
        start.wait()
        winners.append(sum(results.get(timeout=60) for _ in range(contenders)))
        start.wait()
    for p in procs:
        p.join(timeout=60)
    assert winners == [1] * trials


def test_an_empty_claim_is_stale_after_a_short_grace_and_status_says_so(tmp_path, tiny_parity, clean, capsys):
    from lrsc.store import CLAIM_GRACE_S

    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)
    h = plan.plan(tiny_parity)[1][0].hash
    store.set_aside(h, "lost")
    store.path(h, "claim").write_text("")  # its owner died as it created the claim
    assert store.state(h).status == "running"  # within the grace period: its owner may be writing it
    then = time.time() - CLAIM_GRACE_S - 1
    os.utime(store.path(h, "claim"), (then, then))
    assert main(["status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "stale          1" in shown and "its claim file is empty or unreadable" in shown
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    xr.testing.assert_identical(_results(out), clean)
    assert not list(store.root.glob(f"{h}.claim")) and not list(store.root.glob(f"{h}.takeover.*"))


# ----- one line, nothing half-written -----

def _nothing_written(where: Path) -> None:
    assert not list(where.rglob("sweep.yaml")) and not list(where.rglob("grid.json")) and not list(where.rglob("*.tmp"))


@pytest.mark.parametrize("store,message", [("file", "is a file; give a folder for the run store"),
                                           ("/proc/lrsc-test/runs", "cannot write under '/proc'")])
def test_a_bad_store_is_one_line_before_anything_is_written(tmp_path, tiny_parity, capsys, store, message):
    if store == "file":
        store = tmp_path / "taken"
        store.write_text("not a folder")
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--store", str(store)]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.fixture
def mount(tmp_path):
    """``mount(name, size_kib, read_only)``: a fresh tmpfs at ``tmp_path/name`` (root only; skipped elsewhere)."""
    mounted = []

    def make(name: str, size_kib: int = 4096, read_only: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        options = f"size={size_kib}k" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_a_read_only_folder_is_one_line(tmp_path, tiny_parity, mount, capsys):
    read_only = mount("ro", read_only=True)
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "o" / "s"), "--store",
                 str(read_only / "runs")]) == 2
    assert "cannot write under" in _one_error_line(capsys)
    _nothing_written(tmp_path / "o")
    # collect into a sweep folder that has become read-only
    out = mount("sweeps") / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, store=tmp_path / "runs")
    subprocess.run(["mount", "-o", "remount,ro", str(out.parent)], check=True)
    assert main(["collect", str(out)]) == 2
    assert "the filesystem is read-only" in _one_error_line(capsys)


def test_a_really_full_disk_is_one_line_and_no_crash(tmp_path, tiny_parity, clean, mount, capsys):
    """A store on a disk too small for a run: one line, no HDF5 diagnostics, no crash, the run pending."""
    store = mount("small", size_kib=100)
    params, out = _params(tmp_path, tiny_parity), tmp_path / "o" / "sweep"
    proc = _cli(["sweep", params, "--out", str(out), "--device", "cpu", "--store", str(store)])
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read().strip().splitlines()
    assert err[-1].startswith("lrsc: error: cannot write") and "the disk is full" in err[-1]
    assert not any("HDF5" in line or "Traceback" in line for line in err), err
    assert not list(store.glob(".*.tmp")) and not list(store.glob("*.claim"))
    assert all(json.loads(p.read_text())["status"] != "failed" for p in store.glob("*.json"))
    assert main(["sweep", params, "--out", str(out), "--device", "cpu", "--store", str(tmp_path / "big")]) == 0
    xr.testing.assert_identical(_results(out), clean)


WORKER_STOPPED_IN_A_CALLBACK = """
import multiprocessing, os, signal, weakref
from lrsc import engines
engines._init_worker(multiprocessing.Value("i", 0), 1, 0, os.getppid())  # as a sweep's worker starts
class Unit: pass
def dropped(ref):
    os.kill(os.getpid(), signal.SIGTERM)  # the sweep stops this worker: its handler runs in here
    sum(range(1000))
try:
    unit = Unit(); ref = weakref.ref(unit, dropped); del unit
    sum(i for i in range(10**7))
    print("trained on")
finally:
    print("unwound")
"""


def test_a_worker_stopped_inside_a_weakref_callback_still_unwinds():
    """Python drops an exception raised in a weakref callback: the stop must be raised again."""
    proc = subprocess.run([sys.executable, "-c", WORKER_STOPPED_IN_A_CALLBACK], capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stdout.split()) == (1, ["unwound"]), proc.stderr
    assert proc.stderr == ""


def test_ctrl_c_with_workers_leaves_no_temporary_and_no_warning(tmp_path, tiny_parity):
    tiny_parity["train"]["max_steps"] = 3000
    tiny_parity["grid"]["lr"] = [0.001, 0.002]  # too small to converge: the workers stay busy
    params, out = _params(tmp_path, tiny_parity), tmp_path / "o" / "sweep"
    proc = _cli(["sweep", params, "--out", str(out), "--device", "cpu", "--workers", "2", "--no-batch"],
                start_new_session=True)
    deadline = time.time() + 120
    while len(list(run_store(out).root.glob("*.claim"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read().strip().splitlines()
    assert err[-1].startswith("lrsc: error: interrupted")
    assert not [line for line in err if "Warning" in line or "Traceback" in line], "\n".join(err)
    store = run_store(out)
    assert not list(store.root.glob(".*.tmp")) and not list(store.root.glob("*.claim"))


def test_a_killed_writers_temporary_is_removed_at_the_next_start(tmp_path, tiny_parity, clean):
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    store = run_store(out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    h = plan.plan(tiny_parity)[1][0].hash
    leftover = store.root / f".{h}.pt.{dead.pid}.1.{os.uname().nodename}.tmp"
    leftover.write_bytes(b"half a file")
    alive = store.root / f".{h}.nc.{os.getpid()}.1.{os.uname().nodename}.tmp"  # a live writer's: kept
    alive.write_bytes(b"being written")
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False)
    assert not leftover.exists() and alive.exists()
    xr.testing.assert_identical(_results(out), clean)


# ----- checked before anything runs -----

@pytest.mark.parametrize("override,message", [
    ("train.lr=.nan", "train.lr must be a finite number, got nan"),
    ("seed=abc", "seed must be a non-negative integer, got 'abc'"),
    ("dataset_params.rho=5", "parity: dataset_params.rho must lie in [0, 1]"),
])
def test_a_base_value_under_a_grid_axis_is_checked(tmp_path, tiny_parity, capsys, override, message):
    tiny_parity["grid"]["dataset_params.rho"] = [0.1]
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--set", override]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_key_given_twice_is_refused(tmp_path, tiny_parity, capsys):
    text = yaml.safe_dump(tiny_parity).replace("max_steps: 400", "max_steps: 400\n  max_steps: 800")
    (tmp_path / "params.yaml").write_text(text)
    assert main(["sweep", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "o" / "s")]) == 2
    assert "key 'max_steps' is given twice" in _one_error_line(capsys)
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(tmp_path / "o" / "s"),
                 "--set", "train={lr: 1, lr: 2}"]) == 2
    assert "key 'lr' is given twice" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override,setting", [
    ("train.max_steps=1000000000000", "train.max_steps=1000000000000"),
    ("model_params.width=1000000", "model 'fcn'"),
    ("dataset_params.n_train=100000000000", "dataset_params.n_train=100000000000"),
    ("metrics.ig_steps=100000000000", "metrics.ig_steps=100000000000"),
])
def test_settings_that_need_more_memory_than_there_is_are_refused(tmp_path, tiny_parity, capsys, override, setting):
    out = tmp_path / "o" / "sweep"
    assert main(["sweep", _params(tmp_path, tiny_parity), "--out", str(out), "--set", override]) == 2
    line = _one_error_line(capsys)
    assert "a run would need at least" in line and f"for {setting}" in line and "lower that setting" in line
    assert not (tmp_path / "o").exists()
