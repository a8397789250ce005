import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests compare numbers across runs; one thread keeps CPU reductions in one order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_PARITY = {
    "dataset": "parity",
    "dataset_params": {"n_core": 3, "n_spu": 1, "n_noise": 4, "rho": 0.1, "n_train": 300, "n_test": 200},
    "model": "fcn",
    "model_params": {"depth": 2, "width": 32},
    "train": {"batch_size": 50, "max_steps": 400, "eval_every": 20},
    "metrics": {"n_act": 50, "n_attr": 20, "ig_steps": 4, "prune_fractions": [0.2, 0.5]},
    "grid": {"lr": [0.3, 1.0], "seed": [0, 1]},
}


TINY_CNN = {  # a small CNN (64 penultimate units) on small moon-star images
    "dataset": "moon_star", "dataset_params": {"rho": 0.1, "image_size": 12, "n_train": 200, "n_test": 100},
    "model": "cnn", "model_params": {"width": 0.125},
    "train": {"batch_size": 50, "max_steps": 60, "eval_every": 20},
    "metrics": {"n_act": 50, "n_attr": 10, "ig_steps": 4, "prune_fractions": [0.5], "snapshot_steps": [0, 20]},
    "grid": {"lr": [0.03], "seed": [0]},
}


@pytest.fixture
def tiny_parity() -> dict:
    import copy

    return copy.deepcopy(TINY_PARITY)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A real single-node SLURM cluster (see slurm_cluster.py) for a test module; skipped where it
    cannot start, unless LRSC_REQUIRE_SLURM=1 (CI, where SLURM is installed) makes that a failure."""
    from slurm_cluster import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm-cluster"))
    except ClusterUnavailable as e:
        if os.environ.get("LRSC_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM test cluster: {e}", pytrace=False)
        pytest.skip(f"SLURM test cluster: {e}")
    with cluster:
        yield cluster


def run_store(out):
    """The run store of the sweep folder ``out`` (``runs/`` beside it)."""
    from lrsc.store import RunStore, default_store

    return RunStore(default_store(out))


def records(out) -> dict:
    """``{run hash: record}`` of every run of the sweep in ``out`` that has one."""
    from lrsc import sweepdir

    store = run_store(out)
    found = {h: store.state(h, verify=False).record for h in sweepdir.read_grid(out)["hashes"]}
    return {h: r for h, r in found.items() if r}


@pytest.fixture(scope="session")
def tiny_book(tmp_path_factory):
    """Every chapter of the book executed on tiny sweeps and built: ``(project root, _build/html)``."""
    import book_project
    from lrsc.book import build_book

    root = book_project.make(tmp_path_factory.mktemp("book"))
    # one thread in every kernel, as in this process: numbers that do not depend on the machine's load
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        return root, build_book(root, profile="tiny")
    finally:
        os.environ.pop("OMP_NUM_THREADS") if previous is None else os.environ.update(OMP_NUM_THREADS=previous)
