# %% [markdown]
# # Performance
#
# A sweep of this reproduction trains hundreds of small networks: the parity figure alone
# is learning rates × seeds of a {glue:text}`parity_layers` FCN. One such network is too small to keep
# a CPU (or GPU) busy: a step of batch {glue:text}`batch` is about {glue:text}`parity_step_mflop:.0f`
# MFLOP (its matmuls, as torch's FLOP counter counts them), and the time goes to
# launching operations rather than doing arithmetic. lrsc therefore trains the runs of a
# sweep that differ only in learning rate and seed *together*: their weights are stacked
# along a leading dimension, every layer becomes one batched matrix product, and each
# model keeps its own learning rate, data order, training set and stopping point
# (`lrsc.stacked.train_batched`; the tests check that every model follows its own
# one-at-a-time run step by step). The training data live on the device as tensors and
# minibatches are taken by index, as in airbench, instead of through a `DataLoader`.
#
# This page measures both on the machine that built the book, with
# `python -m lrsc.bench` (add `--quick` for the short version; this page shows
# {glue:text}`bench_version`). {glue:text}`bench_provenance`

# %% tags=["parameters"]
quick = True  # fewer training steps; False runs the full benchmark
threads = 1  # torch threads for every benchmark (1: as every run of a sweep trains); None keeps torch's default
repeats = 3  # rounds per training case, one-at-a-time and batched in turn; the table shows medians
results_dir = "results/quick"  # the results are kept in <results_dir>/benchmark.json for later builds
rerun = False  # measure again even when the stored results match this machine and these parameters

# %% tags=["hide-input"]
from datetime import datetime

import pandas as pd
import torch
from IPython.display import Markdown
from myst_nb import glue

from lrsc.bench import run, runner, stored
from lrsc.book import chapter_times
from lrsc.paths import resolve
from lrsc.settings import TrainSettings
from lrsc.worker import THREADS

path = resolve(results_dir) / "benchmark.json"
wanted = stored.identity(quick, threads, repeats)
record = None if rerun else stored.load(path, wanted)
measured_now = record is None
if measured_now:
    record = stored.save(path, wanted, *run(quick=quick, threads=threads, repeats=repeats))
rows, summary = record["rows"], record["summary"]
when = datetime.fromisoformat(record["measured_at"]).strftime("%Y-%m-%d %H:%M UTC")
took = f"in {summary['seconds']:.0f} s"
glue("bench_version", "the short version" if quick else "the full version", display=False)
glue("bench_provenance",
     f"Its numbers were measured in this build, on {when}, {took}." if measured_now else
     f"Its numbers were read from {results_dir}/benchmark.json, measured on {when} ({took}) by an earlier build "
     "on this machine with the same lrsc version, threads and repeats; set the parameter rerun to measure again.",
     display=False)

for key in ("parity_layers", "parity_width", "parity_models", "parity_step_mflop", "batched_speedup_parity_m8",
            "batched_speedup_parity_m24", "batched_speedup_parity_m8_sgd_settings", "data_path_speedup",
            "data_path_speedup_cmnist", "matmul_gflops", "matmul_size", "threads", "repeats",
            "speedup_at_matmul_peak_parity_m24", "batched_speedup_cnn_m8_w0125", "batched_speedup_cnn_m8_w025",
            "channels_last_speedup_cnn_w0125", "channels_last_speedup_cnn_w025", "batch_mate_steps",
            "one_model_overhead", "one_model_overhead_fcn", "one_model_layers", "one_model_steps",
            "one_model_rounds", "one_model_samples"):
    glue(key, summary[key], display=False)
glue("batch", summary["batch_size"], display=False)
for key in ("record_every", "eval_every"):
    glue(key, getattr(TrainSettings(), key), display=False)
for key, name in (("batched_speedup_parity_m24", "m24"), ("batched_speedup_cnn_m8_w0125", "cnn_w0125"),
                  ("batched_speedup_cnn_m8_w025", "cnn_w025"), ("one_model_overhead", "overhead"),
                  ("one_model_overhead_fcn", "overhead_fcn")):
    glue(f"{name}_min", summary[f"{key}_range"][0], display=False)
    glue(f"{name}_max", summary[f"{key}_range"][1], display=False)
for key, name in (("step_share_wide", "step_wide_percent"), ("step_share_thin", "step_thin_percent"),
                  ("step_share_other", "step_other_percent"), ("wide_products_of_peak", "wide_percent"),
                  ("hot_product_of_peak", "hot_percent"), ("flops_fraction", "flops_percent"),
                  ("sequential_flops_fraction", "sequential_flops_percent"),
                  ("cnn_flops_fraction", "cnn_flops_percent")):
    glue(name, 100 * summary[key], display=False)
glue("channels_last_says", runner.layout_says(summary), display=False)
glue("run_threads", THREADS, display=False)
glue("device_name", "CPU" if summary["device"] == "cpu" else summary["device"], display=False)
glue("cnn_batch_mate_diff", summary["batch_mate_weight_diff_cnn"], display=False)
glue("cnn_diff_says", "It is small, but not zero, so the run would change with its grouping"
     if summary["batch_mate_weight_diff_cnn"] else "It happens to be 0 here, but nothing makes it so: the same run "
     "could change with its grouping", display=False)
glue("fcn_batch_mate_diff", summary["batch_mate_weight_diff_fcn"], display=False)
glue("gpu_says", f"this machine has one ({torch.cuda.get_device_name()}), but the page runs the benchmark on the CPU"
     if torch.cuda.is_available() else "the machine that built this book has none that torch can use", display=False)
pd.DataFrame(rows).set_index("benchmark").style.format(precision=3, na_rep="")

# %% [markdown]
# Each row times the same work two ways in this one process, both at
# {glue:text}`threads` thread(s): *baseline* is the plain way (the models trained one after
# another with `lrsc.train.train`; minibatches from a `torch.utils.data.DataLoader` over a
# `TensorDataset`; one model trained by a plain torch loop), *lrsc* the batched or index-based
# way (in the two `channels_last` rows, one CNN in the default memory layout and in
# `torch.channels_last`; in the two one-model rows, `lrsc.train.train`). In the training cases
# both paths run the same steps and one full evaluation of the training set at the end. Each
# training case runs {glue:text}`repeats` rounds, the two ways in turn; the table gives the
# median times and the smallest and largest ratio of a single round, which shows how much a
# shared machine moves them.
#
# Training the parity FCNs together is {glue:text}`batched_speedup_parity_m8:.1f`× faster
# than one at a time for 8 models and {glue:text}`batched_speedup_parity_m24:.1f`× for 24
# (single rounds: {glue:text}`m24_min:.1f`× to {glue:text}`m24_max:.1f`×). With momentum,
# an L1 and an L2 penalty, each model's update takes the general SGD route of the batched
# kernel (the gradients, then torch.optim.SGD's arithmetic per model), and 8 models train
# {glue:text}`batched_speedup_parity_m8_sgd_settings:.1f`× faster together than one at a time.
# Counting the matmul FLOPs (6 per weight and sample for a training step, 2 for the
# evaluation), the batched parity training reaches {glue:text}`flops_percent:.0f`% of the
# machine's dense matmul speed ({glue:text}`matmul_gflops:.0f` GFLOP/s for a
# {glue:text}`matmul_size`×{glue:text}`matmul_size` float32 product), one model at a time
# {glue:text}`sequential_flops_percent:.0f`%: alone, a
# parity FCN leaves the processor idle most of the time. For
# Colored-MNIST-sized FCNs one model's matmuls already keep the processor busy, so batching
# gains less. Taking minibatches by index from tensors is
# {glue:text}`data_path_speedup:.0f`× faster than the `DataLoader` for parity-sized samples
# (which collates {glue:text}`batch` samples one by one) and
# {glue:text}`data_path_speedup_cmnist:.1f`× for Colored-MNIST-sized ones, where copying the
# pixels dominates.
#
# **How far batching can go on a CPU.** If the batched parity training did nothing but its
# matmuls, at the dense rate, it would be
# {glue:text}`speedup_at_matmul_peak_parity_m24:.1f`× faster than one model at a time. That
# is the ceiling, and it is low because one model's step wastes less than one might think:
# the one-at-a-time path already spends {glue:text}`sequential_flops_percent:.0f`% of its time
# on matmul arithmetic. The profiler shows where the batched step of the largest parity stack
# loses the rest. The products with the {glue:text}`parity_width`×{glue:text}`parity_width`
# weight (forward, backward and update) take {glue:text}`step_wide_percent:.0f`% of the step and run at
# {glue:text}`wide_percent:.0f`% of the dense rate; as {glue:text}`parity_models` small products of a
# batch with that weight they reach {glue:text}`hot_percent:.0f`% of it even when one is repeated on
# operands already in cache. The thin products of the input layer and the head take
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
# **One model at a time.** Runs that cannot share a stack (conv nets, Adam-type optimisers,
# models with bias terms) train alone in `lrsc.train.train`'s loop, which does more than
# SGD steps: it keeps the minibatch's records every {glue:text}`record_every` steps and checks
# the stopping rules on the full training set every {glue:text}`eval_every`. For a model so
# small that its arithmetic costs next to nothing, a {glue:text}`one_model_layers` ReLU network
# with bias terms trained for {glue:text}`one_model_steps` steps on {glue:text}`one_model_samples`
# synthetic samples, that loop takes {glue:text}`one_model_overhead:.2f`× the time of a plain torch
# loop doing the same minibatch SGD steps (the same data order, `F.cross_entropy`,
# `loss.backward()`, `torch.optim.SGD`; the median of {glue:text}`one_model_rounds` rounds, the
# two in turn; single rounds {glue:text}`overhead_min:.2f`× to {glue:text}`overhead_max:.2f`×).
# Without bias terms the same network trains through the stacked kernel as a stack of one, at
# {glue:text}`one_model_overhead_fcn:.2f`× the plain loop's time (single rounds
# {glue:text}`overhead_fcn_min:.2f`× to {glue:text}`overhead_fcn_max:.2f`×).
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
# and {glue:text}`channels_last_speedup_cnn_w025:.2f`× at width 0.25 (above 1 is a gain): in
# this build, {glue:text}`channels_last_says`. `lrsc.train.train` trains any model with
# convolutions in that layout (the one-at-a-time times above include it).
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
# {glue:text}`cnn_batch_mate_diff:.1e` after as many steps. {glue:text}`cnn_diff_says`. A CPU
# convolution's rounding also depends on the number of threads it runs on, so every run of a
# sweep trains and is evaluated on {glue:text}`run_threads` thread(s), whatever the machine or
# the engine (its provenance records it): the cores are used by runs, worker processes and
# chapters side by side, and a run's numbers are the same on a laptop and on a cluster. Since batching
# gains little for conv nets on a CPU and would cost that independence, the sweep batches only
# bias-free FCNs and trains conv nets one at a time.
#
# **On a GPU.** Every number on this page was measured on the {glue:text}`device_name`. This page
# measures no GPU: {glue:text}`gpu_says`. To measure one, run
# `python -m lrsc.bench --device cuda`; it runs every benchmark on the GPU except the
# profiled step breakdown, which is CPU-only.
#
# These are wall-clock times on a machine that may be shared with other work: rerun the
# benchmark (or run it with `--threads 1`) to see how much they move.

# %% tags=["hide-input"]
times, jobs = chapter_times()
glue("chapter_times_says", "The table gives the time each chapter took to execute, in seconds, the last time this "
     "project folder's book build ran it, as measured on this machine, with "
     + ("one chapter executing at a time." if jobs == 1 else f"{jobs} chapters executing at a time, each kernel on its "
        "share of the cores and every run on one thread (this page by itself, after the chapters that train).") if times else "No build of this project folder has recorded its chapters' times yet.",
     display=False)
glue("chapter_times", Markdown("| chapter | seconds |\n|:--|--:|\n" + "".join(
    f"| {name} | {seconds:.0f} |\n" for name, seconds in times.items())) if times else Markdown(""),
    display=False)

# %% [markdown]
# **Building the book.** {glue:text}`chapter_times_says` A chapter that finds
# its sweeps (or, for this page, its benchmark results) already stored reads them instead of
# training, so its time depends on what earlier builds left behind.
#
# ```{glue:md} chapter_times
# :format: myst
# ```
