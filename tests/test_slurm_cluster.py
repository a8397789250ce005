"""The SLURM engine against a real SLURM: munged, slurmctld and slurmd on this machine
(``slurm_cluster.py``), jobs submitted by submitit through sbatch, not its "local" stand-in.
Skipped where SLURM is not installed (``apt-get install slurmctld slurmd slurm-client munge``)."""
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml

import lrsc
from lrsc import engines, sweep
from lrsc.cli import main

from conftest import TINY_PARITY
from slurm_cluster import KILL_WAIT_S, MAX_ARRAY_SIZE, die_first, job_probe, last_job_id, tasks

submitit = pytest.importorskip("submitit")
from submitit.core.utils import UncompletedJobError  # noqa: E402 (after the importorskip)

JOB_TIMEOUT_S = 120  # a job not done by then is cancelled and fails its test, rather than hanging it


@pytest.fixture
def job_env(monkeypatch):
    # sbatch gives the job the submitter's environment (--export=ALL), and submitit starts the job
    # with this Python; there it must import this checkout's lrsc (not another that the venv points
    # at) and the tests' modules, since submitit pickles functions by reference
    paths = [str(Path(lrsc.__file__).parents[1]), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per job, as the tests' own process


def executor(folder: Path, partition: str) -> "submitit.AutoExecutor":
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(slurm_partition=partition, timeout_min=5, cpus_per_task=1)
    return ex


def wait(jobs: list, timeout_s: float = JOB_TIMEOUT_S) -> None:
    deadline = time.time() + timeout_s
    while not all(job.done() for job in jobs):
        if time.time() > deadline:
            for job in jobs:
                job.cancel(check=False)
            logs = "\n".join(f"{job.job_id}: {job.stderr()}" for job in jobs)
            pytest.fail(f"SLURM jobs not done after {timeout_s} s\n{logs}")
        time.sleep(0.2)


def test_submitit_runs_a_job_and_a_job_array(slurm_cluster, job_env, tmp_path):
    ex = executor(tmp_path, slurm_cluster.partition)
    jobs = [ex.submit(job_probe, 3), *ex.map_array(job_probe, [4, 5])]
    assert all(isinstance(job, submitit.SlurmJob) for job in jobs)
    wait(jobs)
    results = [job.result() for job in jobs]
    assert [r["square"] for r in results] == [9, 16, 25]
    assert [r["job_id"] for r in results] == [job.job_id for job in jobs]  # each ran as the job submitit tracks
    assert {r["lrsc"] for r in results} == {lrsc.__file__}


def test_a_cancelled_job_raises_what_the_sweep_retries(slurm_cluster, job_env, tmp_path):
    # a job that ends without a result (cancelled, preempted, out of time) is seen ended only
    # through its SLURM state, which submitit asks sacct for (the cluster's bin/sacct)
    job = executor(tmp_path, slurm_cluster.partition).submit(time.sleep, 300)
    deadline = time.time() + JOB_TIMEOUT_S
    while job.watcher.get_state(job.job_id, mode="force") != "RUNNING" and time.time() < deadline:
        time.sleep(0.2)
    job.cancel()
    job._results_timeout_s = 0  # no result file is coming: do not wait submitit's 15 s for one
    wait([job])
    error = job.exception()
    assert isinstance(error, UncompletedJobError) and "CANCELLED" in str(error)  # the engine's lost_errors


# what each job of the tiny sweeps asks for: one of the node's two CPUs, its 1 GB, five minutes
SMALL = {"cpus": 1, "mem_gb": 1, "time_min": 5}


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, tiny_parity_module) -> xr.Dataset:
    """The tiny parity sweep trained here, one run at a time on one thread, as the jobs train it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run outside conftest's one-thread fixture
    try:
        return sweep.run_sweep(tiny_parity_module, tmp_path_factory.mktemp("local") / "sweep", device="cpu",
                               progress=False, models_at_once=1).drop_attrs()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_parity_module() -> dict:
    return {**copy.deepcopy(TINY_PARITY), "resources": SMALL}


def ended_tasks(after: int, n: int, timeout_s: float = 30) -> list:
    """The ``n`` tasks SLURM holds for jobs after ``after``, once none of them runs (a job's result
    comes back a moment before SLURM sees it end)."""
    deadline = time.time() + timeout_s
    while True:
        found = tasks(after)
        if (len(found) >= n and not {"PENDING", "RUNNING", "COMPLETING"} & {t.state for t in found}) \
                or time.time() > deadline:
            return found
        time.sleep(0.2)


def test_a_sweep_of_units_is_one_job_array(slurm_cluster, job_env, tmp_path, tiny_parity_module, local_results):
    # units of two runs: one array of two tasks, one per CPU of the node, each importing torch;
    # the resources are the sweep file's, as SLURM records them
    before = last_job_id()
    on_slurm = sweep.run_sweep(tiny_parity_module, tmp_path / "slurm" / "sweep", device="cpu", progress=False,
                               models_at_once=2, engine="slurm", slurm=engines.SlurmOptions(partition="debug"))
    xr.testing.assert_identical(on_slurm.drop_attrs(), local_results)
    records = [json.loads(p.read_text()) for p in (tmp_path / "slurm" / "runs").glob("*.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"done"}
    assert os.getpid() not in {r["provenance"]["pid"] for r in records}  # trained in the jobs, not here
    found = ended_tasks(before, 2)
    assert len({t.array for t in found}) == 1 and [t.index for t in found] == [0, 1]  # one array id, two tasks
    assert {(t.state, t.cpus, t.memory, t.time_limit) for t in found} == {("COMPLETED", 1, "1G", "5:00")}


def test_more_units_than_the_array_limit_make_more_arrays(slurm_cluster, job_env, tmp_path, tiny_parity_module):
    # six units of one run, and arrays of at most MAX_ARRAY_SIZE (4) tasks: two arrays, 4 + 2; an
    # option given for the command line (--slurm-time) overrides the sweep file's resources
    assert engines.max_array_size() == MAX_ARRAY_SIZE  # read from scontrol show config
    cfg = {**tiny_parity_module, "grid": {"lr": [0.3, 1.0], "seed": [0, 1, 2]}}
    before = last_job_id()
    ds = sweep.run_sweep(cfg, tmp_path / "sweep", device="cpu", progress=False, models_at_once=1, engine="slurm",
                         slurm=engines.SlurmOptions(partition="debug", time_min=7))
    assert (ds.status == "done").all() and ds.status.size == 6
    found = ended_tasks(before, 6)
    arrays = sorted({t.array for t in found})
    assert len(arrays) == 2 and [[t.index for t in found if t.array == a] for a in arrays] == [[0, 1, 2, 3], [0, 1]]
    assert {(t.state, t.cpus, t.memory, t.time_limit) for t in found} == {("COMPLETED", 1, "1G", "7:00")}


def test_a_lost_task_goes_out_again_as_a_smaller_array(slurm_cluster, job_env, tmp_path, tiny_parity_module,
                                                       local_results, monkeypatch):
    # the first task to start exits without a result (as on a node that died): its unit alone is
    # submitted again, a job of its own, and the sweep ends with the numbers of a local one
    import lrsc.drive

    monkeypatch.setattr(lrsc.drive, "execute", die_first)  # jobs unpickle it from slurm_cluster, by reference
    before = last_job_id()
    ds = sweep.run_sweep(tiny_parity_module, tmp_path / "sweep", device="cpu", progress=False, models_at_once=1,
                         engine="slurm", slurm=engines.SlurmOptions(partition="debug"))
    xr.testing.assert_identical(ds.drop_attrs(), local_results)
    assert (tmp_path / "runs" / "died-once").exists()
    found = ended_tasks(before, 5)
    first, again = sorted({t.array for t in found})
    assert sorted(t.state for t in found if t.array == first) == ["COMPLETED"] * 3 + ["FAILED"]
    assert [(t.index, t.state) for t in found if t.array == again] == [(None, "COMPLETED")]


def test_a_job_asking_for_more_than_the_cluster_has_is_a_clear_error(slurm_cluster, job_env, tmp_path,
                                                                      tiny_parity_module, capsys):
    # the node has no GPU and 1 GB: sbatch refuses such jobs, and the sweep says what was asked for
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**tiny_parity_module, "resources": {**SMALL, "gpus": 1}}))
    before = last_job_id()
    assert main(["sweep", str(params), "--out", str(tmp_path / "sweep"), "--engine", "slurm", "--device", "cpu",
                 "--slurm-partition", "debug"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lrsc: error: --engine slurm: sbatch refused the sweep's jobs of 1 GPU(s), 1 CPU core(s)")
    assert "generic resource" in err and tasks(before) == []


def test_jobs_that_can_never_start_are_reported(slurm_cluster, job_env, tmp_path, monkeypatch, caplog):
    # more CPU cores than the node has: SLURM takes the job and keeps it pending for good
    monkeypatch.setattr(engines, "PENDING_CHECK_S", 0.5)
    engine = engines.Slurm(engines.SlurmOptions(partition="debug", cpus=4, time_min=5), tmp_path)
    try:
        engine.submit_all(time.sleep, [(1,), (1,)])
        deadline = time.time() + 30
        while "pending for PartitionConfig" not in caplog.text and time.time() < deadline:
            time.sleep(0.2)
    finally:
        engine.shutdown(wait=False, cancel_futures=True)
    warning = [r.getMessage() for r in caplog.records if "pending for" in r.getMessage()]
    assert len(warning) == 1 and "2 of the sweep's jobs" in warning[0] and "4 CPU core(s)" in warning[0]


def test_ctrl_c_cancels_the_sweeps_jobs(slurm_cluster, job_env, tmp_path, tiny_parity_module):
    # runs that would train for long: Ctrl-C (SIGINT) on the sweep ends it with status 130 and
    # leaves SLURM no task of it pending or running
    slow = {**tiny_parity_module, "train": {**tiny_parity_module["train"], "max_steps": 10**7, "eval_every": 10**6},
            "grid": {"lr": [1e-6], "seed": [0, 1, 2]}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(slow))
    before = last_job_id()
    proc = subprocess.Popen([sys.executable, "-m", "lrsc.cli", "sweep", str(params), "--out", str(tmp_path / "sweep"),
                             "--engine", "slurm", "--device", "cpu", "--no-batch", "--slurm-partition", "debug"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + JOB_TIMEOUT_S
        while sum(t.state == "RUNNING" for t in tasks(before)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert [t.index for t in tasks(before)] == [0, 1, 2]  # one array of the three units
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130 and "interrupted" in proc.stderr.read()
    finally:
        proc.kill()
    found = ended_tasks(before, 3, timeout_s=KILL_WAIT_S + 30)
    assert {t.state for t in found} == {"CANCELLED"}


def test_the_engine_sees_a_job_end_without_accounting(slurm_cluster, job_env, tmp_path, monkeypatch):
    # the cluster's real sacct only: "accounting storage is disabled", so submitit never learns
    # that a job ended; the engine finds it gone from squeue and reports the worker lost
    real_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != str(slurm_cluster.root / "bin"))
    monkeypatch.setenv("PATH", real_path)
    engine = engines.Slurm(engines.SlurmOptions(partition=slurm_cluster.partition, time_min=5), tmp_path)
    try:
        future = engine.submit(time.sleep, 300)
        job = engine._jobs[0][0]  # the engine keeps no public handle on its jobs
        deadline = time.time() + JOB_TIMEOUT_S
        while job.watcher.get_state(job.job_id, mode="force") not in ("RUNNING", "UNKNOWN") and time.time() < deadline:
            time.sleep(0.2)
        subprocess.run(["scancel", str(job.job_id)], check=True)
        error = future.exception(timeout=60)
        assert isinstance(error, engine.lost_errors) and "ended without a result" in str(error)
    finally:
        engine.shutdown(wait=False, cancel_futures=True)
