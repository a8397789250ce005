"""Benchmark results kept between book builds: a JSON file that says where and how they were
measured, reused only by a build that would measure the same thing on the same machine."""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

import torch

import lrsc
from lrsc.store import write_text

FORMAT = 2  # raised whenever the summary's keys change, so an older record is measured again


def identity(quick: bool, threads: int | None, repeats: int) -> dict:
    """What a stored result must match to stand for a new run: the record format, the lrsc
    version, this host's name and CPU count, the torch threads the run uses (``threads``, else
    torch's default), the quick flag and the repeats."""
    return {"format": FORMAT, "lrsc_version": lrsc.__version__, "host": socket.gethostname(), "cpus": os.cpu_count(),
            "threads": threads or torch.get_num_threads(), "quick": bool(quick), "repeats": repeats}


def load(path: str | Path, want: dict) -> dict | None:
    """The record stored at ``path`` (``identity``, ``measured_at``, ``rows``, ``summary``) when
    its identity is ``want``; None when there is none, it is unreadable, or it differs."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("identity") != want:
        return None
    return record if {"measured_at", "rows", "summary"} <= record.keys() else None


def save(path: str | Path, want: dict, rows: list[dict], summary: dict) -> dict:
    """Store ``rows`` and ``summary`` at ``path`` with identity ``want`` and the time now (UTC,
    ISO 8601, to the second); returns the record."""
    path = Path(path)
    record = {"identity": want, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "summary": summary, "rows": rows}
    write_text(json.dumps(record, indent=1), path)  # a build stopped mid-write leaves the old file
    return record
