# %% [markdown]
# # Fig. 12, 13, 18 and Prop. 1–2 — the mechanism
#
# **Claim (paper, Sec. 5).** Large learning rates grow the parameters and the logits fast.
# Scaled-up logits make the network's confident mistakes expensive: once a network predicts
# by the spurious feature, its bias-conflicting (BC) samples are *confidently mispredicted*,
# their loss grows with the logit scale while the bias-aligned (BA) samples' loss vanishes,
# so the few BC samples of a minibatch come to dominate its loss and its gradient. That
# gradient pushes against the spurious feature. The paper supports this with four pieces
# of evidence, each reproduced below from this book's own runs:
#
# - **Fig. 12**: across runs, the largest share of a minibatch's loss that BC samples ever
#   carry during training (the *max BC loss ratio*) correlates with unbiased test accuracy;
# - **Fig. 13**: at a large LR the logit and parameter norms grow faster, BC samples are
#   confidently mispredicted and their loss dominates;
# - **Prop. 1–2**: as the logits of a network that predicts by the spurious rule are scaled
#   up, the BC samples' share of the loss tends to one, and the gradient reaching the
#   spurious inputs grows relative to the core ones;
# - **Fig. 18**: over training, large-LR networks turn more of their neurons class-dominant
#   (CSI > BSI) rather than bias-dominant.
#
# The paper's formulas were lost from the text we work from; the statements above and the
# quantities below are our reconstruction from its prose (SPEC §6). A sample is
# *confidently mispredicted* when a wrong class gets a probability above `tau`
# (`train.confident_prob`, 0.9 by default, our choice).

# %% tags=["parameters"]
sweep_params = [  # every sweep whose runs enter Fig. 12 (reloaded from results_dir; trained if missing)
    "params/quick/parity.yaml",
    "params/quick/moon_star.yaml",
    "params/quick/fig4_colored_mnist_fcn.yaml",
    "params/quick/fig4_colored_mnist_cnn.yaml",
    "params/quick/fig4_double_mnist_fcn.yaml",
    "params/quick/fig4_double_mnist_cnn.yaml",
    "params/quick/fig4_mnist_cifar_fcn.yaml",
    "params/quick/fig4_corrupted_cifar10_fcn.yaml",
]
dynamics_params = "params/quick/parity.yaml"  # the sweep whose training records and snapshots are shown
seed = 0  # the seed whose training dynamics are shown
smooth = 20  # running mean over this many records (one every train.record_every steps) in the dynamics figure
alphas = [1, 2, 5, 10, 20, 50, 100]  # logit scales of the Prop. 1-2 check
n_batch = 1000  # held-out samples in the Prop. 1-2 batch
overrides = {}  # {dotted key: value} applied to every sweep; keep equal to the other chapters' to reuse their runs
results_dir = "results/quick"  # where the sweeps stored their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
from myst_nb import glue

from lrsc import mechanism, plots, report
from lrsc.book import resolve
from lrsc.sweep import load_data, run_sweep

results = {}
for path in sweep_params:
    ds = run_sweep(resolve(path), resolve(results_dir) / resolve(path).stem, overrides, progress=progress)
    results[" / ".join(report.dataset_model(ds))] = ds
runs = mechanism.runs_table(results)
corr = mechanism.correlations(runs)
fig = plots.runs_scatter(runs, title="every converged run")
glue("fig12_scatter", fig, display=False)
plt.close(fig)
pooled = corr.iloc[-1]
glue("fig12_n_runs", int(pooled["runs"]), display=False)
glue("fig12_n_sweeps", len(results), display=False)
glue("fig12_pooled_spearman", float(pooled["spearman"]), display=False)
glue("fig12_n_positive", int((corr.iloc[:-1]["spearman"] > 0).sum()), display=False)
glue("fig12_pooled_words", "agrees with" if pooled["spearman"] > 0 else "contradicts", display=False)
corr.round(3)

# %% [markdown]
# ## Fig. 12: the max BC loss ratio against unbiased accuracy
#
# ```{glue:figure} fig12_scatter
# :name: fig12-scatter
#
# Each converged run of the reloaded sweeps: the largest BC loss ratio it reached during
# training against its unbiased test accuracy, one colour per sweep.
# ```
#
# The table gives the correlation over the runs of each sweep and over all
# {glue:text}`fig12_n_runs` runs together, each sweep's values centred first so that sweeps
# at different accuracy levels do not make a correlation of their own. Over all runs the
# Spearman correlation is {glue:text}`fig12_pooled_spearman:.2f`, which
# {glue:text}`fig12_pooled_words` the paper's Fig. 12 (a positive correlation); it is
# positive within {glue:text}`fig12_n_positive` of the {glue:text}`fig12_n_sweeps` sweeps
# ({numref}`fig12-scatter`). The paper shows the correlation for ResNet18 on Colored
# MNIST and CIFAR-10; ours is over the book's smaller networks.

# %% tags=["hide-input"]
dyn = run_sweep(resolve(dynamics_params), resolve(results_dir) / resolve(dynamics_params).stem, overrides,
                progress=progress)
lo, hi = mechanism.low_high(dyn)
traces = ("bc_loss", "ba_loss", "confident_bc", "bc_loss_ratio", "logit_norm", "param_norm")
fig = plots.dynamics(dyn, (lo, hi), seed, traces, smooth=smooth)
glue("fig13_dynamics", fig, display=False)
plt.close(fig)
run_lo, run_hi = (dyn.sel(lr=lr, seed=seed) for lr in (lo, hi))
common = int(min(run_lo.steps, run_hi.steps))  # compare the two runs over the steps both took
glue("fig13_lo", lo, display=False)
glue("fig13_hi", hi, display=False)
glue("fig13_common", common, display=False)
early = {}
for name, run in (("lo", run_lo), ("hi", run_hi)):
    window = run.sel(step=slice(None, common))
    for var in ("logit_norm", "param_norm", "confident_bc", "bc_loss_ratio"):
        reduce = "max" if var in ("confident_bc", "bc_loss_ratio") else "last"
        value = float(window[var].max()) if reduce == "max" else float(window[var].dropna("step")[-1])
        early[(var, name)] = value
        glue(f"fig13_{var}_{name}", value, display=False)
faster = {var: early[(var, "hi")] > early[(var, "lo")] for var in ("logit_norm", "param_norm", "confident_bc")}
glue("fig13_n_agree", sum(faster.values()), display=False)
glue("fig13_words", ", ".join(f"{v.replace('_', ' ')} {'higher' if up else 'not higher'}" for v, up in faster.items()),
     display=False)

# %% [markdown]
# ## Fig. 13: training dynamics at a low and a high LR
#
# ```{glue:figure} fig13_dynamics
# :name: fig13-dynamics
#
# Training records of the parity sweep (one seed) at its smallest and largest compared LR:
# the mean loss of the minibatch's BC and BA samples, the share of its BC samples that are
# confidently mispredicted, the BC loss ratio, the mean logit norm and the parameter norm,
# each a running mean over the recorded steps.
# ```
#
# Over the first {glue:text}`fig13_common` steps, the steps both runs took, the LR
# {glue:text}`fig13_hi:g` run ends with a logit norm of {glue:text}`fig13_logit_norm_hi:.2f`
# against {glue:text}`fig13_logit_norm_lo:.2f` at LR {glue:text}`fig13_lo:g`, and a parameter
# norm of {glue:text}`fig13_param_norm_hi:.1f` against {glue:text}`fig13_param_norm_lo:.1f`; the
# share of confidently mispredicted BC samples peaks at {glue:text}`fig13_confident_bc_hi:.2f`
# against {glue:text}`fig13_confident_bc_lo:.2f`, and the BC loss ratio at
# {glue:text}`fig13_bc_loss_ratio_hi:.2f` against {glue:text}`fig13_bc_loss_ratio_lo:.2f`.
# The paper's Fig. 13 expects all three of the first to be higher at the large LR; here
# {glue:text}`fig13_n_agree` of 3 are ({glue:text}`fig13_words`).

# %% tags=["hide-input"]
model, run = mechanism.load_model(resolve(results_dir) / resolve(dynamics_params).stem, lr=lo, seed=seed)
_, test_set = load_data(run, "cpu")
rho = run["dataset_params"].get("rho", 0.05)
batch = mechanism.with_bc_fraction(test_set, rho, n_batch, seed)
scaling = mechanism.logit_scaling(model, batch, alphas)
fig = plots.logit_scaling(scaling, title=f"parity, the LR {lo:g} model")
glue("prop_scaling", fig, display=False)
plt.close(fig)
first, last = scaling.iloc[0], scaling.iloc[-1]
glue("prop_rho", rho, display=False)
glue("prop_n", n_batch, display=False)
glue("prop_alpha_max", float(scaling.index[-1]), display=False)
for col in ("bc_loss_share", "wrong_loss_share", "spurious_grad_share", "bc_grad_share"):
    glue(f"prop_{col}_first", float(first[col]), display=False)
    glue(f"prop_{col}_last", float(last[col]), display=False)
rising = bool(np.all(np.diff(scaling.bc_loss_share.values) >= -1e-9))
glue("prop1_words", "rises at every step of alpha" if rising else "does not rise at every step of alpha",
     display=False)
glue("prop2_words", "grows" if last.spurious_grad_share > first.spurious_grad_share else "does not grow",
     display=False)
scaling.round(4)

# %% [markdown]
# ## Prop. 1–2: scaling the logits of a trained network
#
# ```{glue:figure} prop_scaling
# :name: prop-scaling
#
# The parity model trained at the smallest compared LR (seed 0, loaded from its stored
# weights), its logits multiplied by alpha, on a held-out batch whose BC share is the
# training set's rho: the BC samples' share of the loss and of the logit gradient, the
# share of the loss carried by mispredicted samples, and the share of the squared input
# gradient that falls on the spurious bit rather than the core bits.
# ```
#
# The batch holds {glue:text}`prop_n` unbiased test samples of which a fraction
# {glue:text}`prop_rho` are BC, as in a training minibatch. As alpha goes from 1 to
# {glue:text}`prop_alpha_max:g`, the BC samples' share of the loss goes from
# {glue:text}`prop_bc_loss_share_first:.3f` to {glue:text}`prop_bc_loss_share_last:.3f`
# ({glue:text}`prop1_words`), and the mispredicted samples' share from
# {glue:text}`prop_wrong_loss_share_first:.3f` to {glue:text}`prop_wrong_loss_share_last:.3f`:
# Prop. 1's limit is the share of the loss of the samples the network gets wrong, which is
# one only for a network that gets exactly the BC samples wrong. The share of the squared
# input gradient on the spurious bit goes from {glue:text}`prop_spurious_grad_share_first:.3f`
# to {glue:text}`prop_spurious_grad_share_last:.3f`, so the gradient reaching the spurious
# input {glue:text}`prop2_words` relative to the core inputs (Prop. 2), and the BC samples'
# share of the logit gradient goes from {glue:text}`prop_bc_grad_share_first:.3f` to
# {glue:text}`prop_bc_grad_share_last:.3f`.

# %% tags=["hide-input"]
dom = mechanism.neuron_dominance(dyn)
fig = plots.dominance(dom, (lo, hi))
glue("fig18_dominance", fig, display=False)
plt.close(fig)
last_common = [s for s in dom.snapshot.values if s <= common]
at = int(last_common[-1]) if last_common else 0
glue("fig18_step", at, display=False)
for name, lr in (("lo", lo), ("hi", hi)):
    for var in ("class_dominant", "bias_dominant"):
        glue(f"fig18_{var}_{name}", float(dom[var].sel(lr=lr, snapshot=at).mean("seed")), display=False)
more = float(dom.class_dominant.sel(lr=hi, snapshot=at).mean("seed")) > \
    float(dom.class_dominant.sel(lr=lo, snapshot=at).mean("seed"))
glue("fig18_words", "agrees with" if more else "does not agree with", display=False)
dom.class_dominant.mean("seed").to_pandas().round(3)

# %% [markdown]
# ## Fig. 18: class-dominant and bias-dominant neurons over training
#
# ```{glue:figure} fig18_dominance
# :name: fig18-dominance
#
# Of the penultimate neurons that fire, the fraction whose CSI exceeds their BSI
# (class-dominant, solid) and the reverse (bias-dominant, dashed), at the snapshot steps
# of the parity sweep, at its smallest and largest compared LR (mean over seeds).
# ```
#
# At step {glue:text}`fig18_step`, the last snapshot both LRs reached, the fraction of
# class-dominant neurons is {glue:text}`fig18_class_dominant_hi:.2f` at LR
# {glue:text}`fig13_hi:g` against {glue:text}`fig18_class_dominant_lo:.2f` at LR
# {glue:text}`fig13_lo:g` (bias-dominant: {glue:text}`fig18_bias_dominant_hi:.2f` against
# {glue:text}`fig18_bias_dominant_lo:.2f`), which {glue:text}`fig18_words` the paper's
# Fig. 18, where large-LR training ends with more class-dominant neurons. The table gives
# the class-dominant fraction at every snapshot and LR (NaN once every seed had stopped).
