"""Executors that run a sweep's work units: in this process, in local worker processes,
on a Dask cluster, or as SLURM job arrays (submitit).

Every engine is a :class:`concurrent.futures.Executor` (``submit(fn, *args) -> Future``)
that also tells the sweep which errors mean "the worker was lost" (worth a retry) and
how many units to keep in flight. The sweep (``lrsc.sweep``) decides what to run; this
module only makes executors.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from lrsc.errors import ConfigError, EngineError
from lrsc.settings import coerce

ENGINES = ("local", "dask", "slurm")
SLURM_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize (task indices 0 to 1000), where scontrol does not say
POLL_S = 1.0  # seconds between checks of submitted SLURM jobs
RESULT_READERS = 32  # threads reading ended SLURM tasks' results
PENDING_CHECK_S = 30.0  # seconds between looks at why SLURM keeps the sweep's jobs pending
# Reasons SLURM gives for keeping a job pending that no wait ends: the job asks for more than the partition offers.
HOPELESS = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints")
# What a SLURM job can ask for: the least value of each, and the --slurm-* option that sets it.
RESOURCE_KEYS = {"gpus": (0, "--slurm-gpus"), "cpus": (1, "--slurm-cpus"), "mem_gb": (1, "--slurm-mem"),
                 "time_min": (1, "--slurm-time")}
DEFAULT_RESOURCES = {"gpus": 0, "cpus": 1, "time_min": 60}  # of a model that declares none; memory: the partition's
log = logging.getLogger("lrsc")


def check_resources(values: Mapping[str, Any] | None, where: str) -> dict[str, int | float]:
    """``values`` (keys of :data:`RESOURCE_KEYS`) checked and typed: GPUs, CPU cores and minutes as
    integers, memory in GB as a number; raises ConfigError naming ``where`` and the key."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must map {', '.join(RESOURCE_KEYS)} to numbers, got {values!r}")
    out = {}
    for key, value in values.items():
        if key not in RESOURCE_KEYS:
            raise ConfigError(f"unknown key {where}.{key}; valid keys: {', '.join(RESOURCE_KEYS)}")
        value = coerce(f"{where}.{key}", value, 1.0 if key == "mem_gb" else 1)
        least = RESOURCE_KEYS[key][0]
        if value < least:
            raise ConfigError(f"{where}.{key} must be at least {least}, got {value}")
        out[key] = value
    return out
UNWIND_S = 10.0  # seconds a stopped local worker has to clean up (release claims, remove temporaries) before a kill


@dataclass(frozen=True)
class SlurmOptions:
    """Where the SLURM jobs of a sweep go and what each asks for (one job-array task per work
    unit). A resource left None here is the sweep's (see :meth:`for_sweep`)."""

    partition: str | None = None  # SLURM partition; None: the cluster's default
    gpus: int | None = None  # GPUs per job
    cpus: int | None = None  # CPU cores per job
    mem_gb: float | None = None  # memory per job, GB (None after for_sweep: the partition's default)
    time_min: int | None = None  # wall-clock limit of one unit, minutes
    folder: str | None = None  # submitit's logs and pickles (on a shared filesystem); None: <out>/slurm
    cluster: str = "slurm"  # submitit's cluster; "local" (a process per job) and "debug" are for tests

    def __post_init__(self) -> None:
        for key, (least, flag) in RESOURCE_KEYS.items():
            value = getattr(self, key)
            if value is not None and value < least:
                raise ConfigError(f"{flag} must be at least {least}, got {value}")

    def for_sweep(self, declared: Mapping[str, Any] | None, by_model: Mapping[str, Mapping]) -> SlurmOptions:
        """These options with every resource filled in: each one not given here is the sweep
        file's ``resources`` (``declared``), else the most that any of the sweep's models asks
        for (``by_model``: name -> :func:`lrsc.models.resources`), else :data:`DEFAULT_RESOURCES`
        (memory: the partition's default). Raises ConfigError for a bad ``resources`` entry."""
        sweep = check_resources(declared, "resources")
        models = [check_resources(values, f"model {name!r} resources") for name, values in by_model.items()]
        filled = {}
        for key in RESOURCE_KEYS:
            most = max((m[key] for m in models if key in m), default=None)
            choices = (getattr(self, key), sweep.get(key), most, DEFAULT_RESOURCES.get(key))
            filled[key] = next((v for v in choices if v is not None), None)
        return replace(self, **filled)


ENGINE_ENV = "LRSC_ENGINE"  # where `lrsc book` tells its chapters' kernels which engine trains their sweeps


@dataclass(frozen=True)
class Choice:
    """Where a sweep's units run and on what device: the engine options of ``lrsc sweep`` and
    ``lrsc book`` (see :func:`make_executor`), as :func:`lrsc.sweep.run_sweep` takes them
    (:meth:`sweep_options`). ``lrsc book`` hands its choice to every chapter's kernel through
    the environment variable :data:`ENGINE_ENV` (:meth:`to_env`, :meth:`from_env`), so that the
    sweeps a chapter makes for itself go through the same engine."""

    engine: str = "local"
    workers: int = 1
    retries: int = 2
    scheduler: str | None = None
    device: str = "auto"
    slurm: SlurmOptions = SlurmOptions()

    def __post_init__(self) -> None:
        check_options(self.engine, self.workers, self.scheduler)
        if self.retries < 0:
            raise ConfigError(f"--retries must be at least 0, got {self.retries}")

    def sweep_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`lrsc.sweep.run_sweep`."""
        return {"engine": self.engine, "workers": self.workers, "retries": self.retries, "scheduler": self.scheduler,
                "device": self.device, "slurm": self.slurm}

    def to_env(self) -> str:
        """This choice as the value of :data:`ENGINE_ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Choice:
        """The choice :data:`ENGINE_ENV` holds; the default (this process, ``auto`` device) where it is unset."""
        given = os.environ.get(ENGINE_ENV)
        if not given:
            return cls()
        values = json.loads(given)
        return cls(**{**values, "slurm": SlurmOptions(**values["slurm"])})


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
    sys.unraisablehook = _unwind_again
    # workers show no bars; a thread lock keeps tqdm from making a process-shared semaphore, which a
    # worker stopped mid-unit would leave registered (a "leaked semaphore" warning at the sweep's exit)
    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_exit_with, args=(parent,), name="lrsc-watchdog", daemon=True).start()


def _unwind(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise SystemExit(1)


def _unwind_again(unraisable: Any) -> None:
    """A SIGTERM that lands while a weakref callback or a ``__del__`` runs raises its SystemExit
    there, where Python cannot propagate it: it prints the traceback and drops it, and the worker
    would train on until killed, its claim and temporary files left behind. Raise it again a
    moment later (SIGALRM), in the code the callback interrupted: a signal raised at once would
    run its handler inside this hook, where Python drops the exception as well."""
    if unraisable.exc_type is SystemExit and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, _unwind)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
    else:
        sys.__unraisablehook__(unraisable)


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
        self._context.set_forkserver_preload(["lrsc.worker"])
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


def local_dask_cluster(workers: int, gpu: bool = False) -> Any:
    """A Dask ``LocalCluster`` of ``workers`` single-threaded worker processes on this machine, each
    offering the resource ``GPU: 1`` with ``gpu`` (what :class:`DaskCluster` asks for then)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, resources={"GPU": 1} if gpu else None)


class DaskCluster(Engine):
    """Tasks on a Dask cluster: the one at ``scheduler``, or a new ``LocalCluster`` of ``workers``
    single-threaded processes. With ``gpu``, each task asks for the resource ``GPU: 1``
    (start workers with ``--resources GPU=1``)."""

    def __init__(self, workers: int, scheduler: str | None = None, gpu: bool = False):
        from distributed import Client, KilledWorker
        from distributed.comm.core import CommClosedError

        self.lost_errors = (KilledWorker, CommClosedError)
        resources = {"GPU": 1} if gpu else None
        self._cluster = None if scheduler else local_dask_cluster(workers, gpu)
        try:
            self._client = Client(scheduler or self._cluster)
        except (OSError, TimeoutError) as e:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
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
    """SLURM job arrays through submitit: each :meth:`submit_all` sends its units as one job
    array, one task per unit (as several arrays when they are more than the cluster's
    ``MaxArraySize``, :func:`max_array_size`), every task asking for the ``options``' resources;
    a thread polls the tasks and completes their futures. A task that ended without a result
    (preempted, killed, out of time) raises ``UncompletedJobError``, which the sweep retries: the
    units it resubmits together go out as a new, smaller array."""

    def __init__(self, options: SlurmOptions, folder: str | Path):
        import submitit
        from submitit.core.utils import FailedJobError, UncompletedJobError

        self.lost_errors = (UncompletedJobError,)
        self._raised = FailedJobError  # the error of a task whose function raised (it did produce output)
        options = options.for_sweep(None, {})  # resources not given: the defaults
        self._cluster = options.cluster
        self.max_array = max_array_size() if options.cluster == "slurm" else SLURM_MAX_ARRAY_SIZE
        self._executor = submitit.AutoExecutor(folder=options.folder or folder, cluster=options.cluster)
        # every task of an array may run at once (submitit's default holds an array to 256 running tasks)
        params: dict[str, Any] = {"name": "lrsc", "timeout_min": options.time_min, "cpus_per_task": options.cpus,
                                  "gpus_per_node": options.gpus, "slurm_array_parallelism": self.max_array}
        if options.mem_gb is not None:
            params["mem_gb"] = options.mem_gb
        if options.partition:
            params["slurm_partition"] = options.partition
        self._executor.update_parameters(**params)
        self._partition = options.partition
        memory = f"{options.mem_gb:g} GB" if options.mem_gb else "the partition's memory"
        self._asks = f"{options.gpus} GPU(s), {options.cpus} CPU core(s), {memory} and {options.time_min} min"
        log.info("SLURM jobs of %s each, in arrays of at most %d tasks", self._asks, self.max_array)
        self._warned: set[str] = set()
        # submitit waits up to 15 s for the result file of a task that ended without one (a slow
        # shared filesystem may show it late): read results beside the poller, many at a time
        self._results = ThreadPoolExecutor(RESULT_READERS, thread_name_prefix="lrsc-slurm-result")
        self._jobs: list[tuple[Any, Future]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="lrsc-slurm-poll", daemon=True)
        self._poller.start()

    def submit(self, fn: Callable, /, *args: Any) -> Future:
        return self.submit_all(fn, [args])[0]

    def submit_all(self, fn: Callable, arg_lists: Sequence[tuple]) -> list[Future]:
        futures = []
        for start in range(0, len(arg_lists), self.max_array):
            chunk = arg_lists[start:start + self.max_array]
            try:
                jobs = self._executor.map_array(fn, *zip(*chunk))  # one sbatch --array (a plain job for one unit)
            except self.lost_errors as e:  # submitit's FailedJobError: sbatch refused the submission
                why = " ".join(str(e).split()) or "no reason given"
                raise EngineError(f"--engine slurm: sbatch refused the sweep's jobs of {self._asks} each ({why}); "
                                  f"ask for what partition {self._partition or '(the default)'} offers with "
                                  f"--slurm-gpus/--slurm-cpus/--slurm-mem/--slurm-time or the sweep file's "
                                  f"resources") from None
            with self._lock:
                for job in jobs:
                    futures.append(Future())
                    self._jobs.append((job, futures[-1]))
        return futures

    def _poll(self) -> None:
        gone: dict[str, int] = {}  # unfinished tasks SLURM no longer knows: for how many polls
        look_at_pending = time.monotonic() + PENDING_CHECK_S
        while not self._stop.wait(POLL_S):
            with self._lock:
                jobs = list(self._jobs)
            done = {job.job_id: job.done() for job, _ in jobs}
            unknown = [job.job_id for job, _ in jobs if not done[job.job_id] and job.state == "UNKNOWN"]
            queued = _squeue(unknown) if unknown else {}
            # polls in a row at which squeue answered without the task (a task seen, or known again, starts over)
            gone = {job_id: gone.get(job_id, 0) + 1 for job_id in unknown if queued is not None and job_id not in queued}
            if self._cluster == "slurm" and time.monotonic() >= look_at_pending:
                look_at_pending = time.monotonic() + PENDING_CHECK_S
                self._warn_if_stuck([job.job_id for job, _ in jobs if not done[job.job_id]])
            finished = [(job, f) for job, f in jobs if done[job.job_id]]
            lost = [(job, f) for job, f in jobs if not done[job.job_id] and gone.get(job.job_id, 0) >= 3]
            with self._lock:
                ended = {id(job) for job, _ in finished + lost}
                self._jobs = [(job, f) for job, f in self._jobs if id(job) not in ended]
            for job, future in finished:
                self._results.submit(self._complete, job, future)
            for job, future in lost:
                future.set_exception(self.lost_errors[0](f"SLURM job {job.job_id} ended without a result"))

    def _complete(self, job: Any, future: Future) -> None:
        """Give ``future`` the result of the ended task ``job``, or why it has none: ``UncompletedJobError``
        when it ended without output (a lost worker, retried), the error of the unit itself when it raised."""
        try:
            future.set_result(job.result())
        except self._raised as e:  # a FailedJobError is an UncompletedJobError too: say it is no lost worker
            future.set_exception(RuntimeError(f"the unit raised in SLURM job {job.job_id}: {e}"))
        except Exception as e:
            future.set_exception(e)

    def _warn_if_stuck(self, job_ids: list[str]) -> None:
        """Say once per reason when SLURM keeps some of ``job_ids`` pending for good: they ask for
        more than the partition offers (e.g. more CPU cores than a node has), and no wait ends it."""
        pending = (_squeue(job_ids, "--states=PENDING") or {}) if job_ids else {}
        for reason in sorted(set(pending.values()) & set(HOPELESS) - self._warned):
            self._warned.add(reason)
            stuck = sorted(job for job, why in pending.items() if why == reason)
            log.warning("SLURM keeps %d of the sweep's jobs (%s%s) pending for %s: each asks for %s, more than "
                        "partition %s offers; stop the sweep (Ctrl-C cancels its jobs) and ask for less with "
                        "--slurm-* or the sweep file's resources", len(stuck), stuck[0],
                        f" and {len(stuck) - 1} more" if len(stuck) > 1 else "", reason, self._asks,
                        self._partition or "(the default)")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                jobs = [job for job, _ in self._jobs]
            if self._cluster != "slurm":
                for job in jobs:
                    job.cancel(check=False)
            elif jobs:  # one scancel for every task still queued or running
                subprocess.run(["scancel", *(str(job.job_id) for job in jobs)], capture_output=True, timeout=60)
        self._stop.set()
        self._poller.join()
        self._results.shutdown(wait=wait and not cancel_futures, cancel_futures=cancel_futures)


def max_array_size() -> int:
    """How many tasks one job array may have here: the cluster's ``MaxArraySize`` (task indices
    run from 0 to one less; 0 disables arrays, and each unit is then a job of its own), read from
    ``scontrol show config``; :data:`SLURM_MAX_ARRAY_SIZE`, SLURM's default, where it does not say."""
    try:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return SLURM_MAX_ARRAY_SIZE
    for line in shown.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(1, int(value))
    return SLURM_MAX_ARRAY_SIZE


def _squeue(job_ids: list[str], *options: str) -> dict[str, str] | None:
    """The tasks of ``job_ids`` (``123_4``, or ``123`` for a plain job) that SLURM's queue holds
    (with ``options``, e.g. ``--states=PENDING``: those of them), each with the reason squeue
    gives for its state, in one call; None when squeue does not answer.

    Also how the engine sees the end of a task that submitit sees no end of: on a cluster
    without accounting ``sacct`` answers nothing, submitit keeps the state UNKNOWN, and a task
    that ends without a result (cancelled, killed, out of time) would otherwise look pending
    forever."""
    try:
        queue = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %r", f"--jobs={','.join(job_ids)}",
                                *options], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if queue.returncode and "Invalid job id" not in queue.stderr:  # squeue's answer when it knows none of them
        return None
    found = {}
    for line in queue.stdout.splitlines():
        job_id, _, reason = line.strip().partition(" ")
        if job_id:
            found[job_id] = reason
    return found


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
            raise EngineError("--engine slurm: sbatch not found; run the sweep from a SLURM login node")
        return Slurm(slurm, folder)
    if workers == 1:
        return InProcess()
    return LocalProcesses(workers, gpus=torch.cuda.device_count() if device in ("auto", "cuda") else 0)
