"""The same numbers on any machine: a run trains and is evaluated on a fixed thread count, so
its stored numbers depend neither on the threads its process was given nor on the engine."""
import json
import os
import subprocess
import sys

import torch
import xarray as xr

from conftest import TINY_CNN, run_store
from lrsc import sweep, sweepdir, worker
from lrsc.collect import read_results

TRAIN = """
import sys, torch
from lrsc.sweep import run_sweep
torch.set_num_threads(int(sys.argv[1]))
run_sweep({cfg}, sys.argv[2], device="cpu", progress=False)
"""


def _stored(out) -> tuple[xr.Dataset, dict[str, torch.Tensor]]:
    """The run's stored dataset and weights (the sweep has one run)."""
    h = sweepdir.read_grid(out)["hashes"][0]
    store = run_store(out)
    return read_results(store.path(h, "nc")).drop_attrs(), torch.load(store.path(h, "pt"), weights_only=True)


def _same(a, b) -> None:
    xr.testing.assert_identical(a[0], b[0])  # every stored variable, bit for bit
    assert a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_a_cnn_trained_with_one_or_two_threads_stores_the_same_numbers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = TRAIN.format(cfg=json.dumps(TINY_CNN))
    for threads in (1, 2):
        proc = subprocess.run([sys.executable, "-c", code, str(threads), str(tmp_path / str(threads) / "sweep")],
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    one, two = _stored(tmp_path / "1" / "sweep"), _stored(tmp_path / "2" / "sweep")
    _same(one, two)
    provenance = [run_store(tmp_path / t / "sweep").state(h).record["provenance"]["threads"]
                  for t, h in (("1", sweepdir.read_grid(tmp_path / "1" / "sweep")["hashes"][0]),
                               ("2", sweepdir.read_grid(tmp_path / "2" / "sweep")["hashes"][0]))]
    assert provenance == [worker.THREADS] * 2


def test_a_cnn_trained_in_process_or_in_a_worker_stores_the_same_numbers(tmp_path):
    cfg = {**TINY_CNN, "grid": {"lr": [0.03, 0.05], "seed": [0]}}
    torch.set_num_threads(2)  # this process has two threads; each worker gets its own share
    sweep.run_sweep(cfg, tmp_path / "a" / "sweep", device="cpu", progress=False)
    sweep.run_sweep(cfg, tmp_path / "b" / "sweep", device="cpu", progress=False, workers=2)
    for i in range(2):
        h = sweepdir.read_grid(tmp_path / "a" / "sweep")["hashes"][i]
        stored = [(read_results(run_store(tmp_path / d / "sweep").path(h, "nc")).drop_attrs(),
                   torch.load(run_store(tmp_path / d / "sweep").path(h, "pt"), weights_only=True)) for d in "ab"]
        _same(*stored)
