# %% [markdown]
# # Fig. 12, 13, 18 and Prop. 1–2 — the mechanism
#
# **Claim (paper, Sec. 6).** Large learning rates grow the parameters and the logits fast.
# Scaled-up logits make the network's confident mistakes expensive: once a network predicts by
# the spurious feature, its bias-conflicting (BC) samples are *confidently mispredicted*, their
# loss grows with the logit scale while the bias-aligned (BA) samples' loss vanishes, so the
# few BC samples of a minibatch come to dominate its loss and its gradient, which pushes
# against the spurious feature. The paper supports this with four pieces of evidence, each
# measured below from this book's own runs:
#
# - **Fig. 12**: across runs, the largest share of a minibatch's loss that BC samples ever
#   carry during training (the *max BC loss ratio*) correlates with unbiased test accuracy
#   (the paper: {glue:text}`mech_paper_fig12`);
# - **Fig. 13**: at a large LR the logit and parameter norms grow faster, BC samples are
#   confidently mispredicted and their loss dominates (the paper: {glue:text}`mech_paper_fig13`);
# - **Prop. 1–2**: as the logits of a network that predicts by the spurious rule are scaled
#   up, the BC samples' share of the loss tends to one, and the gradient reaching the spurious
#   inputs grows relative to the core ones;
# - **Fig. 18** (supplement): neurons that are class-dominant (CSI > BSI) during training stay
#   class-dominant to the end at a large LR, while bias-dominant ones do not stay so (the
#   paper: {glue:text}`mech_paper_fig18`).
#
# The paper's formulas could not be read from our copy of it; the statements above and the
# quantities below are our reconstruction from its prose. A sample is *confidently
# mispredicted* when a wrong class gets a probability above `tau` (`train.confident_prob`,
# our choice; see {doc}`definitions`).

# %% tags=["parameters"]
sweep_params = ["params/quick/parity.yaml", "params/quick/moon_star.yaml"]  # every sweep whose runs enter Fig. 12,
# read from the run store (each profile's parameters list every Fig. 3 and Fig. 4 sweep)
dynamics_params = "params/quick/parity.yaml"  # the sweep whose training records and snapshots are shown
seed = 0  # the seed whose training dynamics are drawn (the verdicts pair every seed)
smooth = 20  # running mean over this many records (one every train.record_every steps) in the dynamics figure
alphas = [1, 2, 5, 10, 20, 50, 100]  # logit scales of the Prop. 1-2 check
n_batch = 1000  # held-out samples in the Prop. 1-2 batch
overrides = {}  # {dotted key: value} applied to every sweep; keep equal to the other chapters' to reuse their runs
results_dir = "results/quick"  # where the sweeps stored their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
from lrsc import mechanism, paper, plots, sweepdir
from lrsc.chapter import Chapter
from lrsc.paths import resolve

ch = Chapter("fig12_13_mechanism", results_dir, overrides, progress)
results = ch.sweeps("sweeps", sweep_params)
dyn = ch.sweep("dynamics", dynamics_params)
dyn_folder = ch.folder(resolve(dynamics_params).stem)
lo, hi = mechanism.low_high(dyn)
scaling = mechanism.scaling_by_seed(dyn_folder, lo, [int(s) for s in dyn.seed.values], alphas, n_batch)
sweepdir.save_derived(dyn_folder, "logit_scaling", scaling)
for key in ("fig12_setting", "fig13_setting"):
    ch.glue(f"mech_paper_{key.split('_')[0]}", paper.QUOTES[key].value)
low_high = paper.QUOTES["fig18_class_dominant"].value
ch.glue("mech_paper_fig18", f"{paper.QUOTES['fig18_setting'].value}, ending with {low_high[0]:.1%} and "
        f"{low_high[1]:.1%} class-dominant filters for its two LRs (our copy of the text does not say which is which)")
runs = mechanism.runs_table(results)
ch.figure("fig12_scatter", plots.runs_scatter(runs, title="every compared run"))
ch.glue("fig12_says", ch.says("fig12", trend=False))
ch.glue("fig12_n_sweeps", len(results))
mechanism.correlations(runs).round(3)

# %% [markdown]
# ## Fig. 12: the max BC loss ratio against unbiased accuracy
#
# ```{glue:figure} fig12_scatter
# :name: fig12-scatter
# :alt: Peak BC loss ratio against unbiased test accuracy, one point per run, a colour per sweep.
#
# Each compared run of the {glue:text}`fig12_n_sweeps` sweeps: the largest BC loss ratio it
# reached during training against its unbiased test accuracy, one colour per sweep.
# ```
#
# The table gives the Spearman correlation over the runs of each sweep. Pooled over all runs,
# each sweep's values centred first (so that sweeps at different accuracy levels make no
# correlation of their own), the claim that a larger peak BC loss ratio goes with higher
# unbiased accuracy {glue:text}`fig12_says`. The paper pools ResNet18 runs across datasets;
# ours are the book's smaller networks.

# %% tags=["hide-input"]
traces = ("bc_loss", "ba_loss", "confident_bc", "bc_loss_ratio", "logit_norm", "param_norm")
ch.figure("fig13_dynamics", plots.traces(dyn, (lo, hi), seed, traces, smooth=smooth))
ch.glue("fig13_lo", lo)
ch.glue("fig13_hi", hi)
ch.glue("fig13_seed", seed)
for short in ("logit", "param", "confident"):
    ch.glue(f"fig13_{short}_says", ch.says(f"fig13.{short}", trend=False))
mechanism.readable(mechanism.dynamics_ends(dyn).to_dataframe().unstack("end").round(3))

# %% [markdown]
# ## Fig. 13: training dynamics at a low and a high LR
#
# ```{glue:figure} fig13_dynamics
# :name: fig13-dynamics
# :alt: Training records at the smallest and largest compared LR: BC and BA losses, confident mispredictions, norms.
#
# Training records of the dynamics sweep (seed {glue:text}`fig13_seed`) at its smallest
# (LR {glue:text}`fig13_lo:g`) and largest (LR {glue:text}`fig13_hi:g`) compared LR: the mean
# loss of the minibatch's BC and BA samples, the share of its BC samples that are confidently
# mispredicted, the BC loss ratio, the mean logit norm and the parameter norm, each a running
# mean over the recorded steps.
# ```
#
# The table gives, per seed, what the verdicts compare over the steps both runs of the seed
# took: the last logit and parameter norms, and the peaks of the confidently mispredicted BC
# share and of the BC loss ratio. The claim that the logit norm grows more at the large LR
# {glue:text}`fig13_logit_says`; that the parameter norm grows more
# {glue:text}`fig13_param_says`; that more BC samples are confidently mispredicted
# {glue:text}`fig13_confident_says`.

# %% tags=["hide-input"]
ch.figure("prop_scaling", plots.logit_scaling(scaling.mean("seed").to_dataframe(),
                                              title=f"the LR {lo:g} models, seed mean"))
ch.glue("prop_n", n_batch)
ch.glue("prop_rho", float(sweepdir.read_config(dyn_folder)["dataset_params"].get("rho", 0.05)))
for name in ("prop1", "prop2"):
    ch.glue(f"{name}_says", ch.says(name, trend=False))
mechanism.readable(scaling.mean("seed").to_dataframe().round(4))

# %% [markdown]
# ## Prop. 1–2: scaling the logits of a trained network
#
# ```{glue:figure} prop_scaling
# :name: prop-scaling
# :alt: BC share of loss and of logit gradient, and spurious share of input gradient, against the logit scale.
#
# The models trained at the smallest compared LR (one per seed, loaded from their stored
# weights), their logits multiplied by alpha, on a held-out batch whose BC share is the
# training set's rho: the BC samples' share of the loss and of the logit gradient, the share
# of the loss carried by mispredicted samples, and the share of the squared input gradient
# that falls on the spurious inputs rather than the core ones (seed mean).
# ```
#
# The batch holds {glue:text}`prop_n` unbiased test samples of which a fraction
# {glue:text}`prop_rho` are BC, as in a training minibatch. Prop. 1 (the BC samples' share of
# the loss rises as the logits scale up) {glue:text}`prop1_says`. Prop. 1's limit is the share
# of the loss of the samples the network gets wrong, which is one only for a network that
# gets exactly the BC samples wrong (the table's `wrong_loss_share`). Prop. 2 (the spurious
# inputs' share of the input gradient rises) {glue:text}`prop2_says`.

# %% tags=["hide-input"]
stay = mechanism.persistence(dyn)
ch.figure("fig18_persistence", plots.persistence(stay, (lo, hi)))
ch.glue("fig18_says", ch.says("fig18", trend=False))
end = mechanism.final_dominance(dyn).sel(lr=[lo, hi]).mean("seed")
ch.glue("fig18_base", f"{float(end.class_dominant.sel(lr=lo)):.0%} at LR {lo:g} and "
        f"{float(end.class_dominant.sel(lr=hi)):.0%} at LR {hi:g}")
mechanism.readable(stay.mean("seed").to_dataframe().unstack("lr").round(3))

# %% [markdown]
# ## Fig. 18: do class-dominant neurons stay class-dominant?
#
# ```{glue:figure} fig18_persistence
# :name: fig18-persistence
# :alt: Share of class-dominant and of bias-dominant neurons at step t still of their kind at the end of training.
#
# Of the penultimate neurons that are class-dominant (CSI > BSI) at training step t, the share
# still class-dominant at the end of training (solid), and the same for bias-dominant neurons
# (dashed), at the smallest and the largest compared LR of the dynamics sweep (seed mean).
# ```
#
# The paper asks, at each step t, what share of the class-dominant neurons stay so to the end,
# and what share of the bias-dominant ones. The claim that at the large LR class-dominant
# neurons stay class-dominant more often than bias-dominant ones stay bias-dominant (per seed,
# the mean over the snapshot steps after 0 of the difference of the two shares)
# {glue:text}`fig18_says`. For scale, the share of the firing neurons that are class-dominant at
# the end of training is {glue:text}`fig18_base` (seed means): a neuron that is class-dominant at
# some step can only stay so if class-dominant neurons are common at the end. The paper's
# Fig. 18 shows ResNet18 filters on Colored MNIST, {glue:text}`mech_paper_fig18`; ours are the
# dynamics sweep's neurons.
#
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("mech_claims")

# %% [markdown]
# ```{glue:md} mech_claims
# :format: myst
# ```
