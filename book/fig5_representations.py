# %% [markdown]
# # Fig. 5 — representations: class selectivity and class separation
#
# **Claim (paper, Fig. 5).** Large learning rates change *what* a network represents: its
# penultimate neurons become more selective for the class (the core feature), and its
# representations of different classes move apart. The paper measures the first with the
# class-selectivity index (CSI) and the second with class separation R².
#
# **Definitions** ({doc}`definitions`; computed on the penultimate activations of the same
# `n_act` random unbiased test inputs as activation compressibility). For each neuron,
# `mu_max` is its largest class-conditional mean activation and `mu_rest` the mean of the
# other classes' means; its CSI is `(mu_max - mu_rest) / (mu_max + mu_rest)`, scaled by the
# fraction of the top class's samples on which it fires. The network's CSI is the mean over
# the neurons that fire at all. The **bias-selectivity index** (BSI) is the same with bias
# labels. **Class separation** R² (Kornblith et al. 2021) is one minus the mean cosine
# distance within classes over the mean cosine distance between all pairs.
#
# **A control the paper does not show.** A sparse representation is selective for *some*
# labelling almost by construction: a neuron that fires on few inputs has a large `mu_max`
# for whichever label those inputs happen to share. Large LRs make activations sparser
# (Fig. 3 and 4), so a rising CSI alone does not show that the network uses the core
# feature. We therefore show the CSI beside the BSI and beside the CSI computed with
# randomly permuted class labels (`csi_shuffled`), which measures what sparsity alone gives.
#
# No model is trained for this chapter: it reads the sweeps of the Fig. 3 and Fig. 4 chapters
# from the same run store (every run stores these variables).

# %% tags=["parameters"]
sweep_params = ["params/quick/parity.yaml", "params/quick/fig4_colored_mnist_fcn.yaml"]  # sweeps of the Fig. 3 and
# Fig. 4 chapters, read from the run store (each profile's parameters list all of them)
overrides = {}  # {dotted key: value} applied to every sweep; keep equal to the other chapters' to reuse their runs
results_dir = "results/quick"  # where the sweeps stored their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
from lrsc import claims, plots, report
from lrsc.chapter import Chapter

ch = Chapter("fig5_representations", results_dir, overrides, progress)
results = ch.sweeps("sweeps", sweep_params)
ch.figure("fig5_selectivity", plots.selectivity_vs_lr(results))
for claim, short in (("fig5.csi", "csi"), ("fig5.class_sep", "sep")):
    ch.glue(f"fig5_{short}_answer", report.answer(claims.counts(ch.table[ch.table.claim == claim])))
ch.glue("fig5_n_sweeps", len(results))

# %% [markdown]
# ```{glue:figure} fig5_selectivity
# :name: fig5-selectivity
# :alt: CSI, BSI and shuffled-label CSI (left) and class separation (right) against the LR, one row per sweep.
#
# Left: the network's class selectivity (CSI, green), bias selectivity (BSI, red) and the CSI
# with shuffled class labels (grey) against the learning rate, for each sweep. Right: class
# separation R². Lines are seed means, bands span the seeds; filled dots mark the compared LRs.
# ```
#
# **What {numref}`fig5-selectivity` shows.** Over the {glue:text}`fig5_n_sweeps` sweeps, the
# claim that the CSI rises with the LR {glue:text}`fig5_csi_answer`; the claim that class
# separation rises {glue:text}`fig5_sep_answer` (the verdict table at the end gives each effect
# with its interval).
#
# **The controls.** The table below judges, with the same rule, how the BSI, the shuffled-label
# CSI and the CSI's lead over the BSI move with the LR in each sweep. Where the BSI and the
# shuffled-label CSI rise as the CSI does, a rising CSI reflects sparser activations rather
# than a stronger use of the core feature; where CSI − BSI rises, the neurons lean towards the
# class more than towards the bias.

# %% tags=["hide-input"]
for ds in results.values():
    ds["csi_minus_bsi"] = (ds.csi - ds.bsi).assign_attrs({**ds.csi.attrs, "long_name": "CSI − BSI", "bounds": "null"})
report.trend_table(results, {"BSI": ("bsi", 1), "CSI, shuffled labels": ("csi_shuffled", 1),
                             "CSI − BSI": ("csi_minus_bsi", 1)})

# %% [markdown]
# ## Beside the paper's Tab. 1
#
# The paper's supplement gives the minimum and the maximum over its LR range of the CSI and of
# class separation for every dataset × model, each taken on its own (Tab. 1). Ours are the
# same over the compared LRs, beside the paper's. The paper shows no BSI and no
# shuffled-label control, so it cannot tell the two readings of a rising CSI apart; our
# networks are narrower and trained on fewer samples than the paper's, so compare effects
# rather than levels.

# %% tags=["hide-input"]
report.with_headers(report.ranges_table(results, variables=("csi", "class_sep")).round(3),
                    next(iter(results.values())))

# %% [markdown]
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("fig5_claims")

# %% [markdown]
# ```{glue:md} fig5_claims
# :format: myst
# ```
