"""Driving a sweep's units through an engine: retries, runs claimed elsewhere, and progress.

:func:`drive` submits the units, resubmits a unit whose worker was lost, waits for runs that
another process holds (another sweep on the same store) and takes them over if that process
goes away, and moves a progress bar as each run ends, within batched units too: one bar per
sweep (a widget in a notebook where ipywidgets is installed, see :mod:`lrsc.progress`).
"""
from __future__ import annotations

import time
import traceback
from collections import defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, wait

from lrsc import engines
from lrsc.progress import bar as make_bar
from lrsc.progress import in_notebook
from lrsc.store import FINISHED, RunStore, Unwritable
from lrsc.plan import Run
from lrsc.worker import execute, record

POLL_S = 1.0  # seconds between looks at the store while units run elsewhere


class _Progress:
    """A bar over a sweep's runs, counting done, diverged and failed ones; each run counts once,
    as it ends in this sweep: a run whose record (e.g. a failure from an earlier sweep, which this
    one trains again) is in the store when the bar starts counts only once its record is
    rewritten, so the final counts are those ``lrsc status`` gives."""

    def __init__(self, store: RunStore, runs: list[Run], total: int, show: bool, desc: str):
        self.store, self.seen, self.counts = store, set(), dict.fromkeys(("done", "diverged", "failed"), 0)
        self.before = {run.hash: self._written(run.hash) for run in runs}
        self.bar = make_bar(total=total, desc=desc, unit="run", disable=not show)

    def _written(self, run_hash: str) -> int | None:
        """When the run's record was last written (ns), None without one."""
        try:
            return self.store.path(run_hash, "json").stat().st_mtime_ns
        except OSError:
            return None

    def ended(self, run_hash: str, status: str) -> None:
        if run_hash in self.seen or status not in self.counts:
            return
        self.seen.add(run_hash)
        self.counts[status] += 1
        self.bar.set_postfix(self.counts)
        self.bar.update(1)

    def poll(self, runs: list[Run]) -> None:
        """Count the runs that ended in the store since the last look (units running elsewhere)."""
        for run in runs:
            if run.hash not in self.seen and self._written(run.hash) != self.before.get(run.hash):
                status = self.store.state(run.hash, verify=False).status
                if status in (*FINISHED, "failed"):
                    self.ended(run.hash, status)

    def close(self) -> None:
        self.bar.close()


def drive(executor: engines.Engine, units: list[list[Run]], store: RunStore, device: str, retries: int,
          extension_blob: bytes | None, sweep: str, total: int, progress: bool, check: bool = False) -> None:
    """Run every unit on ``executor`` until each of its runs has ended in ``store``.

    A unit whose worker was lost is resubmitted up to ``retries`` times. Where one lost worker
    takes every unit in flight with it (a broken local process pool), the units it took are not
    charged: they run again one at a time, and a unit is charged only when it loses its worker
    while running alone. Any other error that escapes :func:`lrsc.worker.execute` (which records
    the runs' own errors) marks the unit's runs failed, except a store that cannot be written
    (:class:`lrsc.store.Unwritable`, e.g. a full disk), which stops the sweep with its runs
    pending. Runs another process holds are waited for, and trained here if that process goes
    away without finishing them. ``check``: each unit checks its data and model before it
    trains (see :func:`lrsc.worker.execute`).
    """
    bar = _Progress(store, [run for unit in units for run in unit], total, progress,
                    f"sweep {sweep.rsplit('/', 1)[-1]}")
    bar.bar.update(total - sum(map(len, units)))
    report = bar.ended if executor.in_process else None
    # a run's own bar over its steps, in this process only, and not in a notebook: there the sweep's
    # bar is the one bar (a bar per run would be a new output per run)
    steps = progress and executor.in_process and not in_notebook()
    args = (str(store.root), device, extension_blob, sweep, steps, report, check)
    lost: defaultdict[int, int] = defaultdict(int)
    queue, alone, running, waiting = deque(range(len(units))), deque(), {}, []
    try:
        while queue or alone or running or waiting:
            picked, by_itself = _pick(executor, queue, alone, running)
            # the units picked together go out together (on SLURM: as one job array)
            futures = executor.submit_all(execute, [(units[i], *args) for i in picked])
            running.update({future: (i, by_itself) for future, i in zip(futures, picked)})
            finished = _wait(running, waiting, bar)
            for future in finished:
                i, by_itself = running.pop(future)
                outcome = _outcome(executor, future, units[i], store, lost, i, retries, by_itself)
                if outcome == "retry-alone":
                    alone.append(i)
                elif outcome == "retry":
                    (alone if executor.shared_fate else queue).append(i)
                else:
                    waiting += [run for run, status in zip(units[i], outcome) if status == "claimed"]
            waiting = _take_over(waiting, store, units, queue)
            bar.poll([run for unit in units for run in unit])
    finally:
        bar.close()


def _pick(executor: engines.Engine, queue: deque, alone: deque, running: dict) -> tuple[list[int], bool]:
    """The units to submit now, and whether they run by themselves: one lone unit with nothing
    beside it, else as many as the engine takes."""
    if any(by_itself for _, by_itself in running.values()) or (alone and running):
        return [], False
    if alone:
        return [alone.popleft()], True
    room = len(queue) if executor.in_flight is None else min(len(queue), executor.in_flight - len(running))
    return [queue.popleft() for _ in range(room)], False


def _wait(running: dict, waiting: list[Run], bar: _Progress) -> set[Future]:
    """The futures that finished; while runs are awaited elsewhere, look at the store every :data:`POLL_S`."""
    if not running:
        time.sleep(POLL_S if waiting else 0)
        return set()
    finished, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
    return finished


def _outcome(executor: engines.Engine, future: Future, unit: list[Run], store: RunStore, lost: dict[int, int], i: int,
             retries: int, by_itself: bool) -> str | list[str]:
    """``"retry"`` / ``"retry-alone"`` for a lost worker, else the statuses of the unit's runs."""
    try:
        return [status for _, status in future.result()]
    except Unwritable:
        raise  # the store cannot be written (a full disk): the sweep stops, the unit's runs stay pending
    except executor.lost_errors:
        if executor.shared_fate and not by_itself:
            return "retry-alone"  # lost with others: which unit killed the worker is not known yet
        lost[i] += 1
        if lost[i] <= retries:
            return "retry"
        error = f"worker lost {lost[i]} times; last error:\n{traceback.format_exc()}"
    except Exception:
        error = traceback.format_exc()
    for run in unit:
        if not store.finished(run.hash):
            store.write_record(run.hash, record(run, "failed", [], hash=run.hash, error=error))
    return ["failed"] * len(unit)


def _take_over(waiting: list[Run], store: RunStore, units: list[list[Run]], queue: deque) -> list[Run]:
    """The awaited runs still held by a live process; the others that did not finish are queued here."""
    still = []
    for run in waiting:
        state = store.state(run.hash, verify=False)
        if state.status == "running":
            still.append(run)
        elif state.status not in (*FINISHED, "failed"):
            units.append([run])  # its owner went away: train it here
            queue.append(len(units) - 1)
    return still
