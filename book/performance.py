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
quick = True  # fewer training steps (about 45 s); False runs the full benchmark (about 90 s on 2 cores)
threads = None  # torch threads for every benchmark; None keeps torch's default (all cores)
repeats = 3  # rounds per training case, one-at-a-time and batched in turn; the table shows medians

# %% tags=["hide-input"]
import sys
from pathlib import Path

import pandas as pd
from myst_nb import glue

import lrsc

sys.path.insert(0, str(Path(lrsc.__file__).resolve().parents[1]))  # benchmarks/ sits beside lrsc/
from benchmarks.run import run  # noqa: E402

rows, summary = run(quick=quick, threads=threads, repeats=repeats)
for key in ("batched_speedup_parity_m8", "batched_speedup_parity_m24", "batched_speedup_parity_m8_sgd_settings",
            "data_path_speedup",
            "data_path_speedup_cmnist", "matmul_gflops", "threads", "repeats", "speedup_at_matmul_peak_parity_m24"):
    glue(key, summary[key], display=False)
parity_m24 = next(r for r in rows if r["benchmark"].startswith("parity") and ", M=24," in r["benchmark"])
glue("m24_min", parity_m24["speedup min"], display=False)
glue("m24_max", parity_m24["speedup max"], display=False)
for key, name in (("step_share_wide", "step_wide_percent"), ("step_share_thin", "step_thin_percent"),
                  ("step_share_other", "step_other_percent"), ("wide_products_of_peak", "wide_percent"),
                  ("hot_product_of_peak", "hot_percent")):
    glue(name, 100 * summary[key], display=False)
glue("flops_percent", 100 * summary["flops_fraction"], display=False)
glue("sequential_flops_percent", 100 * summary["sequential_flops_fraction"], display=False)
for key in ("batched_speedup_cnn_m8_w0125", "batched_speedup_cnn_m8_w025", "channels_last_speedup_cnn_w0125",
            "channels_last_speedup_cnn_w025", "batch_mate_steps"):
    glue(key, summary[key], display=False)
for width, tag in (("0.125", "w0125"), ("0.25", "w025")):
    cnn_row = next(r for r in rows if r["benchmark"].startswith(f"Colored-MNIST size CNN width {width},"))
    glue(f"cnn_{tag}_min", cnn_row["speedup min"], display=False)
    glue(f"cnn_{tag}_max", cnn_row["speedup max"], display=False)
glue("cnn_flops_percent", 100 * summary["cnn_flops_fraction"], display=False)
glue("cnn_batch_mate_diff", summary["batch_mate_weight_diff_cnn"], display=False)
glue("fcn_batch_mate_diff", summary["batch_mate_weight_diff_fcn"], display=False)
pd.DataFrame(rows).set_index("benchmark").style.format(precision=3, na_rep="")

# %% [markdown]
# Each row times the same work two ways in this one process, both at
# {glue:text}`threads` thread(s): *baseline* is the plain way (the models trained one after
# another with `lrsc.train.train`; minibatches from a `torch.utils.data.DataLoader` over a
# `TensorDataset`), *lrsc* the batched or index-based way (in the two `channels_last` rows,
# one CNN in the default memory layout and in `torch.channels_last`). Both training paths run the same
# steps and one full evaluation of the training set at the end. Each training case runs
# {glue:text}`repeats` rounds, the two ways in turn; the table gives the median times and the
# smallest and largest ratio of a single round, which shows how much a shared machine moves them.
#
# Training the parity FCNs together is {glue:text}`batched_speedup_parity_m8:.1f`× faster
# than one at a time for 8 models and {glue:text}`batched_speedup_parity_m24:.1f`× for 24
# (single rounds: {glue:text}`m24_min:.1f`× to {glue:text}`m24_max:.1f`×). With momentum,
# an L1 and an L2 penalty, each model's update takes the general SGD route of the batched
# kernel (the gradients, then torch.optim.SGD's arithmetic per model), and 8 models train
# {glue:text}`batched_speedup_parity_m8_sgd_settings:.1f`× faster together than one at a time.
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
# **How far batching can go on a CPU.** If the batched parity training did nothing but its
# matmuls, at the dense 2000×2000 rate, it would be
# {glue:text}`speedup_at_matmul_peak_parity_m24:.1f`× faster than one model at a time. That
# is the ceiling, and it is low because one model's step wastes less than one might think:
# the one-at-a-time path already spends {glue:text}`sequential_flops_percent:.0f`% of its time
# on matmul arithmetic. The profiler shows where the batched step of the largest parity stack
# loses the rest. The products with the 200×200 weight (forward, backward
# and update) take {glue:text}`step_wide_percent:.0f`% of the step and run at
# {glue:text}`wide_percent:.0f`% of the dense rate; as 24 small 100×200×200 products they
# reach only {glue:text}`hot_percent:.0f`% even when one is repeated on operands already in
# cache. The thin products of the 16-input layer and the 2-unit head take
# {glue:text}`step_thin_percent:.0f`%, with almost no arithmetic in them, and the ReLUs,
# their backward pass, the softmax and the losses take {glue:text}`step_other_percent:.0f`%.
# Outside the step, the minibatch gather, the per-step records and the full-training-set
# evaluation (which the one-at-a-time path pays too, at a similar rate) add to the batched time.
#
# Going beyond the {glue:text}`batched_speedup_parity_m24:.1f`× measured here for 24 parity
# FCNs with PyTorch's own kernels would need the thin products and the memory passes
# to all but vanish *and* the small products to run near the dense rate; it would take fused
# kernels (a product with its ReLU, say) rather than more batching. On a GPU the one-at-a-time
# path is bound by kernel launches instead, and the ceiling is far higher.
#
# **Conv nets.** The CNN of the image chapters (VGG11-like, without BatchNorm) goes through
# `train_batched` by another route: `vmap` runs the model's own code on each model's
# weights, which makes every convolution of the stack one grouped convolution, and autograd
# does the backward pass. On this CPU that buys little: 8 CNNs of width 0.125 train
# {glue:text}`batched_speedup_cnn_m8_w0125:.2f`× as fast together as one at a time (single
# rounds: {glue:text}`cnn_w0125_min:.2f`× to {glue:text}`cnn_w0125_max:.2f`×), and 8 of width
# 0.25 {glue:text}`batched_speedup_cnn_m8_w025:.2f`× ({glue:text}`cnn_w025_min:.2f`× to
# {glue:text}`cnn_w025_max:.2f`×). One CNN alone already does a lot of arithmetic per
# operation: counting its convolution and matmul FLOPs as for the FCNs (a training step is
# three forward passes' worth), the width-0.125 CNN trained one at a time runs at
# {glue:text}`cnn_flops_percent:.0f`% of the dense matmul speed, where a parity FCN reaches
# {glue:text}`sequential_flops_percent:.0f`%. Keeping the CNN's weights and inputs in
# `torch.channels_last` (NHWC) order, which some convolution kernels prefer, makes a
# one-at-a-time step {glue:text}`channels_last_speedup_cnn_w0125:.2f`× as fast at width 0.125
# and {glue:text}`channels_last_speedup_cnn_w025:.2f`× at width 0.25 (above 1 is a gain);
# lrsc keeps the default layout.
#
# **Why a sweep trains conv nets one at a time.** A run's numbers should depend on its own
# settings only, not on which other runs a sweep put in the same batch; otherwise adding a
# learning rate to a grid would change the runs already in it. A stack of bias-free FCNs has
# that property: each model's products are its own slice of a batched matmul, so its
# arithmetic is the same, bit for bit, whatever its batch-mates: after
# {glue:text}`batch_mate_steps` steps, the largest difference in any weight between a parity
# FCN trained alone and the same FCN trained in a stack of four is
# {glue:text}`fcn_batch_mate_diff:.1g`. A grouped convolution sums in an order that depends on
# the whole group: for the width-0.125 CNN that difference is
# {glue:text}`cnn_batch_mate_diff:.1e` after as many steps. It is small, but not zero, so the
# run would change with its grouping. (A CPU convolution's rounding also depends on
# the number of threads it runs on.) Since batching gains little for conv nets on a CPU
# and would cost that independence, the sweep batches only bias-free FCNs and trains conv
# nets one at a time.
#
# **On a GPU.** Every number on this page was measured on the CPU. GPU figures are not
# measured yet: no GPU was available on the machine that built this book. To measure them,
# run `python -m benchmarks.run --device cuda`; it runs every benchmark on the GPU except
# the profiled step breakdown, which is CPU-only.
#
# These are wall-clock times on a machine that may be shared with other work: rerun the
# benchmark (or run it with `--threads 1`) to see how much they move.
