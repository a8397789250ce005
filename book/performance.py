# %% [markdown]
# # Performance
#
# A sweep of this reproduction trains hundreds of small networks: the parity figure alone
# is learning rates × seeds of a 16-200-200-2 FCN. One such network is too small to keep
# a CPU (or GPU) busy: a step of batch 100 is about 26 MFLOP, and the time goes to
# launching operations rather than doing arithmetic. lrsc therefore trains the runs of a
# sweep that differ only in learning rate and seed *together*: their weights are stacked
# along a leading dimension, every layer becomes one batched matrix product, and each
# model keeps its own learning rate, data order, training set and stopping point
# (`lrsc.train.train_batched`; the tests check that every model follows its own
# one-at-a-time run step by step). The training data live on the device as tensors and
# minibatches are taken by index, as in airbench, instead of through a `DataLoader`.
#
# This page measures both on the machine that built the book, with
# `python -m benchmarks.run` (add `--quick` for the short version shown here).

# %% tags=["parameters"]
quick = True  # fewer training steps (about 30 s); False runs the full benchmark (a few minutes)
threads = None  # torch threads for every benchmark; None keeps torch's default (all cores)

# %%
import sys
from pathlib import Path

import pandas as pd
from myst_nb import glue

import lrsc

sys.path.insert(0, str(Path(lrsc.__file__).resolve().parents[1]))  # benchmarks/ sits beside lrsc/
from benchmarks.run import run  # noqa: E402

rows, summary = run(quick=quick, threads=threads)
for key in ("batched_speedup_parity_m8", "batched_speedup_parity_m24", "data_path_speedup",
            "data_path_speedup_cmnist", "matmul_gflops", "threads"):
    glue(key, summary[key], display=False)
glue("flops_percent", 100 * summary["flops_fraction"], display=False)
glue("sequential_flops_percent", 100 * summary["sequential_flops_fraction"], display=False)
pd.DataFrame(rows).set_index("benchmark").style.format(precision=3, na_rep="")

# %% [markdown]
# Each row times the same work two ways in this one process, both at
# {glue:text}`threads` thread(s): *baseline* is the plain way (the models trained one after
# another with `lrsc.train.train`; minibatches from a `torch.utils.data.DataLoader` over a
# `TensorDataset`), *lrsc* the batched or index-based way. Both training paths run the same
# steps and one full evaluation of the training set at the end.
#
# Training the parity FCNs together is {glue:text}`batched_speedup_parity_m8:.1f`× faster
# than one at a time for 8 models and {glue:text}`batched_speedup_parity_m24:.1f`× for 24.
# Counting the matmul FLOPs (6 per weight and sample for a training step, 2 for the
# evaluation), the batched parity training reaches {glue:text}`flops_percent:.0f`% of the
# machine's dense matmul speed ({glue:text}`matmul_gflops:.0f` GFLOP/s for a 2000×2000
# float32 product), one model at a time {glue:text}`sequential_flops_percent:.0f`%: alone, a
# parity FCN leaves the processor idle most of the time. For
# Colored-MNIST-sized FCNs one model's matmuls already keep the processor busy, so batching
# gains less. Taking minibatches by index from tensors is
# {glue:text}`data_path_speedup:.0f`× faster than the `DataLoader` for parity-sized samples
# (which collates 100 samples one by one) and {glue:text}`data_path_speedup_cmnist:.1f`× for
# Colored-MNIST-sized ones, where copying the pixels dominates.
#
# These are wall-clock times on a machine that may be shared with other work: rerun the
# benchmark (or run it with `--threads 1`) to see how much they move.
