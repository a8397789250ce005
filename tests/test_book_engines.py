"""The book's training on an engine: the tiny book's chapters built with ``--engine dask`` (one
local cluster of worker processes) and ``--engine slurm`` (the one-node cluster of
``slurm_cluster.py``) store the same runs, bit for bit, as a build in the chapters' own kernels;
and ``lrsc plan`` lists what a build then trains."""
import json
import math
import os
from pathlib import Path

import pytest
import xarray as xr

import book_project
import lrsc
from lrsc import book, engines, sweeplist
from lrsc.collect import read_results
from lrsc.estimate import plan_profile, report
from lrsc.store import FINISHED

from slurm_cluster import last_job_id, tasks

TRAINS = ["fig3_parity"]  # a main sweep to the edge of stability, one that takes its LRs from it, and one more
PLANNED = [*TRAINS, "fig6_hyperparameters"]  # and sweeps whose changes the chapter's parameters fix


def _build(root: Path, chapters: list[str], engine: engines.Choice | None = None) -> None:
    """Execute ``chapters`` of the tiny project at ``root`` (their kernels on one thread, as the
    runs train), without the HTML, which these tests do not read."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setattr(book, "_jupyter_book", lambda root, toc: None)
        book.build_book(root, profile="tiny", only=chapters, engine=engine)


def _stored(root: Path) -> dict[str, dict]:
    """``{hash: record}`` of every finished run of the tiny project's run store."""
    records = {p.stem: json.loads(p.read_text()) for p in (root / "results" / "tiny" / "runs").glob("*.json")}
    return {h: r for h, r in records.items() if r.get("status") in FINISHED}


def _same_runs(root: Path, reference: Path, hashes: set[str]) -> None:
    """The runs ``hashes`` are stored in both projects with identical results, variable by variable."""
    for h in sorted(hashes):
        ours, theirs = (read_results(r / "results" / "tiny" / "runs" / f"{h}.nc") for r in (root, reference))
        xr.testing.assert_identical(ours, theirs)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> tuple[Path, object]:
    """The tiny project with :data:`PLANNED` built the usual way, and its plan from before the build."""
    root = book_project.make(tmp_path_factory.mktemp("local"))
    before = plan_profile(root, "tiny", only=PLANNED, device="cpu", steps=1)
    _build(root, PLANNED)
    return root, before


def _fig3_hashes(root: Path) -> set[str]:
    return {r.hash for r in plan_profile(root, "tiny", only=TRAINS, steps=0).runs}


def test_plan_lists_what_the_build_trains(local):
    root, before = local
    after = plan_profile(root, "tiny", only=PLANNED, steps=0)
    assert not after.assumed and all(r.stored and not r.assumed for r in after.runs)  # everything known now
    assert {r.hash for r in after.runs} == set(_stored(root))  # the build trained exactly the planned runs
    known = {r.hash for r in before.runs if not r.assumed}
    assert known and known <= {r.hash for r in after.runs}  # what was known beforehand was trained
    assert not any(r.stored for r in before.runs)
    assert "edge not found yet" in before.assumed[str(root / "results" / "tiny" / "parity")]
    assert "its LRs come from the results of parity" in before.assumed[str(root / "results" / "tiny" / "settings")]
    # the step caps are the params': the parity sweep's cap grows as 1/LR below cap_lr
    parity = [r for r in after.runs if r.sweep == "parity"]
    assert all(r.cap == (math.ceil(400 / r.config["train"]["lr"]) if r.config["train"]["lr"] < 1 else 400) for r in parity)
    text = report(before, tflops=10.0)
    assert "hours to train what is not stored" in text and "at 10 TFLOP/s sustained" in text
    assert all(not t.note and t.step_s > 0 and t.flops > 0 for t in before.timings.values())
    assert "the paper: 400 hours on 4 NVIDIA A100-PCIE-40GB GPUs" in text
    assert f"{len(after.unique())} runs" in report(after) and "0 to train" in report(after)


def test_dask_build_stores_the_local_builds_runs(local, tmp_path):
    reference, _ = local
    root = book_project.make(tmp_path)
    _build(root, TRAINS, engines.Choice(engine="dask", workers=2))
    stored = _stored(root)
    assert set(stored) == _fig3_hashes(reference)
    _same_runs(root, reference, set(stored))
    # one local cluster trained every run of the build, chapters' own sweeps included
    assert len({r["provenance"]["pid"] for r in stored.values()}) <= 2
    for folder in ("parity", "settings", "moon_star"):
        xr.testing.assert_identical(read_results(root / "results" / "tiny" / folder / "results.nc").drop_attrs(),
                                    read_results(reference / "results" / "tiny" / folder / "results.nc").drop_attrs())


def test_a_chapters_sweeps_are_declared():
    # a chapter that runs a sweep its declaration lacks would train outside the planned runs
    for path in sorted((Path(lrsc.__file__).parents[1] / "book").glob("*.py")):
        if "ch.sweep(" in path.read_text() or "ch.sweeps(" in path.read_text():
            assert path.stem in sweeplist.CHAPTERS, path.stem


@pytest.fixture
def job_env(monkeypatch):
    # the SLURM jobs run this checkout's lrsc (see test_slurm_cluster.py)
    paths = [str(Path(lrsc.__file__).parents[1]), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def test_slurm_build_stores_the_local_builds_runs(slurm_cluster, job_env, local, tmp_path):
    reference, _ = local
    root = book_project.make(tmp_path)
    before = last_job_id()
    slurm = engines.SlurmOptions(partition=slurm_cluster.partition, cpus=1, mem_gb=1, time_min=5)
    _build(root, TRAINS, engines.Choice(engine="slurm", slurm=slurm))
    stored = _stored(root)
    assert set(stored) == _fig3_hashes(reference)
    _same_runs(root, reference, set(stored))
    found = tasks(before)
    assert found and {t.state for t in found} == {"COMPLETED"}  # the runs trained in SLURM jobs
    assert os.getpid() not in {r["provenance"]["pid"] for r in stored.values()}
    # built again: every run is found in the store, nothing goes to SLURM
    again = last_job_id()
    _build(root, TRAINS, engines.Choice(engine="slurm", slurm=slurm))
    assert tasks(again) == [] and set(_stored(root)) == set(stored)
