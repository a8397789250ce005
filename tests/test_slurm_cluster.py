"""The SLURM engine against a real SLURM: munged, slurmctld and slurmd on this machine
(``slurm_cluster.py``), jobs submitted by submitit through sbatch, not its "local" stand-in.
Skipped where SLURM is not installed (``apt-get install slurmctld slurmd slurm-client munge``)."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import xarray as xr

import lrsc
from lrsc import engines, sweep

from slurm_cluster import job_probe

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


def test_sweep_on_slurm_gives_the_local_engines_numbers(slurm_cluster, job_env, tmp_path, tiny_parity):
    # units of two runs: two array tasks, one per CPU of the node, each importing torch
    local = sweep.run_sweep(tiny_parity, tmp_path / "local" / "sweep", device="cpu", progress=False,
                            models_at_once=2, engine="local")
    on_slurm = sweep.run_sweep(tiny_parity, tmp_path / "slurm" / "sweep", device="cpu", progress=False,
                               models_at_once=2, engine="slurm",
                               slurm=engines.SlurmOptions(partition=slurm_cluster.partition, time_min=5))
    xr.testing.assert_identical(on_slurm.drop_attrs(), local.drop_attrs())
    records = [json.loads(p.read_text()) for p in (tmp_path / "slurm" / "runs").glob("*.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"done"}
    assert os.getpid() not in {r["provenance"]["pid"] for r in records}  # trained in the jobs, not here
    # slurmctld's record of the sweep's jobs: two array tasks (their results come back a moment
    # before SLURM sees the tasks end)
    deadline = time.time() + 30
    while True:
        tasks = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--name=lrsc", "--format=%i %T"],
                               capture_output=True, text=True, check=True).stdout.split()[1::2]
        if not {"RUNNING", "COMPLETING"} & set(tasks) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert tasks == ["COMPLETED", "COMPLETED"]


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
