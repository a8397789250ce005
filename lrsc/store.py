"""The run store: every run is trained once and kept under ``<results>/runs/``, shared by every sweep.

A run is addressed by its hash (:func:`name_of` of the settings :func:`lrsc.config.hashed`
picks: those that differ from the defaults, normalised). The store holds, per run:

- ``<hash>.nc``: its results (every variable of ``lrsc.variables``), as netCDF;
- ``<hash>.pt``: its trained weights (a state dict);
- ``<hash>.json``: its *record*, written last: the status (``done``, ``diverged`` or
  ``failed``), its own hash, the settings that hash covers (``hashed``), the run's fully
  resolved config, the fingerprints of the code that made it (``code``), a SHA-256 checksum of
  each file, and where, how and with what it ran (provenance). A run is finished exactly when
  its record says so, names the hash it is stored under, its hashed settings hash to that name
  and agree with its config, and its files match their checksums; anything else (a truncated,
  overwritten or swapped file, a record that cannot be read) is *damaged* and is moved aside
  and trained again by the next sweep. Checksums are verified every time, except for files
  this process wrote and nothing has touched since (same size and modification time);
- ``<hash>.claim``, while a process trains it: created exclusively (``O_CREAT | O_EXCL``,
  atomic on local and NFS filesystems), holding its owner (host, pid, start time, sweep, and
  the claim's generation). Its owner touches it every :data:`HEARTBEAT_S` seconds; a claim
  whose owner is a process of this host that is gone, that has not been touched for
  :data:`STALE_AFTER_S` seconds, or that is still empty or unreadable after
  :data:`CLAIM_GRACE_S` seconds, is *stale* and may be taken over. A takeover first creates
  the marker ``<hash>.takeover.<generation>.<level>`` exclusively, then checks that the claim
  is still the stale one it saw and replaces it: of several processes taking over one stale
  claim, exactly one wins. Two sweeps on one store therefore never train a run twice.

Every file is written in full in memory, then to a temporary name (``.<name>.<pid>.<thread>.
<host>.tmp``) and renamed into place, so a reader sees either a finished file or none, and a
full disk is a plain write error. A temporary left by a process that was killed is removed
when a sweep next opens the store (:meth:`RunStore.remove_leftovers`). This module imports
neither torch nor xarray: ``lrsc status --quick`` reads a store in well under a second.
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
from typing import Any, Iterator

from lrsc.errors import ConfigError, LrscError

FINISHED = ("done", "diverged")  # the statuses of a run with results
STATUSES = ("pending", "running", "stale", "done", "diverged", "failed", "outdated", "damaged")
STATUS_DEFINITION = ("pending (not run yet), running (claimed by a live process), stale (claimed by a process that "
                     "is gone), done, diverged (ended by a non-finite value, a dead network or a collapse; its "
                     "variables are stored, NaN where undefined), failed (raised; NaN variables, False flags, 0 "
                     "steps), outdated (stored under another config, other code or an older definition of a "
                     "variable than the sweep plans now; the next sweep trains it again or recomputes the variable) "
                     "or damaged (its stored files do not match their checksums or their name; the next sweep "
                     "trains it again)")
HEARTBEAT_S = 30.0  # how often a training process touches its claims
STALE_AFTER_S = 600.0  # a claim not touched for this long is stale, whatever host wrote it
CLAIM_GRACE_S = 10.0  # an owner writes its claim within milliseconds: one still empty after this is stale
HOST = socket.gethostname()
_WRITTEN: dict[str, tuple[int, int, str]] = {}  # path -> (bytes, mtime_ns, sha256) of files this process wrote


class Unwritable(LrscError):
    """A file could not be written (no permission, a read-only filesystem, a full disk); the message
    names the path and what to do. Nothing was half-written."""


class Damaged(LrscError):
    """A stored file does not match its record's checksum (or is missing); the message names it."""


def _unwritable(path: Path, error: OSError) -> Unwritable | None:
    """The one-line error for an expected write failure of ``path``, None for any other."""
    why = {errno.EACCES: "permission denied; choose a folder you can write to",
           errno.EPERM: "permission denied; choose a folder you can write to",
           errno.EROFS: "the filesystem is read-only; choose a folder you can write to",
           errno.ENOSPC: "the disk is full; free space and run the same command again (finished runs are kept)",
           errno.EDQUOT: "the disk quota is used up; free space and run the same command again (finished runs are "
                         "kept)"}.get(error.errno)
    return Unwritable(f"cannot write {path}: {why}") if why else None


def _remove(path: Path) -> None:
    """Remove ``path`` if it is there (a read-only filesystem refuses even to unlink a missing file)."""
    if os.path.lexists(path):
        path.unlink(missing_ok=True)


@contextmanager
def atomic(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block has written it, rename it onto ``path``.

    Expected failures (no permission, a read-only filesystem, a full disk) raise
    :class:`Unwritable` naming the path, and leave nothing behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{HOST}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        error = _unwritable(path, e)
        if error is None:
            raise
        raise error from None
    finally:
        _remove(tmp)


def write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (see :func:`atomic`)."""
    with atomic(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here, not after the rename


def write_text(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    write_bytes(text.encode(), path)


def checksum(data: bytes) -> str:
    """SHA-256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or cannot be read as JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def name_of(settings: dict) -> str:
    """A run's hash: the first 16 hex digits of the SHA-256 of its hashed ``settings`` as sorted JSON."""
    return checksum(json.dumps(settings, sort_keys=True).encode())[:16]


def within(part: dict, whole: dict) -> bool:
    """Whether every value of the nested mapping ``part`` is ``whole``'s at the same keys."""
    return all(isinstance(whole, dict) and key in whole and
               (within(value, whole[key]) if isinstance(value, dict) else value == whole[key])
               for key, value in part.items())


@dataclass(frozen=True)
class State:
    """Where one run stands: ``status`` (one of :data:`STATUSES`), its record (``{}`` when none
    can be read), why it is damaged or outdated (``problem``), and the claim's owner while it is
    claimed."""

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
        """Where run ``run_hash`` stands; with ``verify``, a finished run's files are checked
        against their checksums."""
        record_path = self.path(run_hash, "json")
        record = read_json(record_path)
        if record_path.exists():
            problem = self._record_problem(run_hash, record)
            if problem:
                return State("damaged", record if isinstance(record, dict) else {}, problem)
        record = record or {}
        if record.get("status") in FINISHED:
            problem = self._files_problem(run_hash, record) if verify else ""
            return State("damaged", record, problem) if problem else State(record["status"], record)
        owner = self.owner(run_hash)
        if owner is not None:
            stale = self.stale(run_hash, owner)
            return State("stale" if stale else "running", record,
                         "its claim file is empty or unreadable" if stale and not owner else "", owner)
        return State(record.get("status", "pending"), record)

    @staticmethod
    def _record_problem(run_hash: str, record: Any) -> str:
        """Why ``record`` is not the record of run ``run_hash`` (``""`` when it is)."""
        if not (isinstance(record, dict) and record.get("status") in (*FINISHED, "failed")):
            return f"{run_hash}.json is not a run record"
        if record.get("hash") != run_hash:
            return f"its record is that of run {record.get('hash')!r} (files swapped or renamed)"
        hashed = record.get("hashed")
        if hashed is not None:
            if not isinstance(hashed, dict) or name_of(hashed) != run_hash:
                return "its record's settings do not hash to its name (edited or swapped)"
            if not within(hashed, record.get("config")):
                return "its record's config disagrees with the settings its hash covers (edited)"
        return ""

    def _files_problem(self, run_hash: str, record: dict) -> str:
        files = record.get("files")
        if not isinstance(files, dict) or set(files) != {"nc", "pt"}:
            return "its record lists no checksums"
        return next((p for p in (self._problem(self.path(run_hash, kind), files[kind]) for kind in files) if p), "")

    @staticmethod
    def _problem(path: Path, expected: Any, data: bytes | None = None) -> str:
        """Why file ``path`` (or its bytes ``data``) does not match its checksum entry ``expected``
        (``""`` when it does). A file this process wrote and nothing has touched since (same size
        and modification time) is not hashed again."""
        expected = expected if isinstance(expected, dict) else {}
        try:
            stat = path.stat()
            if _WRITTEN.get(os.path.abspath(path)) == (stat.st_size, stat.st_mtime_ns, expected.get("sha256")):
                return ""
            data = path.read_bytes() if data is None else data
        except FileNotFoundError:
            return f"{path.name} is missing"
        if len(data) != expected.get("bytes") or checksum(data) != expected.get("sha256"):
            return f"{path.name} does not match its checksum (truncated, overwritten or swapped)"
        return ""

    def read(self, run_hash: str, kind: str, record: dict | None = None) -> bytes:
        """The bytes of run ``run_hash``'s file ``kind`` (``nc`` or ``pt``), checked against the
        checksum in its record (``record``, or the stored one); raises :class:`Damaged` when they
        do not match, so that no byte of a damaged file is ever used."""
        record = record if record is not None else read_json(self.path(run_hash, "json")) or {}
        path = self.path(run_hash, kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise Damaged(f"run {run_hash}: {path.name} is missing; run its sweep again to train it") from None
        problem = self._problem(path, (record.get("files") or {}).get(kind), data)
        if problem:
            raise Damaged(f"run {run_hash}: {problem}; run its sweep again to train it")
        return data

    def finished(self, run_hash: str) -> bool:
        return self.state(run_hash).status in FINISHED

    # ----- writing a run -----

    def commit(self, run_hash: str, results: bytes, weights: bytes, record: dict) -> dict:
        """Store a finished run: its ``weights`` (a ``.pt`` file's bytes), then its ``results``
        (a ``.nc`` file's bytes), then the record with both files' checksums (the record makes
        the run finished). Returns the record written."""
        files, fresh = {}, not self.path(run_hash, "json").exists()
        try:
            for kind, data in (("pt", weights), ("nc", results)):
                path = self.path(run_hash, kind)
                write_bytes(data, path)
                stat = path.stat()
                files[kind] = {"sha256": checksum(data), "bytes": len(data)}
                _WRITTEN[os.path.abspath(path)] = (stat.st_size, stat.st_mtime_ns, files[kind]["sha256"])
            record = {**record, "hash": run_hash, "files": files}
            self.write_record(run_hash, record)
        except Unwritable:  # a full disk: no file of a run without its record is left
            for kind in files if fresh else ():
                _remove(self.path(run_hash, kind))
            raise
        return record

    def write_record(self, run_hash: str, record: dict) -> None:
        write_text(json.dumps(record, indent=1, sort_keys=True), self.path(run_hash, "json"))

    def set_aside(self, run_hash: str, why: str) -> list[Path]:
        """Rename a run's files to ``<name>.<why>`` (kept for inspection) so that it is trained again."""
        moved = []
        for kind in ("nc", "pt", "json"):
            path = self.path(run_hash, kind)
            if path.exists():
                try:
                    os.replace(path, path.with_name(f"{path.name}.{why}"))
                except OSError as e:
                    raise _unwritable(path, e) or e from None
                moved.append(path.with_name(f"{path.name}.{why}"))
        return moved

    def check_writable(self) -> None:
        """Raise :class:`Unwritable` (or a ConfigError) unless files can be created in the store's
        folder, before anything is written there."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--store {str(self.root)!r} is a file; give a folder for the run store")
        existing = next((p for p in (self.root.absolute(), *self.root.absolute().parents) if p.exists()), Path("/"))
        probe = existing / f".lrsc-probe.{os.getpid()}.{HOST}.tmp"
        try:  # a real probe: permissions, read-only and virtual filesystems all refuse it alike
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except OSError:
            raise ConfigError(f"cannot write under {str(existing)!r} (for the run store {str(self.root)!r}); choose "
                              f"a folder you can write to with --store") from None
        _remove(probe)

    def remove_leftovers(self) -> list[Path]:
        """Remove the temporary files of writers that are gone (a killed worker's ``.tmp``): those of
        a process of this host that has ended, or older than :data:`STALE_AFTER_S`. Returns them."""
        removed = []
        for tmp in self.root.glob(".*.tmp") if self.root.is_dir() else ():
            parts = tmp.name[1:-len(".tmp")].split(".", 4)  # hash, kind, pid, thread, host
            try:
                pid, age = int(parts[2]), time.time() - tmp.stat().st_mtime
            except (IndexError, ValueError, FileNotFoundError):
                continue
            if age > STALE_AFTER_S or (len(parts) == 5 and parts[4] == HOST and not _alive(pid)):
                _remove(tmp)
                removed.append(tmp)
        return removed

    # ----- claims -----

    def _me(self, sweep: str, generation: int) -> dict:
        return {"host": HOST, "pid": os.getpid(), "started": time.time(), "sweep": sweep, "generation": generation}

    def claim(self, run_hash: str, sweep: str = "") -> dict | None:
        """Claim run ``run_hash`` for this process; returns None when claimed, else the owner that
        holds it. A stale claim is taken over (:meth:`_take_over`)."""
        path = self.path(run_hash, "claim")
        for _ in range(5):
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner(run_hash)
                if owner is None:
                    continue  # released meanwhile: try again
                if not self.stale(run_hash, owner):
                    return owner
                if self._take_over(run_hash, owner, sweep):
                    return None
                continue  # another process took it over, or is taking it over: look again
            except OSError as e:
                raise _unwritable(self.root, e) or e from None
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(self._me(sweep, 0), f)
            except OSError as e:  # a full disk: no empty claim is left behind
                _remove(path)
                raise _unwritable(path, e) or e from None
            return None
        return self.owner(run_hash) or {}

    def _take_over(self, run_hash: str, seen: dict, sweep: str) -> bool:
        """Replace the stale claim ``seen`` with this process's; True when this process won.

        The marker ``<hash>.takeover.<generation>.<level>`` is created exclusively, so one
        process at a time holds it; its holder replaces the claim only if it is still the very
        claim it saw (same owner, still stale). A marker whose holder is gone (it died in these
        few lines) is passed over to the next level. The markers go when the run is released."""
        generation = seen.get("generation", -1) if isinstance(seen.get("generation"), int) else -1
        for level in range(100):
            marker = self.root / f"{run_hash}.takeover.{generation}.{level}"
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_json(marker)
                if self._gone(marker, holder if isinstance(holder, dict) else {}):
                    continue
                return False
            with os.fdopen(fd, "w") as f:
                json.dump(self._me(sweep, generation), f)
            break
        else:
            return False
        current = self.owner(run_hash)
        if current != seen or not self.stale(run_hash, current):
            _remove(marker)  # nothing to take over any more: give the marker back
            return False
        write_text(json.dumps(self._me(sweep, generation + 1)), self.path(run_hash, "claim"))
        return True

    def owner(self, run_hash: str) -> dict | None:
        """The claim's owner record (``{}`` while it is being written, or when unreadable), or
        None when unclaimed."""
        path = self.path(run_hash, "claim")
        if not path.exists():
            return None
        owner = read_json(path)
        return owner if isinstance(owner, dict) else {}

    def stale(self, run_hash: str, owner: dict) -> bool:
        """Whether the claim was left by a process of this host that is gone, has not been touched
        for :data:`STALE_AFTER_S` seconds, or names no owner after :data:`CLAIM_GRACE_S`."""
        return self._gone(self.path(run_hash, "claim"), owner)

    @staticmethod
    def _gone(path: Path, owner: dict) -> bool:
        """Whether the writer ``owner`` of file ``path`` (a claim or a takeover marker) is gone."""
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age > STALE_AFTER_S or (not owner.get("host") and age > CLAIM_GRACE_S):
            return True
        if owner.get("host") != HOST or not isinstance(owner.get("pid"), int):
            return False
        return not _alive(owner["pid"])

    def release(self, run_hash: str) -> None:
        """Drop this process's claim on ``run_hash`` (if it holds it), and the takeover markers."""
        owner = self.owner(run_hash)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == HOST:
            for marker in self.root.glob(f"{run_hash}.takeover.*"):
                _remove(marker)
            _remove(self.path(run_hash, "claim"))

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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_store(out: str | Path) -> Path:
    """The store a sweep folder uses unless told otherwise: ``runs/`` beside it, shared by every
    sweep folder under the same results folder."""
    return Path(out).resolve().parent / "runs"
