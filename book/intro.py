# %% [markdown]
# # lrsc
#
# **lrsc** reproduces, and extends, *Large Learning Rates Simultaneously Achieve
# Robustness to Spurious Correlations and Compressibility* (Barsbey, Prieto, Zafeiriou,
# Birdal; arXiv 2507.17748). The paper's claim: training with a large constant learning
# rate (LR) makes a network rely less on a spurious feature — so it does better on an
# unbiased test set — and at the same time makes the network and its representations
# more compressible.
#
# ## The answer
#
# The table below reads back every sweep this book ran, from where the chapters stored
# it. One row per sweep (dataset × model): how many LRs are compared (those at which
# every seed reached 100% training accuracy and none diverged), the smallest and largest
# of them, the seed mean of unbiased test accuracy (%) and of prunability at each, and
# the Spearman rank correlation (`rank`) of the seed mean with LR over the compared LRs
# (– where fewer than two LRs are compared). {numref}`intro_headline` draws the same.

# %% tags=["parameters"]
results_dir = "results/quick"  # the folder the chapters stored their sweeps in (one subfolder per sweep)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from myst_nb import glue

from lrsc import plots, report
from lrsc.book import resolve
from lrsc.config import DEFAULTS

table = report.headline(resolve(results_dir))
acc_up = table[("accuracy (%)", "rank")] > 0
prune_up = table[("prunability", "rank")] > 0
glue("intro_n_sweeps", len(table), display=False)
glue("intro_n_acc_up", int(acc_up.sum()), display=False)
glue("intro_n_prune_up", int(prune_up.sum()), display=False)
glue("intro_n_both_up", int((acc_up & prune_up).sum()), display=False)
for key, value in {"q": DEFAULTS["metrics"]["q"], "n_act": DEFAULTS["metrics"]["n_act"],
                   "q_first": min(DEFAULTS["metrics"]["prune_fractions"]),
                   "q_last": max(DEFAULTS["metrics"]["prune_fractions"]),
                   "patience": DEFAULTS["train"]["collapse_patience"]}.items():  # quoted under "Definitions"
    glue(f"intro_default_{key}", value, display=False)
fig = plots.headline(table)
glue("intro_headline", fig, display=False)
plt.close(fig)
table.style.format(precision=3, na_rep="–").format(
    precision=1, subset=[("accuracy (%)", "low LR"), ("accuracy (%)", "high LR")]).format(
    "{:.2f}", subset=[("accuracy (%)", "rank"), ("prunability", "rank")], na_rep="–").format(
    "{:g}", subset=[("", "LR low"), ("", "LR high")], na_rep="–")

# %% [markdown]
# Of the {glue:text}`intro_n_sweeps` sweeps stored by this build, unbiased accuracy rises
# with LR (a positive rank correlation over the compared LRs) in
# {glue:text}`intro_n_acc_up`, prunability in {glue:text}`intro_n_prune_up`, and both
# together in {glue:text}`intro_n_both_up`.
#
# ```{glue:figure} intro_headline
# :name: intro_headline
#
# Unbiased test accuracy (left) and prunability (right) of each stored sweep at its
# smallest compared LR (hollow dot) and its largest (filled dot); the arrow is blue where
# the metric rises with LR over the compared LRs (positive rank correlation) and orange
# where it does not.
# ```
#
# The chapters show each sweep in full, with the paper's numbers beside ours.
#
# Every chapter of this book is a notebook that runs its own sweep through the `lrsc`
# package and draws its figures from that run; no number in a chapter is typed in. The
# paper's numbers are quoted beside ours as the paper's. The book is built with the
# *quick* profile (small grids that run on a laptop CPU in minutes) unless said otherwise;
# `params/full/` holds the paper's protocol.
#
# ## How to read a chapter
#
# Each chapter starts with its claim and a `parameters` cell. Code that only computes or
# arranges results is folded: click the cell to show it. Re-run a chapter with other
# parameters through papermill (see the README), or call the same functions from your
# own notebook:
#
# ```python
# from lrsc import sweep, plots, report
# ds = sweep.run_sweep("params/quick/parity.yaml", "results/my-parity", {"grid.lr": [0.1, 1.0]})
# plots.metrics_vs_lr(ds)
# report.summary_table(ds)
# ```
#
# A sweep stores one file per run, named by the hash of the run's full config, and
# collects them into an `xarray.Dataset` with dims `(lr, seed)`; interrupt it and run it
# again and only the unfinished runs are trained.
#
# ## Definitions and choices
#
# The metrics follow the paper's definitions (restated in `SPEC §4`): unbiased test
# accuracy; **prunability**, the mean over pruning fractions q from
# {glue:text}`intro_default_q_first` to {glue:text}`intro_default_q_last` of the
# accuracy kept after zeroing the fraction q of neurons with the smallest L1 weight norm
# in every hidden layer; **activation compressibility**, the mean q-compressibility
# (q = {glue:text}`intro_default_q`) of {glue:text}`intro_default_n_act` random test
# inputs' penultimate representations; and the **BC loss ratio**, the share of a
# minibatch's loss carried by its bias-conflicting samples. Where the paper is silent we
# chose, made the choice a parameter, and say so (the values quoted here are lrsc's
# defaults): the q-grid of prunability, q, how divergence is detected (a non-finite
# value, a dead network, or a fall back to chance accuracy that lasts
# {glue:text}`intro_default_patience` checks), the step cap, and that 100% training
# accuracy is checked every `eval_every` steps.
