"""The run store: every run is trained once and kept under ``<results>/runs/``, shared by every sweep.

A run is addressed by its hash (:func:`lrsc.config.run_hash`, the settings that differ from
the defaults, normalised). The store holds, per run:

- ``<hash>.nc``: its results (every variable of ``lrsc.variables``), as netCDF;
- ``<hash>.pt``: its trained weights (a state dict);
- ``<hash>.json``: its *record*, written last: the status (``done``, ``diverged`` or
  ``failed``), the run's config, a SHA-256 checksum of each file, and where, how and with what
  it ran (provenance). A run is finished exactly when its record says so and its files match
  their checksums; anything else (a truncated or overwritten file, a record that cannot be
  read) is *damaged* and is moved aside and trained again by the next sweep;
- ``<hash>.claim``, while a process trains it: created exclusively (``O_CREAT | O_EXCL``,
  atomic on local and NFS filesystems), holding its owner (host, pid, start time, sweep).
  Its owner touches it every :data:`HEARTBEAT_S` seconds; a claim whose owner is a process of
  this host that is gone, or that has not been touched for :data:`STALE_AFTER_S` seconds, is
  *stale* and may be taken over. Two sweeps on one store therefore never train a run twice.

Every file is written to a temporary name and renamed into place, so a reader sees either a
finished file or none. This module imports neither torch nor xarray: ``lrsc status`` reads a
store in well under a second.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from lrsc.errors import ConfigError

FINISHED = ("done", "diverged")  # the statuses of a run with results
STATUSES = ("pending", "running", "stale", "done", "diverged", "failed", "damaged")
STATUS_DEFINITION = ("pending (not run yet), running (claimed by a live process), stale (claimed by a process that "
                     "is gone), done, diverged, failed (raised; NaN variables, False flags, 0 steps) or damaged (its "
                     "stored files do not match their checksums; the next sweep trains it again)")
HEARTBEAT_S = 30.0  # how often a training process touches its claims
STALE_AFTER_S = 600.0  # a claim not touched for this long is stale, whatever host wrote it
MARK = ".lrsc-store"  # marks a folder as a run store (format version inside)
FORMAT = 2


@contextmanager
def atomic(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block has written it, rename it onto ``path``.

    Expected failures (no permission, a full disk) become a ConfigError naming the path, and
    leave nothing behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except PermissionError:
        raise ConfigError(f"cannot write {path}: permission denied; choose an output folder you can write to") from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ConfigError(f"cannot write {path}: the disk is full; free space and run the same command again "
                              f"(finished runs are kept)") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic(path) as tmp:
        tmp.write_text(text)


def checksum(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or cannot be read as JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class State:
    """Where one run stands: ``status`` (one of :data:`STATUSES`), its record (``{}`` when none
    can be read), why it is damaged (``problem``), and the claim's owner while it is claimed."""

    status: str
    record: dict
    problem: str = ""
    owner: dict | None = None


class RunStore:
    """The run store in folder ``root`` (see the module docstring); created on first write."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, run_hash: str, kind: str) -> Path:
        """The file of ``kind`` (``nc``, ``pt``, ``json``, ``claim``) of run ``run_hash``."""
        return self.root / f"{run_hash}.{kind}"

    # ----- state -----

    def state(self, run_hash: str, verify: bool = True) -> State:
        """Where run ``run_hash`` stands; with ``verify``, finished files are checked against their checksums."""
        record_path = self.path(run_hash, "json")
        record = read_json(record_path)
        if record_path.exists() and not (isinstance(record, dict) and record.get("status") in (*FINISHED, "failed")):
            return State("damaged", {}, f"{record_path.name} is not a run record")
        record = record or {}
        if record.get("status") in FINISHED:
            problem = self._files_problem(run_hash, record) if verify else ""
            return State("damaged", record, problem) if problem else State(record["status"], record)
        owner = self.owner(run_hash)
        if owner is not None:
            return State("stale" if self.stale(run_hash, owner) else "running", record, owner=owner)
        return State(record.get("status", "pending"), record)

    def _files_problem(self, run_hash: str, record: dict) -> str:
        files = record.get("files")
        if not isinstance(files, dict) or set(files) != {"nc", "pt"}:
            return "its record lists no checksums (written by an older lrsc)"
        for kind, expected in files.items():
            path = self.path(run_hash, kind)
            if not path.is_file():
                return f"{path.name} is missing"
            stat = path.stat()
            if stat.st_size != expected.get("bytes"):
                return f"{path.name} does not match its checksum (truncated or overwritten)"
            # a file untouched since it was stored (same size and modification time) needs no rehashing:
            # that keeps status and sweep starts fast on stores of large weights
            if stat.st_mtime_ns != expected.get("mtime_ns") and checksum(path) != expected.get("sha256"):
                return f"{path.name} does not match its checksum (truncated or overwritten)"
        return ""

    def finished(self, run_hash: str) -> bool:
        return self.state(run_hash).status in FINISHED

    # ----- writing a run -----

    def commit(self, run_hash: str, write_results: Callable[[Path], None], write_weights: Callable[[Path], None],
               record: dict) -> dict:
        """Store a finished run: its weights, then its results, then the record with both files'
        checksums (the record makes the run finished). Returns the record written."""
        files = {}
        for kind, write in (("pt", write_weights), ("nc", write_results)):
            path = self.path(run_hash, kind)
            with atomic(path) as tmp:
                write(tmp)
            stat = path.stat()
            files[kind] = {"sha256": checksum(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        record = {**record, "hash": run_hash, "files": files}
        self.write_record(run_hash, record)
        return record

    def write_record(self, run_hash: str, record: dict) -> None:
        self.mark()
        write_text(json.dumps(record, indent=1, sort_keys=True), self.path(run_hash, "json"))

    def set_aside(self, run_hash: str, why: str) -> list[Path]:
        """Rename a run's files to ``<name>.<why>`` (kept for inspection) so that it is trained again."""
        moved = []
        for kind in ("nc", "pt", "json"):
            path = self.path(run_hash, kind)
            if path.exists():
                os.replace(path, path.with_name(f"{path.name}.{why}"))
                moved.append(path.with_name(f"{path.name}.{why}"))
        return moved

    def mark(self) -> None:
        """Mark the folder as a run store (so that older sweep folders are told apart)."""
        if not (self.root / MARK).exists():
            write_text(json.dumps({"format": FORMAT}), self.root / MARK)

    # ----- claims -----

    def claim(self, run_hash: str, sweep: str = "") -> dict | None:
        """Claim run ``run_hash`` for this process; returns None when claimed, else the owner that
        holds it. A stale claim is taken over."""
        path = self.path(run_hash, "claim")
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "sweep": sweep}
        for _ in range(3):
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner(run_hash) or {}
                if not self.stale(run_hash, owner):
                    return owner
                try:  # only one of several contenders renames it away
                    os.replace(path, path.with_name(f"{path.name}.stale.{os.getpid()}"))
                    path.with_name(f"{path.name}.stale.{os.getpid()}").unlink()
                except FileNotFoundError:
                    pass
                continue
            except PermissionError:
                raise ConfigError(f"cannot write in the run store {self.root}: permission denied") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return None
        return self.owner(run_hash) or {}

    def owner(self, run_hash: str) -> dict | None:
        """The claim's owner record (``{}`` while it is being written), or None when unclaimed."""
        path = self.path(run_hash, "claim")
        if not path.exists():
            return None
        owner = read_json(path)
        return owner if isinstance(owner, dict) else {}

    def stale(self, run_hash: str, owner: dict) -> bool:
        """Whether the claim was left by a process of this host that is gone, or not touched for
        :data:`STALE_AFTER_S` seconds."""
        try:
            age = time.time() - self.path(run_hash, "claim").stat().st_mtime
        except FileNotFoundError:
            return True
        if age > STALE_AFTER_S:
            return True
        if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
            return False
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self, run_hash: str) -> None:
        """Drop this process's claim on ``run_hash`` (if it holds it)."""
        owner = self.owner(run_hash)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path(run_hash, "claim").unlink(missing_ok=True)

    @contextmanager
    def heartbeat(self, hashes: list[str]) -> Iterator[None]:
        """Touch the claims of ``hashes`` every :data:`HEARTBEAT_S` seconds while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                for h in hashes:
                    try:
                        os.utime(self.path(h, "claim"))
                    except OSError:
                        pass  # released already

        thread = threading.Thread(target=beat, name="lrsc-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def default_store(out: str | Path) -> Path:
    """The store a sweep folder uses unless told otherwise: ``runs/`` beside it, shared by every
    sweep folder under the same results folder."""
    return Path(out).resolve().parent / "runs"
