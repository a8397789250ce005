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
# training accuracy. The paper leaves `rho` and the bit counts blank; ours are
# {glue:text}`parity_cfg_n_core` core, {glue:text}`parity_cfg_n_spu` spurious and
# {glue:text}`parity_cfg_n_noise` noise bits, rho = {glue:text}`parity_cfg_rho`, our choices.

# %% tags=["parameters"]
parity_params = "params/quick/parity.yaml"  # sweep config of the parity figure (see `lrsc sweep`)
moon_star_params = "params/quick/moon_star.yaml"  # sweep config of the moon-star figure
settings_params = "params/quick/parity_settings.yaml"  # a sweep over data settings (rho, n_core)
overrides = {}  # {dotted key: value} applied to every sweep, e.g. {"grid.seed": [0, 1, 2]}
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from lrsc import claims, paper, plots, report
from lrsc.book import resolve
from lrsc.sweep import run_sweeps

out = resolve(results_dir)
parity, settings, moon_star = run_sweeps([parity_params, settings_params, moon_star_params], out, overrides,
                                         progress).values()
claims.record(out, "fig3_parity", {"main": [parity_params], "moon_star": [moon_star_params],
                                   "settings": [settings_params]})
table = claims.ledger(out, chapter="fig3_parity")
for key, value in report.config_values(parity).items():  # the run's settings, quoted in the prose
    glue(f"parity_cfg_{key}", value, display=False)
report.summary_table(parity)

# %% [markdown]
# The table lists every learning rate of the sweep: the seed mean of each variable
# (accuracies in %, with the seed standard deviation of unbiased accuracy under `± sd`), the
# mean number of SGD steps, how many seeds reached 100% training accuracy (`conv.`) and how
# many diverged (`div.`). Only LRs at which every seed converged and none diverged are
# compared, as in the paper, which compares models trained to 100% training accuracy.

# %% tags=["hide-input"]
fig = plots.metrics_vs_lr(parity)
glue("fig3_metrics", fig, display=False)
plt.close(fig)
for short, var in (("acc", "test_acc"), ("prune", "prunability"), ("comp", "act_comp"), ("core", "attr_core"),
                   ("spu", "attr_spurious")):
    glue(f"parity_{short}_says", claims.says(table, f"fig3.parity.{var}"), display=False)
theirs = paper.tab1("parity", "fcn")
glue("parity_paper", f"LRs {paper.span(theirs['lr'])}: unbiased accuracy {paper.span(theirs['test_acc'], True)}, "
     f"prunability {paper.span(theirs['prunability'])}, activation compressibility {paper.span(theirs['act_comp'])}",
     display=False)
ours = report.ranges_table({"ours": parity}).loc["ours"]
glue("parity_ours", f"LRs {paper.span(tuple(ours['lr']['ours']))}: unbiased accuracy "
     f"{paper.span(tuple(ours['test_acc']['ours']), True)}, prunability {paper.span(tuple(ours['prunability']['ours']))}, "
     f"activation compressibility {paper.span(tuple(ours['act_comp']['ours']))}", display=False)

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
# compressibility {glue:text}`parity_comp_says`. Each effect is the mean over seeds of each
# seed's upper-half minus lower-half difference, with its 90% interval over seeds.
#
# **Beside the paper.** The paper's Tab. 1 gives for parity and an FCN, as the smallest and
# largest value of each variable over its LRs (each taken on its own), {glue:text}`parity_paper`.
# Ours, the same way over our compared LRs: {glue:text}`parity_ours`. The paper's bit counts
# and rho are unknown, so compare the effects, not the levels.

# %% tags=["hide-input"]
fig = plots.prune_curves(parity)
glue("fig3_prune_curves", fig, display=False)
plt.close(fig)
above, runs = report.above_one(parity)
glue("parity_above_one", f"{above} of the {runs} runs" if above else "none of the runs", display=False)
glue("parity_prune_scope", "per layer (each hidden layer loses the fraction q of its neurons)"
     if report.config_values(parity)["prune_scope"] == "layer" else
     "over the whole network (the fraction q of all hidden neurons, wherever they are)", display=False)

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
fig = plots.attribution_shares(parity)
glue("fig3_attributions", fig, display=False)
plt.close(fig)

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
# samples `rho` and the number of core bits, at the smallest and the largest LR of the main
# sweep; per setting, the table gives the paired effect of the large LR over the small one on
# unbiased accuracy (points) and prunability, with its verdict ({doc}`claims` maps them).

# %% tags=["hide-input"]
report.with_headers(report.settings_frame(settings).round(3), settings)

# %% [markdown]
# ## Moon-star (supplement, Fig. 15)
#
# Moon or star is the label; the quadrant the shape sits in (upper left or lower right) is the
# spurious feature. Shapes are rendered with random size, rotation and position within the
# quadrant on {glue:text}`ms_cfg_image_size`-pixel square images (our rendering: the paper
# gives none); the model is again an FCN, {glue:text}`ms_cfg_depth` × {glue:text}`ms_cfg_width`,
# without bias. The spurious feature is where the shape is, not a region of the input, so
# the attribution split is not computed.

# %% tags=["hide-input"]
fig = plots.metrics_vs_lr(moon_star)
glue("fig3_moon_star", fig, display=False)
plt.close(fig)
for key, value in report.config_values(moon_star).items():
    glue(f"ms_cfg_{key}", value, display=False)
for short, var in (("acc", "test_acc"), ("prune", "prunability")):
    glue(f"ms_{short}_says", claims.says(table, f"fig15.moon_star.{var}"), display=False)
theirs = paper.tab1("moon_star", "fcn")
glue("ms_paper", f"LRs {paper.span(theirs['lr'])}: unbiased accuracy {paper.span(theirs['test_acc'], True)}, "
     f"prunability {paper.span(theirs['prunability'])}", display=False)
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
# {glue:text}`ms_acc_says`; prunability {glue:text}`ms_prune_says`. The paper's Tab. 1 gives
# for moon-star, as ranges over its LRs, {glue:text}`ms_paper`. Our rho =
# {glue:text}`ms_cfg_rho` and training-set size ({glue:text}`ms_cfg_n_train` images) are our
# choices.
#
# ## This chapter's verdicts

# %% tags=["hide-input"]
glue("fig3_claims", Markdown(claims.markdown(table)), display=False)

# %% [markdown]
# ```{glue:md} fig3_claims
# :format: myst
# ```
