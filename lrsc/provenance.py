"""Where a result came from: versions, the code's git commit, the machine and how the run was trained.

Each finished run's record carries :func:`provenance`; ``collect`` keeps it beside the results
(the ``provenance`` group of ``results.nc``), so a number can always be traced to the code
and the machine that produced it.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

import lrsc

# The provenance fields, with their CF units and long names, in the order collect stores them.
FIELDS = {
    "lrsc_version": ("1", "lrsc version"),
    "torch_version": ("1", "torch version"),
    "python_version": ("1", "Python version"),
    "git_commit": ("1", "git commit of the lrsc source (empty outside a repository)"),
    "git_dirty": ("1", "the source had uncommitted changes"),
    "host": ("1", "host that trained the run"),
    "pid": ("1", "process that trained the run"),
    "device": ("1", "device the run trained on"),
    "threads": ("1", "torch intra-op CPU threads the run trained and was evaluated with (lrsc.worker.THREADS)"),
    "training_path": ("1", "training path: stacked kernel, or one model with autograd"),
    "wall_time_s": ("s", "wall-clock time of training and evaluation"),
    "fit_step": ("1", "step at which the stopping criterion was met (steps, if never)"),
    "finished": ("s", "when the run finished, seconds since 1970-01-01 UTC"),
}


@lru_cache(maxsize=1)
def _git() -> tuple[str, bool]:
    """The commit of the lrsc source tree and whether it has uncommitted changes (``""``, False outside git)."""
    source = Path(lrsc.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode:
            return "", False
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "", False


def provenance(device: str, training_path: str, wall_time_s: float, fit_step: int) -> dict:
    """The provenance record of a run trained in this process (see :data:`FIELDS`)."""
    import time

    import torch

    commit, dirty = _git()
    return {"lrsc_version": lrsc.__version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "git_commit": commit, "git_dirty": dirty,
            "host": socket.gethostname(), "pid": os.getpid(), "device": device, "threads": torch.get_num_threads(),
            "training_path": training_path, "wall_time_s": wall_time_s, "fit_step": fit_step,
            "finished": time.time()}
