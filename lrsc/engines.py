"""Executors that run a sweep's work units: in this process, in local worker processes,
on a Dask cluster, or as SLURM job arrays (submitit).

Every engine is a :class:`concurrent.futures.Executor` (``submit(fn, *args) -> Future``)
that also tells the sweep which errors mean "the worker was lost" (worth a retry) and
how many units to keep in flight. The sweep (``lrsc.sweep``) decides what to run; this
module only makes executors.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from lrsc.errors import ConfigError

ENGINES = ("local", "dask", "slurm")
SLURM_MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001: larger arrays are submitted in chunks
POLL_S = 1.0  # seconds between checks of submitted SLURM jobs
UNWIND_S = 10.0  # seconds a stopped local worker has to clean up (release claims, remove temporaries) before a kill


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each SLURM job (one job-array task per work unit)."""

    partition: str | None = None  # SLURM partition; None: the cluster's default
    time_min: int = 60  # wall-clock limit of one unit, minutes
    gpus: int = 0  # GPUs per job
    cpus: int = 1  # CPU cores per job
    folder: str | None = None  # submitit's logs and pickles (on a shared filesystem); None: <out>/slurm
    cluster: str = "slurm"  # submitit's cluster; "local" (a process per job) and "debug" are for tests

    def __post_init__(self) -> None:
        for flag, value, least in (("time", self.time_min, 1), ("cpus", self.cpus, 1), ("gpus", self.gpus, 0)):
            if value < least:
                raise ConfigError(f"--slurm-{flag} must be at least {least}, got {value}")


class Engine(Executor):
    """A ``concurrent.futures.Executor`` plus what the sweep needs to drive it."""

    lost_errors: tuple[type[BaseException], ...] = ()  # the worker was lost, not the run: retry the unit
    in_flight: int | None = None  # most units submitted at a time (None: all at once)
    shared_fate = False  # one lost worker loses every unit in flight (so the culprit is not known)
    in_process = False  # units run in this process (they share its registries and can report progress)

    def submit_all(self, fn: Callable, arg_lists: Sequence[tuple]) -> list[Future]:
        """``[submit(fn, *args) for args in arg_lists]``; SLURM submits them as job arrays."""
        return [self.submit(fn, *args) for args in arg_lists]

    def __exit__(self, exc_type, exc, tb) -> None:
        # leaving on an error (Ctrl-C included) cancels what has not started instead of waiting for it
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)


class InProcess(Engine):
    """Runs each unit in the calling process at submit time (one worker: no start-up cost).

    Exceptions go into the future, except ``KeyboardInterrupt`` and the like, which stop the sweep.
    """

    in_flight = 1
    in_process = True

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:
            future.set_exception(e)
        return future


def _init_worker(counter: Any, threads: int, gpus: int, parent: int) -> None:
    # Runs first in each worker process: its share of the CPU threads, and one GPU chosen
    # round-robin by start order, set before anything initialises CUDA in this process.
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group: only the sweep's process acts on it, and stops the
    # workers with SIGTERM, on which a worker unwinds (its claims released, no temporary file left)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _unwind)
    # workers show no bars; a thread lock keeps tqdm from making a process-shared semaphore, which a
    # worker stopped mid-unit would leave registered (a "leaked semaphore" warning at the sweep's exit)
    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_exit_with, args=(parent,), name="lrsc-watchdog", daemon=True).start()


def _unwind(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise SystemExit(1)


def _exit_with(parent: int) -> None:
    """End this worker once the sweep's process ``parent`` is gone (killed, even with SIGKILL):
    a worker must not train on, holding memory and claims, for a sweep nobody drives."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


class LocalProcesses(Engine):
    """``workers`` processes on this machine (forkserver: torch is imported once, in the server).

    Each worker gets ``max(1, cores // workers)`` torch threads and, when ``gpus`` > 0, one GPU
    (``CUDA_VISIBLE_DEVICES``, round-robin). A worker that dies breaks a ProcessPoolExecutor for
    good; the next ``submit`` then starts a fresh pool.
    """

    lost_errors = (BrokenProcessPool,)
    shared_fate = True  # a dead worker breaks the whole pool

    def __init__(self, workers: int, gpus: int = 0):
        self.in_flight = workers
        self._workers, self._gpus = workers, gpus
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["lrsc.units"])
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        threads = max(1, (os.cpu_count() or 1) // self._workers)
        return ProcessPoolExecutor(self._workers, mp_context=self._context, initializer=_init_worker,
                                   initargs=(self._context.Value("i", 0), threads, self._gpus, os.getpid()))

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:  # leaving on an error or an interrupt: stop the units running now too
            processes = list((self._pool._processes or {}).values())  # the pool keeps no public handle
            for process in processes:
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)  # an unwound worker is then told to exit
            deadline = time.monotonic() + UNWIND_S
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
            wait = True  # the pool's queues and locks are released only once it has joined its workers
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class DaskCluster(Engine):
    """Tasks on a Dask cluster: the one at ``scheduler``, or a new ``LocalCluster`` of ``workers``
    single-threaded processes. With ``gpu``, each task asks for the resource ``GPU: 1``
    (start workers with ``--resources GPU=1``)."""

    def __init__(self, workers: int, scheduler: str | None = None, gpu: bool = False):
        from distributed import Client, KilledWorker, LocalCluster
        from distributed.comm.core import CommClosedError

        self.lost_errors = (KilledWorker, CommClosedError)
        resources = {"GPU": 1} if gpu else None
        self._cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                            resources=resources)
        try:
            self._client = Client(scheduler or self._cluster)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
        # pure=False: a resubmitted unit must run again, not return the lost task's key
        self._executor = self._client.get_executor(pure=False, resources=resources)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class Slurm(Engine):
    """SLURM jobs through submitit, one job-array task per unit; a thread polls the jobs and
    completes their futures. A job that ended without a result (preempted, killed, out of
    time) raises ``UncompletedJobError``, which the sweep retries."""

    def __init__(self, options: SlurmOptions, folder: str | Path):
        import submitit
        from submitit.core.utils import UncompletedJobError

        self.lost_errors = (UncompletedJobError,)
        self._executor = submitit.AutoExecutor(folder=options.folder or folder, cluster=options.cluster)
        params: dict[str, Any] = {"name": "lrsc", "timeout_min": options.time_min, "cpus_per_task": options.cpus,
                                  "gpus_per_node": options.gpus}
        if options.partition:
            params["slurm_partition"] = options.partition
        self._executor.update_parameters(**params)
        self._jobs: list[tuple[Any, Future]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="lrsc-slurm-poll", daemon=True)
        self._poller.start()

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        return self.submit_all(fn, [args])[0]

    def submit_all(self, fn: Callable, arg_lists: Sequence[tuple]) -> list[Future]:
        futures = []
        for start in range(0, len(arg_lists), SLURM_MAX_ARRAY):
            chunk = arg_lists[start:start + SLURM_MAX_ARRAY]
            jobs = self._executor.map_array(fn, *zip(*chunk))
            with self._lock:
                for job in jobs:
                    futures.append(Future())
                    self._jobs.append((job, futures[-1]))
        return futures

    def _poll(self) -> None:
        gone: dict[str, int] = {}  # polls in a row at which SLURM no longer knew an unfinished job
        while not self._stop.wait(POLL_S):
            finished, waiting, lost = [], [], []
            with self._lock:
                for job, future in self._jobs:
                    gone[job.job_id] = gone.get(job.job_id, 0) + 1 if not job.done() and _vanished(job) else 0
                    (finished if job.done() else lost if gone[job.job_id] >= 3 else waiting).append((job, future))
                self._jobs = waiting
            for job, future in finished:
                try:
                    future.set_result(job.result())
                except Exception as e:
                    future.set_exception(e)
            for job, future in lost:
                future.set_exception(self.lost_errors[0](f"SLURM job {job.job_id} ended without a result"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                for job, _ in self._jobs:
                    job.cancel(check=False)
        self._stop.set()
        self._poller.join()


def _vanished(job: Any) -> bool:
    """Whether a job submitit sees no end of has left SLURM's queue: on a cluster without accounting
    ``sacct`` answers nothing, submitit keeps the state UNKNOWN, and a job that ends without a
    result (cancelled, killed, out of time) would otherwise look pending forever."""
    if job.state != "UNKNOWN":
        return False
    try:
        queue = subprocess.run(["squeue", "--noheader", "--format=%i", "--jobs", str(job.job_id)], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return not queue.stdout.strip()


def check_options(engine: str, workers: int, scheduler: str | None = None) -> None:
    """Raise ConfigError for an unknown engine, a worker count below 1, or a misplaced option."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if scheduler and engine != "dask":
        raise ConfigError(f"--scheduler is for --engine dask, not --engine {engine}")
    package = {"dask": ("distributed", "dask"), "slurm": ("submitit", "slurm")}.get(engine)
    if package:
        try:
            __import__(package[0])
        except ImportError:
            raise ConfigError(f"--engine {engine} needs {package[0]}: pip install 'lrsc[{package[1]}]'") from None


def uses_gpu(device: str) -> bool:
    """Whether runs on ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...) train on a GPU, as seen from here."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def make_executor(engine: str = "local", workers: int = 1, *, device: str = "auto", scheduler: str | None = None,
                  slurm: SlurmOptions | None = None, folder: str | Path = "slurm") -> Engine:
    """An executor for ``engine``; use it as a context manager so that it is shut down.

    local: ``workers`` processes (1: this process), each pinned to one GPU when ``device`` is
    ``auto`` or ``cuda`` and GPUs exist (an explicit ``cuda:N`` is left alone). dask: the
    cluster at ``scheduler``, else a LocalCluster of ``workers``. slurm: job arrays with
    ``slurm`` resources, submitit's files under ``slurm.folder`` or ``folder``.
    """
    check_options(engine, workers, scheduler)
    if engine == "dask":
        return DaskCluster(workers, scheduler, gpu=uses_gpu(device))
    if engine == "slurm":
        slurm = slurm or SlurmOptions()
        if slurm.cluster == "slurm" and not shutil.which("sbatch"):
            raise ConfigError("--engine slurm: sbatch not found; run the sweep from a SLURM login node")
        return Slurm(slurm, folder)
    if workers == 1:
        return InProcess()
    return LocalProcesses(workers, gpus=torch.cuda.device_count() if device in ("auto", "cuda") else 0)
