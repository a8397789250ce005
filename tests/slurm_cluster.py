"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd from the Debian
packages (``apt-get install slurmctld slurmd slurm-client munge``), started on this machine from a
generated ``slurm.conf`` under a temporary folder, and stopped again with everything they started.

    cluster = start_cluster(tmp_dir)   # raises ClusterUnavailable (the reason) when it cannot start
    try:
        ...                            # sbatch, squeue, submitit's SlurmExecutor use this cluster
    finally:
        cluster.stop()

While it runs, ``SLURM_CONF`` points at its config and its ``bin`` folder leads ``PATH`` in
``os.environ``: the SLURM commands that submitit runs as subprocesses inherit both, and so do the
jobs (sbatch exports the submitter's environment by default).

There is no accounting database (slurmdbd needs MySQL), so the real ``sacct`` only says "Slurm
accounting storage is disabled". submitit's job watcher asks ``sacct`` for job states; without an
answer a finished job is still seen once its result file exists, but a job that ends without one
(cancelled, killed, out of time) would look pending forever. The cluster's ``bin/sacct`` answers
submitit's one query (``sacct -o JobID,State,NodeList --parsable2 -j ID ...``) from slurmctld
itself, through ``squeue --states=all``, which keeps ended jobs for ``MinJobAge`` seconds.

Needs root: slurmd starts every job's processes and is not meant to run as another user.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "srun", "squeue", "sinfo", "scancel")
INSTALL = "apt-get install slurmctld slurmd slurm-client munge"
KILL_WAIT_S = 5  # slurmd's SIGTERM-to-SIGKILL grace for cancelled jobs (SLURM's default is 30)
MAX_ARRAY_SIZE = 4  # job arrays of at most 4 tasks (SLURM's default: 1001), so that a few units fill two

SACCT = """#!/bin/sh
# Stands in for sacct on this cluster without accounting storage (see tests/slurm_cluster.py):
# answers submitit's `sacct -o JobID,State,NodeList --parsable2 -j ID ...` from slurmctld.
jobs=""
while [ $# -gt 0 ]; do
    case "$1" in
        -j|--jobs) jobs="$jobs${jobs:+,}$2"; shift 2 ;;
        *) shift ;;
    esac
done
echo "JobID|State|NodeList"
exec squeue --noheader --array --states=all --format='%i|%T|%N' ${jobs:+--jobs="$jobs"}
"""


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here; the message says why (for a test skip)."""


@dataclass
class Cluster:
    """A running cluster; :meth:`stop` ends it (also as a context manager)."""

    root: Path  # config, state, spool and logs
    node: str
    partition: str = PARTITION
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def log_tail(self, daemon: str, lines: int = 1) -> str:
        """The last ``lines`` lines a daemon wrote (its stderr holds the errors from before its log opens)."""
        path = self.root / "log" / f"{daemon}.stderr"
        text = path.read_text(errors="replace").strip() if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def _export(self) -> None:
        self._saved_env = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
        os.environ["SLURM_CONF"] = str(self.conf)
        os.environ["PATH"] = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

    def _unexport(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def stop(self) -> None:
        """Cancel the jobs, stop the daemons, then kill anything of this cluster that is left."""
        if self.daemons.get("slurmctld") and self.daemons["slurmctld"].poll() is None:
            # slurmstepd and the jobs are not the daemons' children (each starts its own session):
            # cancel the jobs and let slurmd end them (SIGTERM, then SIGKILL after KillWait)
            env = {**os.environ, "SLURM_CONF": str(self.conf)}
            jobs = _run(["squeue", "--noheader", "--format=%A"], env).split()
            if jobs:
                _run(["scancel", *jobs], env)
                deadline = time.time() + KILL_WAIT_S + 5
                while _strays(self.root, self.conf) and time.time() < deadline:
                    time.sleep(0.1)
        for name in reversed(DAEMONS):  # munged last: the others talk to it until they exit
            proc = self.daemons.pop(name, None)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for pid in _strays(self.root, self.conf):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._unexport()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(tmp_dir: str | Path, timeout_s: float = 30.0) -> Cluster:
    """Start munged, slurmctld and slurmd under ``tmp_dir`` and wait until the node is idle.

    Raises :class:`ClusterUnavailable` (with the reason, and nothing left running) when SLURM is
    not installed, this is not root, or a daemon does not come up within ``timeout_s``.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # daemons live in sbin
    missing = [name for name in DAEMONS + COMMANDS if not shutil.which(name, path=search)]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} not installed: {INSTALL}")
    if os.geteuid() != 0:
        raise ClusterUnavailable("a SLURM test cluster needs root (slurmd starts the jobs' processes)")

    root = Path(tmp_dir).resolve()
    for sub in ("bin", "log", "munge", "state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    node = socket.gethostname().split(".")[0]  # `hostname -s`: the name slurmd looks itself up by
    _write_config(root, node)
    cluster = Cluster(root=root, node=node)
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    env = {**os.environ, "SLURM_CONF": str(cluster.conf), "PATH": path}
    try:
        munge = root / "munge"
        # --force: munged refuses a socket in a folder others cannot enter (pytest's tmp folders are
        # 0700); only root's processes use this socket, so that check does not apply here
        _spawn(cluster, "munged", ["munged", "--foreground", "--force", f"--key-file={munge / 'munge.key'}",
                                   f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
                                   f"--seed-file={munge / 'munged.seed'}", f"--log-file={munge / 'munged.log'}"], env)
        _wait(cluster, "munged", lambda: (munge / "munge.socket").exists(), timeout_s)
        _spawn(cluster, "slurmctld", ["slurmctld", "-D", "-c"], env)  # -c: no jobs from a reused folder
        _spawn(cluster, "slurmd", ["slurmd", "-D", "-N", node], env)
        sinfo = ["sinfo", "--noheader", "--nodes", node, "--format=%T"]
        _wait(cluster, "slurmd", lambda: _run(sinfo, env).strip() == "idle", timeout_s)
    except BaseException:
        cluster.stop()
        raise
    cluster._export()
    return cluster


def job_probe(x: int) -> dict:
    """For a job to run: x squared, the job's SLURM id as submitit names it, and the lrsc it imports.
    Here, not in a test module, so that the job imports no torch to unpickle it."""
    import lrsc

    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job_id = env.get("SLURM_JOB_ID", "")
    return {"square": x * x, "job_id": job_id, "lrsc": lrsc.__file__}


def die_first(unit: list, store_root: str, *args) -> list:
    """``lrsc.worker.execute`` for a job to run, except that the first job to call it anywhere
    exits at once, without a result, as a job whose node died (the others train their unit)."""
    from lrsc.worker import execute

    marker = Path(store_root) / "died-once"
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return execute(unit, store_root, *args)
    os._exit(1)


@dataclass(frozen=True)
class Task:
    """One job or job-array task as slurmctld records it (``squeue --states=all``)."""

    array: int  # the array's job id (a plain job's own id)
    index: int | None  # the task's index in its array (None for a plain job)
    state: str  # COMPLETED, FAILED, ...
    cpus: int  # CPU cores it asked for
    memory: str  # memory it asked for, as squeue writes it (1G, 0: none asked for)
    time_limit: str  # its time limit, as squeue writes it (5:00)


def tasks(after: int = 0) -> list[Task]:
    """Every job and array task of jobs named ``lrsc`` submitted after job id ``after``, by array and index."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--name=lrsc",
                          "--format=%F|%K|%T|%C|%m|%l"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        array, index, state, cpus, memory, limit = line.strip().split("|")
        if int(array) > after:
            found.append(Task(int(array), None if index == "N/A" else int(index), state, int(cpus), memory, limit))
    return sorted(found, key=lambda t: (t.array, -1 if t.index is None else t.index))


def last_job_id() -> int:
    """The highest job id slurmctld knows (0 when none)."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%F"], capture_output=True, text=True,
                         check=True).stdout.split()
    return max(map(int, out), default=0)


def _write_config(root: Path, node: str) -> None:
    munge_key = root / "munge" / "munge.key"
    if not munge_key.exists():
        # a key of this cluster's own, not the packaged /etc/munge/munge.key: that one belongs to
        # the munge user, and munged, running as root here, refuses a key file root does not own
        munge_key.write_bytes(secrets.token_bytes(128))
    munge_key.chmod(0o600)  # munged refuses a key that others can read
    sacct = root / "bin" / "sacct"
    sacct.write_text(SACCT)
    sacct.chmod(0o755)
    (root / "plugstack.conf").write_text("")  # not the system's /etc/slurm/plugstack.conf
    ctld_port, slurmd_port = _free_ports(2)
    settings = {
        "ClusterName": "lrsctest",
        # 127.0.0.1: the node name need not resolve (nor its address reach the network)
        "SlurmctldHost": f"{node}(127.0.0.1)",
        "SlurmctldPort": ctld_port,  # free ports, not 6817/6818: a real SLURM here is left alone
        "SlurmdPort": slurmd_port,
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",  # this cluster's munged, not /run/munge's
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",  # slurmstepd logs here too
        "PlugStackConfig": root / "plugstack.conf",
        "MailProg": "/bin/true",  # no mail; the packaged default is not installed
        # without systemd or a delegated cgroup tree: track job processes through /proc, bind none
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",  # no slurmdbd (see bin/sacct)
        "JobCompType": "jobcomp/none",
        "MpiDefault": "none",
        # one job per CPU, memory not scheduled (jobs need not ask for any)
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "SchedulerType": "sched/backfill",
        # start a submitted batch job within a second, not up to 3 s later (SLURM's default delay
        # lets a busy controller batch its scheduling, which tests do not need)
        "SchedulerParameters": "batch_sched_delay=0",
        "ReturnToService": 2,  # the node is idle as soon as slurmd registers
        "SlurmdParameters": "config_overrides",  # take the node line as is, whatever the hardware
        "KillWait": KILL_WAIT_S,
        "MinJobAge": 600,  # ended jobs stay visible to squeue (and bin/sacct) this long
        "MaxArraySize": MAX_ARRAY_SIZE,
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    # two CPUs: a two-task job array runs at once; a small RealMemory passes on any machine
    lines.append(f"NodeName={node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1024 State=UNKNOWN")
    lines.append(f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP")
    (root / "slurm.conf").write_text("\n".join(lines) + "\n")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:  # all bound at once, so the ports differ
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _spawn(cluster: Cluster, name: str, argv: list[str], env: dict[str, str]) -> None:
    stderr = (cluster.root / "log" / f"{name}.stderr").open("ab")
    with stderr:  # the child keeps its own copy
        cluster.daemons[name] = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stderr,
                                                 stderr=stderr, cwd=cluster.root)


def _wait(cluster: Cluster, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while not ready():
        dead = [n for n, p in cluster.daemons.items() if p.poll() is not None]
        if dead:
            raise ClusterUnavailable(f"{dead[0]} exited ({cluster.daemons[dead[0]].returncode}): "
                                     f"{cluster.log_tail(dead[0])}")
        if time.time() > deadline:
            raise ClusterUnavailable(f"{name} did not come up in {timeout_s:.0f} s: {cluster.log_tail(name)}")
        time.sleep(0.1)


def _run(argv: list[str], env: dict[str, str]) -> str:
    """stdout of a SLURM command, or "" when it fails (as it does while slurmctld starts)."""
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _strays(root: Path, conf: Path) -> list[int]:
    """Processes of this cluster outside this process's tree (slurmstepd, the jobs): those with a
    file or folder under ``root`` open, or started with ``SLURM_CONF`` = ``conf``. This process's
    own tree is left out: what it started while SLURM_CONF was set carries it too, and the
    daemons are stopped through their handles."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ours = {os.getpid()}
    while True:  # descendants
        new = {p for p, parent in parents.items() if parent in ours} - ours
        if not new:
            break
        ours |= new
    pid = os.getpid()
    while pid in parents and pid > 1:  # ancestors
        pid = parents[pid]
        ours.add(pid)
    marker = f"SLURM_CONF={conf}".encode()
    found = []
    for pid in parents.keys() - ours:
        proc = Path("/proc") / str(pid)
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting for init to reap it
            links = [os.readlink(proc / "cwd")] + [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or a kernel thread
        if marker in environ or any(link == str(root) or link.startswith(f"{root}/") for link in links):
            found.append(pid)
    return found
