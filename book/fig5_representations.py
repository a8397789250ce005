# %% [markdown]
# # Fig. 5 — representations: class selectivity and class separation
#
# **Claim (paper, Fig. 5).** Large learning rates change *what* a network represents: its
# penultimate neurons become more selective for the class (the core feature), and its
# representations of different classes move apart. The paper measures the first with the
# class-selectivity index (CSI) and the second with class separation R².
#
# **Definitions** (SPEC §4; computed on the penultimate activations of the same
# `n_act` random unbiased test inputs as activation compressibility). For each neuron,
# `mu_max` is its largest class-conditional mean activation and `mu_rest` the mean of the
# other classes' means; its CSI is `(mu_max - mu_rest) / (mu_max + mu_rest)`, scaled by the
# fraction of the top class's samples on which it fires. The network's CSI is the mean
# over the neurons that fire at all. The **bias-selectivity index** (BSI) is the same with
# bias labels. **Class separation** R² (Kornblith et al. 2021) is one minus the mean
# cosine distance within classes over the mean cosine distance between all pairs.
#
# **A control the paper does not show.** A sparse representation is selective for *some*
# labelling almost by construction: a neuron that fires on few inputs has a large
# `mu_max` for whichever label those inputs happen to share. Large LRs make activations
# sparser (Fig. 3 and 4), so a rising CSI alone does not show that the network uses the
# core feature. We therefore show the CSI beside the BSI and beside the CSI computed with
# randomly permuted class labels (`csi_shuffled`), which measures what sparsity alone gives.
#
# No model is trained for this chapter: it reloads the sweeps of the Fig. 3 and Fig. 4
# chapters from the same `results_dir` (every run stores these metrics).

# %% tags=["parameters"]
sweep_params = [  # sweeps of the Fig. 3 and Fig. 4 chapters, reloaded from results_dir
    "params/quick/parity.yaml",
    "params/quick/fig4_colored_mnist_fcn.yaml",
    "params/quick/fig4_colored_mnist_cnn.yaml",
    "params/quick/fig4_double_mnist_fcn.yaml",
    "params/quick/fig4_double_mnist_cnn.yaml",
    "params/quick/fig4_mnist_cifar_fcn.yaml",
    "params/quick/fig4_corrupted_cifar10_fcn.yaml",
]
overrides = {}  # {dotted key: value} applied to every sweep; keep equal to the other chapters' to reuse their runs
results_dir = "results/quick"  # where the sweeps stored their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from myst_nb import glue

from lrsc import plots, report
from lrsc.book import resolve
from lrsc.sweep import run_sweep

results, by_key = {}, {}
for path in sweep_params:
    ds = run_sweep(resolve(path), resolve(results_dir) / resolve(path).stem, overrides, progress=progress)
    ds["csi_minus_bsi"] = ds.csi - ds.bsi
    name = " / ".join(report.dataset_model(ds))
    results[name], by_key[report.dataset_model(ds)] = ds, ds
fig = plots.selectivity_vs_lr(results)
glue("fig5_selectivity", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig5_selectivity
# :name: fig5-selectivity
#
# Left: the network's class selectivity (CSI, green), bias selectivity (BSI, red) and the
# CSI with shuffled class labels (grey) against the learning rate, for each reloaded sweep.
# Right: class separation R². Lines are seed means, bands span the seeds; filled dots mark
# LRs at which every seed reached 100% training accuracy (the LRs compared).
# ```

# %% tags=["hide-input"]
variables = {"CSI": "csi", "BSI": "bsi", "CSI shuffled": "csi_shuffled", "CSI − BSI": "csi_minus_bsi",
             "class sep.": "class_sep"}
verdicts = report.trend_table(results, variables)
n = len(results)
glue("fig5_n_sweeps", n, display=False)
for short, var in variables.items():
    key = var.replace("_", "")
    glue(f"fig5_up_{key}", int((verdicts[(short, "verdict")] == "agrees").sum()), display=False)
    glue(f"fig5_down_{key}", int((verdicts[(short, "verdict")] == "disagrees").sum()), display=False)
verdicts.round(3)

# %% [markdown]
# The table gives, per sweep and variable, the robust LR effect used throughout the book:
# the Spearman correlation of the seed mean with LR over the compared LRs (`rank`), the
# difference between the upper and the lower half of the compared LR range (`effect`),
# the standard deviation of that difference over seeds (`seed sd`), and the verdict on
# "rises with LR": *agrees* when the effect exceeds its seed spread and the rank
# correlation has its sign, *disagrees* when it clearly falls, *inconclusive* otherwise.
#
# **What the figure shows.** Of the {glue:text}`fig5_n_sweeps` sweeps, the CSI clearly rises
# with LR in {glue:text}`fig5_up_csi` (and clearly falls in {glue:text}`fig5_down_csi`), class
# separation rises in {glue:text}`fig5_up_classsep` (falls in {glue:text}`fig5_down_classsep`).
# The controls: the BSI rises in {glue:text}`fig5_up_bsi`, the CSI with shuffled labels in
# {glue:text}`fig5_up_csishuffled`, and the CSI's lead over the BSI (CSI − BSI) grows with LR in
# {glue:text}`fig5_up_csiminusbsi` of the {glue:text}`fig5_n_sweeps` sweeps ({numref}`fig5-selectivity`).
# Where the BSI and the shuffled-label CSI rise as fast as the CSI, a rising CSI reflects
# sparser activations rather than a stronger use of the core feature; where CSI − BSI
# rises, the network's neurons lean towards the class more than towards the bias.
#
# ## Beside the paper's Tab. 1
#
# The paper's supplement gives the min and max over its LR range of the CSI and of class
# separation for every dataset × model (Tab. 1). Ours are the min and max over the
# compared LRs of each metric's seed mean.

# %% tags=["hide-input"]
report.ranges_table(by_key, metrics=("csi", "class_sep")).round(3)

# %% [markdown]
# **Beside the paper.** In the paper's Tab. 1 the CSI rises with LR in every row — for
# parity and an FCN from 0.032 to 0.152, for Colored MNIST and an FCN from 0.243 to 0.381 —
# and so does class separation (parity 0.008 → 0.136, Colored MNIST FCN 0.291 → 0.387).
# The paper shows no BSI and no shuffled-label control, so it cannot tell the two readings
# apart; the verdicts above are computed from this run and say which holds here. Our
# networks are narrower and trained on fewer samples than the paper's (see the Fig. 3 and
# Fig. 4 chapters), so compare directions rather than levels.
