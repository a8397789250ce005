# %% [markdown]
# # Fig. 4 — robustness and compressibility across datasets and models
#
# **Claim (paper, Fig. 4, and Fig. 16 of its supplement for Corrupted CIFAR-10).** The parity
# result holds on image data and for convolutional networks: on four datasets with a spurious
# feature and five architectures, a larger learning rate gives higher unbiased test
# accuracy, higher prunability and more compressible activations.
#
# **The data** (see {doc}`definitions`). Each dataset has a class `y` (the core feature) and a
# bias label `b` (the spurious feature). In training `b = y` except on a fraction `rho` of
# bias-conflicting (BC) samples; in the unbiased test set `b` is independent of `y`.
#
# - **Colored MNIST** (Nam et al. 2020): the digit is the class, the colour of its stroke the bias.
# - **Double MNIST** (the paper's own): two digits side by side; the left one is the class,
#   the right one, drawn brighter, the bias.
# - **MNIST-CIFAR** (after Shah et al. 2020): an MNIST digit (the bias) above a CIFAR-10
#   image (the class).
# - **Corrupted CIFAR-10** (Nam et al. 2020): the object is the class, one of ten corruptions
#   the bias; the paper reports it in its supplement.
#
# The models are an FCN (2 hidden layers, no bias terms), a VGG11-like CNN without bias
# terms, and torchvision's ResNet18, ResNet50 and Wide ResNet-101-2 adapted to small images;
# all are trained with plain SGD at a constant LR until 100% training accuracy.

# %% tags=["parameters"]
sweep_params = [  # one sweep config per dataset x model (see `lrsc sweep`)
    "params/quick/fig4_colored_mnist_fcn.yaml",
    "params/quick/fig4_colored_mnist_cnn.yaml",
    "params/quick/fig4_double_mnist_fcn.yaml",
    "params/quick/fig4_mnist_cifar_fcn.yaml",
]
settings_params = "params/quick/fig4_settings.yaml"  # Colored MNIST FCN at other rho, smallest and largest LR
sample_datasets = ["colored_mnist", "double_mnist", "mnist_cifar", "corrupted_cifar10"]  # shown as sample rows
n_samples = 8  # images per sample row
settings_span = 8  # the settings sweep compares the largest compared LR with one about this many times smaller
overrides = {}  # {dotted key: value} applied to every sweep, e.g. {"grid.seed": [0, 1, 2]}
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% [markdown]
# ## The datasets
#
# {numref}`fig4-samples` shows, for each dataset, a row of training samples and a row of
# unbiased test samples. The training rows come from a tiny training set drawn with each
# dataset's default `rho`, so they are usually all bias-aligned; in the test rows most samples
# are BC.

# %% tags=["hide-input"]
from lrsc import claims, datasets, plots, report
from lrsc.chapter import Chapter
from lrsc.datasets.corrupted_cifar10 import CORRUPTIONS

ch = Chapter("fig4_datasets", results_dir, overrides, progress)
# Ten test samples at least: the unbiased test set then holds every bias value (b is exactly uniform).
samples = {name: datasets.build(name, n_train=n_samples, n_test=max(n_samples, 10)) for name in sample_datasets}
rows = {f"{name}\n{part}": split for name, (train_set, test_set) in samples.items()
        for part, split in (("training", train_set), ("unbiased test", test_set))}
ch.figure("fig4_samples", plots.sample_rows(rows, n=n_samples))
ch.figure("fig4_corruptions", plots.sample_grid(samples["corrupted_cifar10"][1], by_bias=True,
                                                bias_names=[f.__name__ for f in CORRUPTIONS], cols=5))

# %% [markdown]
# ```{glue:figure} fig4_samples
# :name: fig4-samples
# :alt: A row of training and a row of unbiased test images per dataset, captioned with class and bias.
#
# Samples of each dataset: per dataset, a row of training images and a row of unbiased test
# images, captioned with their class `y` and bias `b`; bias-conflicting samples (`b ≠ y`) are
# framed and captioned in red.
# ```
#
# {numref}`fig4-corruptions` shows the ten corruptions of Corrupted CIFAR-10, one test image
# each, captioned with the corruption (the bias `b`). They are lrsc's torch re-implementation
# of the CIFAR-10-C corruptions at severity 5; frost, fog, spatter and elastic are
# approximations.
#
# ```{glue:figure} fig4_corruptions
# :name: fig4-corruptions
# :alt: One Corrupted CIFAR-10 test image per corruption.
#
# Corrupted CIFAR-10: one unbiased test image per corruption, captioned with its class `y`
# and its corruption (the bias `b`).
# ```
#
# ## The sweeps
#
# Each sweep trains one model on one dataset at LRs from a small one up to the edge of stability
# (as in the paper: the largest LR at which no seed diverges or loses most of its accuracy,
# found by probing; the first unstable LR is kept and shown) and several seeds. The table
# lists what each sweep of this build trained on, read from its stored config; below it, what
# each sweep's LRs span, beside the paper's.

# %% tags=["hide-input"]
results = ch.sweeps("sweeps", sweep_params)
main = next(iter(results.values()))  # the data settings repeat the first sweep at two of its LRs
ends = report.compared_ends(main, settings_span)
settings_sweep = ch.sweep("settings", settings_params, changes={"grid.lr": [ends[0], ends[-1]]})
ch.glue("fig4_settings_lo", f"{ends[0]:g}")
ch.glue("fig4_settings_hi", f"{ends[-1]:g}")
ch.glue("fig4_settings_span", f"{settings_span:g}")
ch.markdown("fig4_protocols", "\n".join(f"- **{name}**: {report.lr_protocol(ds)}" for name, ds in results.items()))
report.settings_table(results)

# %% [markdown]
# ```{glue:md} fig4_protocols
# :format: myst
# ```
#
# ## Unbiased accuracy, prunability and activation compressibility against LR
#
# {numref}`fig4-metrics` has one row per dataset × model, read like the parity chapter's
# figures: the line is the mean over seeds, the band spans the seeds, filled dots mark the
# compared LRs (every seed reached 100% training accuracy), hollow dots LRs at which some seed
# hit the step cap, red crosses LRs at which some seed diverged.

# %% tags=["hide-input"]
ch.figure("fig4_metrics", plots.metrics_grid(results, ("test_acc", "prunability", "act_comp")))
for claim, short in (("fig4.acc", "acc"), ("fig4.prune", "prune"), ("fig4.both", "both"), ("fig4.comp", "comp")):
    ch.glue(f"fig4_{short}_answer", report.answer(claims.counts(ch.table[ch.table.claim == claim])))
ch.glue("fig4_n_sweeps", len(results))
ch.glue("fig4_trained", "; ".join(results))
above = [report.above_one(ds) for ds in results.values()]
ch.glue("fig4_above_one", f"{sum(a for a, _ in above)} of the {sum(n for _, n in above)} runs")

# %% [markdown]
# ```{glue:figure} fig4_metrics
# :name: fig4-metrics
# :alt: Unbiased accuracy, prunability and activation compressibility against the LR, one row per sweep.
#
# Unbiased test accuracy, prunability and activation compressibility against the learning
# rate (log axis), one row per dataset × model sweep; seed mean with a band from the seed
# minimum to maximum.
# ```
#
# **What {numref}`fig4-metrics` shows.** Over the {glue:text}`fig4_n_sweeps` dataset × model
# sweeps, the claim that unbiased accuracy rises with the LR {glue:text}`fig4_acc_answer`;
# that prunability rises, {glue:text}`fig4_prune_answer`; that both rise together,
# {glue:text}`fig4_both_answer`; that activation compressibility rises,
# {glue:text}`fig4_comp_answer`. The verdict table at the end of the chapter gives each
# sweep's effect with its interval. In
# {glue:text}`fig4_above_one`, pruning raised unbiased accuracy at some pruning fraction
# (prunability terms above 1; see {doc}`definitions`).
#
# ## Beside the paper's Tab. 1
#
# The paper's supplement (Tab. 1) gives, per dataset × model, the minimum and the maximum of
# each variable over its LR range, each taken on its own (so a row's ranges say nothing about
# which LR gave which end). The table sets ours, the same way over the compared LRs, beside
# the paper's; accuracies in %. Our quick profile trains narrower networks on far fewer
# samples, with a rho of our choosing (a parameter; the paper's values could not be read from
# our copy of it): compare the effects, and read levels only as what each setting gives.

# %% tags=["hide-input"]
report.with_headers(report.ranges_table(results).round(3), settings_sweep)

# %% [markdown]
# ## What the quick profile reduces
#
# `params/full/fig4_*.yaml` hold the paper's grid: all four datasets × FCN, CNN, ResNet18,
# ResNet50 and Wide ResNet-101-2, the full training sets, FCN width 1024 (2048, with rho =
# 0.25, on MNIST-CIFAR and Corrupted CIFAR-10), CNNs and ResNets at full width, LRs spanning
# each row's Tab. 1 range. The rendered build trained {glue:text}`fig4_trained`. A sweep from a
# small LR to the edge of stability costs about as many steps as its smallest LR needs, which
# grows as 1/LR, so the quick profile keeps the models a CPU trains to 100% training accuracy in
# seconds at the edge: narrow FCNs on subsets of the training sets. The CNN, the ResNets,
# MNIST-CIFAR (on which a narrow FCN trained on a subset stays near chance) and Corrupted
# CIFAR-10 (whose results the paper gives in its supplement; its samples are shown above) are
# trained by the full profile. The table under "The sweeps" gives each sweep's samples, rho,
# width, LRs and seeds; an LR at which some seed did not reach 100% training accuracy within the
# step cap is shown hollow and not compared.
#
# ## Which settings show the effect
#
# Whether, and how much, the LR moves accuracy may depend on how many BC samples the training
# set holds. The settings sweep repeats the Colored MNIST FCN sweep with fewer of
# them, at LR {glue:text}`fig4_settings_lo` and LR {glue:text}`fig4_settings_hi` only (its largest
# compared LR and its smallest within a factor {glue:text}`fig4_settings_span` of it); per
# setting, the paired effect of the large LR
# on unbiased accuracy (points) and prunability, with its verdict ({doc}`claims` maps them).

# %% tags=["hide-input"]
report.with_headers(report.settings_frame(settings_sweep).round(3), settings_sweep)

# %% [markdown]
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("fig4_claims")

# %% [markdown]
# ```{glue:md} fig4_claims
# :format: myst
# ```
