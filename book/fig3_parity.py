# %% [markdown]
# # Fig. 3 — parity
#
# **Claim (paper, Fig. 3).** On the parity task, a fully connected network trained with a
# larger learning rate generalises better to an unbiased test set, is more prunable, and has
# more compressible activations; its attributions move from the spurious bit to the core bits.
#
# **The data** (see {doc}`definitions`). Each input is `n_core` core bits whose parity is the
# label, `n_spu` spurious bits whose parity is the bias label, and `n_noise` uniform noise
# bits, as ±1. In training the bias label equals the label except on a fraction `rho` of
# bias-conflicting samples; in the unbiased test set the two are independent, so a network
# that reads the spurious bits is at chance there. The model is an FCN with
# {glue:text}`parity_cfg_depth` hidden layers of {glue:text}`parity_cfg_width` ReLU units and
# no bias terms (the paper's supplement uses 2 × 200; its main text says 3 layers), trained
# with plain SGD, batch {glue:text}`parity_cfg_batch_size` and a constant LR until 100%
# training accuracy. The paper's values of `rho` and of the bit counts could not be read from
# our copy of it; ours are {glue:text}`parity_cfg_n_core` core, {glue:text}`parity_cfg_n_spu`
# spurious and {glue:text}`parity_cfg_n_noise` noise bits, rho = {glue:text}`parity_cfg_rho`,
# our choices.
#
# **The protocol.** As in the paper, the LRs run from a small one up to the edge of stability:
# the largest LR at which no seed diverges or loses most of its accuracy, found by probing
# upwards (see {doc}`definitions`); the first unstable LR above it is kept and shown. Small
# LRs need more steps to fit, so the step cap grows as 1/LR below a stated LR.

# %% tags=["parameters"]
parity_params = "params/quick/parity.yaml"  # sweep config of the parity figure (see `lrsc sweep`)
moon_star_params = "params/quick/moon_star.yaml"  # sweep config of the moon-star figure
settings_params = "params/quick/parity_settings.yaml"  # a sweep over data settings (rho, n_core)
settings_span = 8  # the settings sweep compares the largest compared LR with one about this many times smaller
overrides = {}  # {dotted key: value} applied to every sweep, e.g. {"grid.seed": [0, 1, 2]}
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
from lrsc import paper, plots, report
from lrsc.chapter import Chapter
from lrsc.results import config_values

ch = Chapter("fig3_parity", results_dir, overrides, progress)
parity = ch.sweep("parity", parity_params)
ends = report.compared_ends(parity, settings_span)  # the LRs the data settings are swept at
settings = ch.sweep("settings", settings_params, changes={"grid.lr": [ends[0], ends[-1]]})
moon_star = ch.sweep("moon_star", moon_star_params)
ch.quote_config("parity", parity)
ch.glue("parity_protocol", report.lr_protocol(parity))
report.summary_table(parity)

# %% [markdown]
# **What ran.** {glue:text}`parity_protocol`
#
# The table lists every learning rate of the sweep: the seed mean of each variable
# (accuracies in %, with the seed standard deviation of unbiased accuracy under `± sd`), the
# mean number of SGD steps, how many seeds reached 100% training accuracy (`conv.`) and how
# many diverged (`div.`). Only LRs at which every seed converged and none diverged are
# compared, as in the paper, which compares models trained to 100% training accuracy.

# %% tags=["hide-input"]
ch.figure("fig3_metrics", plots.metrics_vs_lr(parity))
for short, claim in (("acc", "fig3.acc"), ("prune", "fig3.prune"), ("both", "fig3.both"), ("comp", "fig3.comp"),
                     ("core", "fig3.core"), ("spu", "fig3.spurious")):
    ch.glue(f"parity_{short}_says", ch.says(claim, trend=short != "both"))
ch.glue("parity_paper", paper.tab1_text("parity", "fcn"))
ch.glue("parity_ours", report.ranges_text(parity))

# %% [markdown]
# ```{glue:figure} fig3_metrics
# :name: fig3-metrics
# :alt: Parity FCN: unbiased accuracy, prunability, activation compressibility and sparsity against the LR.
#
# Parity, FCN: unbiased test accuracy, prunability, activation compressibility and activation
# sparsity against the learning rate (log axis); the line is the seed mean, the band spans
# the seeds; filled dots mark compared LRs, hollow dots LRs at which some seed hit the step
# cap, red crosses LRs at which some seed diverged.
# ```
#
# **What {numref}`fig3-metrics` shows.** Over the compared LRs, unbiased test accuracy
# {glue:text}`parity_acc_says`; prunability {glue:text}`parity_prune_says`; activation
# compressibility {glue:text}`parity_comp_says`. The two together, as the paper's title
# claims: {glue:text}`parity_both_says`. Each effect is the mean over seeds of each seed's
# upper-half minus lower-half difference, with its 90% interval over seeds.
#
# **Beside the paper.** The paper's Tab. 1 gives for parity and an FCN, as the smallest and
# largest value of each variable over its LRs (each taken on its own), {glue:text}`parity_paper`.
# Ours, the same way over our compared LRs: {glue:text}`parity_ours`. The paper's bit counts
# and rho are unknown, so compare the effects, not the levels.

# %% tags=["hide-input"]
ch.figure("fig3_prune_curves", plots.prune_curves(parity))
above, runs = report.above_one(parity)
ch.glue("parity_above_one", f"{above} of the {runs} runs" if above else "none of the runs")
ch.glue("parity_prune_scope", "per layer (each hidden layer loses the fraction q of its neurons)"
        if config_values(parity)["prune_scope"] == "layer" else
        "over the whole network (the fraction q of all hidden neurons, wherever they are)")

# %% [markdown]
# ```{glue:figure} fig3_prune_curves
# :name: fig3-prune-curves
# :alt: Share of unbiased accuracy kept after pruning a fraction q of neurons, at the smallest and largest LR.
#
# Parity, FCN: the share of unbiased test accuracy kept after pruning a fraction q of the
# hidden neurons, `P_q`, against q, at the smallest (blue) and the largest (red) compared LR;
# seed mean, band from the seed minimum to maximum; the dotted line is 1.
# ```
#
# **Prunability shown whole.** Prunability is the mean of such a curve over q, with neurons of
# smallest L1 weight norm pruned {glue:text}`parity_prune_scope`. In
# {glue:text}`parity_above_one`, pruning raised unbiased accuracy at some q (`P_q > 1`): the
# pruned neurons carried more of the spurious bits or of the noise than of the core bits.

# %% tags=["hide-input"]
ch.figure("fig3_attributions", plots.attribution_shares(parity))

# %% [markdown]
# ```{glue:figure} fig3_attributions
# :name: fig3-attributions
# :alt: Share of |Integrated Gradients| on core, spurious and noise bits against the LR.
#
# Parity, FCN: the share of total |Integrated Gradients attribution| on the core (green),
# spurious (red) and noise (grey) bits against the learning rate; seed mean and min–max band.
# ```
#
# **Attributions.** Integrated Gradients (captum, zero baseline, attributing the true label's
# logit, {glue:text}`parity_cfg_ig_steps` steps) on {glue:text}`parity_cfg_n_attr` unbiased test
# inputs ({numref}`fig3-attributions`). Over the compared LRs, the core bits' share
# {glue:text}`parity_core_says`; the spurious bits' share {glue:text}`parity_spu_says` (the
# paper shows the move from the spurious to the core bits as attribution maps of one low-LR
# and one high-LR model, Fig. 3, right).
#
# ## Which settings show the effect
#
# The effect depends on the data. The sweep below varies the fraction of bias-conflicting
# samples `rho` and the number of core bits, at LR {glue:text}`parity_settings_lo` and LR
# {glue:text}`parity_settings_hi`: the largest compared LR of the main sweep and, to keep the sweep
# short, its smallest compared LR within a factor {glue:text}`parity_settings_span` of it;
# per setting, the table gives the paired effect of the large LR over the small one on
# unbiased accuracy (points) and prunability, with its verdict ({doc}`claims` maps them).

# %% tags=["hide-input"]
ch.glue("parity_settings_lo", f"{ends[0]:g}")
ch.glue("parity_settings_hi", f"{ends[-1]:g}")
ch.glue("parity_settings_span", f"{settings_span:g}")
report.with_headers(report.settings_frame(settings).round(3), settings)

# %% [markdown]
# ## Moon-star (supplement, Fig. 15)
#
# Moon or star is the label; the quadrant the shape sits in (upper left or lower right) is the
# spurious feature. Shapes are rendered with random size, rotation and position within the
# quadrant on {glue:text}`ms_cfg_image_size`-pixel square images (our rendering: the paper
# gives none); the model is again an FCN, {glue:text}`ms_cfg_depth` × {glue:text}`ms_cfg_width`,
# without bias. The spurious feature is where the shape is, not a region of the input, so
# the attribution split is not computed. {glue:text}`ms_protocol`

# %% tags=["hide-input"]
ch.figure("fig3_moon_star", plots.metrics_vs_lr(moon_star))
ch.quote_config("ms", moon_star)
ch.glue("ms_protocol", report.lr_protocol(moon_star))
for short, claim in (("acc", "fig15.acc"), ("prune", "fig15.prune"), ("both", "fig15.both")):
    ch.glue(f"ms_{short}_says", ch.says(claim, trend=short != "both"))
ch.glue("ms_paper", paper.tab1_text("moon_star", "fcn", ("test_acc", "prunability")))
report.summary_table(moon_star)

# %% [markdown]
# ```{glue:figure} fig3_moon_star
# :name: fig3-moon-star
# :alt: Moon-star FCN: unbiased accuracy, prunability, compressibility and sparsity against the LR.
#
# Moon-star, FCN: unbiased test accuracy, prunability, activation compressibility and
# activation sparsity against the learning rate (log axis), drawn as {numref}`fig3-metrics`.
# ```
#
# Over the compared LRs of {numref}`fig3-moon-star`, unbiased test accuracy
# {glue:text}`ms_acc_says`; prunability {glue:text}`ms_prune_says`; both together
# {glue:text}`ms_both_says`. The paper's Tab. 1 gives for moon-star, as ranges over its LRs,
# {glue:text}`ms_paper`. Our rho = {glue:text}`ms_cfg_rho` and training-set size
# ({glue:text}`ms_cfg_n_train` images) are our choices.
#
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("fig3_claims")

# %% [markdown]
# ```{glue:md} fig3_claims
# :format: myst
# ```
