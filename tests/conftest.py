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


@pytest.fixture
def tiny_parity() -> dict:
    import copy

    return copy.deepcopy(TINY_PARITY)
