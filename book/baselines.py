# %% [markdown]
# # Beyond the paper — a large LR against robust-training methods
#
# **The question.** The paper's discussion draws a practical conclusion it does not test: that
# any proposed intervention for robustness to spurious correlations "should consider utilizing
# large LRs as a strong baseline against the proposed method". Its Fig. 6 sets the LR against
# other hyperparameters only. This chapter sets it against methods built for the purpose, each
# swept over LR as ERM is, and asks four questions, each judged by the book's one verdict rule
# (see {doc}`definitions`):
#
# 1. Does ERM at its best LR match or beat each method at the method's default LR?
# 2. … at the method's own best LR?
# 3. Does a large LR improve each method, and does it move the method as much as it moves ERM
#    (method × LR)?
# 4. Does last-layer retraining gain more on large-LR features than on small-LR ones? The paper
#    says large LRs make better representations; retraining the head on them tests that through
#    their use.
#
# These are the book's own claims, not the paper's; the claims page counts them apart.
#
# **The methods**, each a training setting (`train.method`) trained in the one-model loop, at the
# definitions of their papers: **JTT** (Liu et al. 2021) trains an ERM identification run, then
# trains again with that run's training errors upweighted; **LfF** (Nam et al. 2020) trains a
# biased model on the generalized cross-entropy beside the debiased one, whose samples it weights
# by their relative difficulty; **GroupDRO** (Sagawa et al. 2020) minimises the loss of the group
# weights that an online exponentiated-gradient step moves towards the worst groups — it reads the
# training set's bias labels, which no other method sees. **DFR** (Kirichenko et al. 2022) keeps
# a trained model's features and fits a new linear head (L1-penalised logistic regression) on a
# group-balanced subset of held-out samples; it is measured on every run, as a variable.

# %% tags=["parameters"]
tasks = ["params/quick/baselines_parity.yaml"]  # one ERM sweep per task; each method is swept as it is
methods = {  # {train.method: {dotted key: value}}: each method's own settings
    "jtt": {"train.jtt_steps": 50, "train.jtt_up": 5.0},
    "lff": {"train.lff_q": 0.7},
    "group_dro": {"train.dro_eta": 0.01},
}
val_frac = 0.25  # the share of the unbiased test set held out as the validation split
profiles = ["quick", "full"]  # the profiles whose tasks the page names
overrides = {}  # {dotted key: value} applied to every sweep
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
import pandas as pd

from lrsc import baselines, claims, plots, report
from lrsc.chapter import Chapter
from lrsc.config import read
from lrsc.paths import resolve
from lrsc.results import look

ch = Chapter("baselines", results_dir, overrides, progress)
held_out = {"metrics.val_frac": val_frac}
runs = {}  # {task title: {method name: collected sweep}}
for params in tasks:
    stem, task = resolve(params).stem, read(resolve(params))["title"]
    found = {"ERM": ch.sweep("erm", params, folder=f"{stem}_erm", title_=f"{task}: ERM", changes=held_out)}
    for method, own in methods.items():
        name = baselines.NAMES[method]
        found[name] = ch.sweep("methods", params, folder=f"{stem}_{method}", title_=f"{task}: {name}",
                               changes={**held_out, "train.method": method, **own})
    runs[task] = found
erm = next(iter(runs.values()))["ERM"]
ch.glue("base_sesoi", f"{look(erm, 'test_acc').sesoi:g} {look(erm, 'test_acc').effect_units} of accuracy, "
        f"{look(erm, 'prunability').sesoi:g} of prunability")
ch.glue("base_val", f"{val_frac:.0%}")
ch.glue("base_profiles", baselines.profiles_sentence(profiles))
ch.glue("base_protocol", report.lr_protocol(erm))
report.settings_table({task: found["ERM"] for task, found in runs.items()})

# %% [markdown]
# **Model selection.** No method is tuned on its test set. Every sweep of this chapter holds a
# random {glue:text}`base_val` of the unbiased test set out as a validation split (drawn from the
# seed, so the runs of a seed share it); every test variable — unbiased and worst-group accuracy,
# prunability — is computed on the rest. Each method's LR is the LR, among those at which every
# seed fit its training set and none diverged, with the highest seed-mean **unbiased validation
# accuracy**; GroupDRO, which trains on group labels, is selected on **worst-group validation
# accuracy**, as its authors select it. A method's *default* LR is the smallest LR of its sweep,
# the small LR such methods are usually trained at. DFR fits its head on a group-balanced subset
# of the same validation split and is scored on the rest of the test set.
#
# **Protocol.** {glue:text}`base_profiles` The ERM sweep: {glue:text}`base_protocol` The methods'
# own settings are in the parameters cell above.

# %% tags=["hide-input"]
chosen = pd.concat({task: baselines.selection_table(list(found.values())) for task, found in runs.items()})
chosen

# %% tags=["hide-input"]
ch.figure("base_methods", plots.methods_grid(runs, ("test_acc", "worst_group_acc", "prunability")))
for claim in ("default.acc", "default.wga", "default.prune", "selected.acc", "selected.wga", "selected.prune",
              "lr.acc", "lr.wga", "interaction.acc", "dfr"):  # each question's verdicts over the methods and tasks
    ch.glue(f"base_{claim.replace('.', '_')}", report.answer(claims.counts(ch.table[ch.table.claim == f"base.{claim}"])))

# %% [markdown]
# ```{glue:figure} base_methods
# :name: base-methods
# :alt: Unbiased accuracy, worst-group accuracy and prunability against LR, one line per method.
#
# Unbiased test accuracy, worst-group test accuracy and prunability against the LR, one line per
# method (rows: tasks). Lines are seed means, bands span the seeds; filled dots mark LRs at which
# every seed reached 100% training accuracy (the LRs compared and selected from), hollow dots LRs
# at which some seed hit the step cap, red crosses LRs at which some seed diverged.
# ```
#
# **What our run finds.** Each statement below is "ERM at its selected LR reaches higher …
# than the method": *agrees* means ERM beats the method, *no effect* that the two match within
# the smallest effect of interest ({glue:text}`base_sesoi`), *disagrees* that the method is
# ahead. Each line counts the verdicts over the methods (and tasks).
#
# 1. Against each method at its default LR. Unbiased accuracy: the statement
#    {glue:text}`base_default_acc`. Worst-group accuracy: {glue:text}`base_default_wga`.
#    Prunability: {glue:text}`base_default_prune`.
# 2. Against each method at its own selected LR. Unbiased accuracy:
#    {glue:text}`base_selected_acc`. Worst-group accuracy: {glue:text}`base_selected_wga`.
#    Prunability: {glue:text}`base_selected_prune`.
# 3. That a large LR raises a method's unbiased accuracy {glue:text}`base_lr_acc`; its
#    worst-group accuracy, {glue:text}`base_lr_wga`. That it moves a method's unbiased accuracy by
#    a different amount than ERM's (method × LR, no direction claimed): the statement
#    {glue:text}`base_interaction_acc`.
#
# ## Last-layer retraining on large- and small-LR features

# %% tags=["hide-input"]
ch.figure("base_dfr_curves", plots.methods_grid(runs, ("dfr_acc", "dfr_worst_group_acc", "dfr_gain")))

# %% [markdown]
# ```{glue:figure} base_dfr_curves
# :name: base-dfr
# :alt: Accuracy after last-layer retraining, and its gain over the trained head, against LR, one line per method.
#
# After last-layer retraining (DFR) on the validation split: unbiased and worst-group test
# accuracy, and the unbiased accuracy it adds over the trained head on the same features
# (points), against the LR of the run whose features it retrains, one line per method.
# ```
#
# 4. That the accuracy DFR adds rises with the LR of ERM's features: the statement
#    {glue:text}`base_dfr`.
#    A gain that *falls* with the LR would say that a large LR already puts into the head what
#    retraining would; a gain that rises, that large-LR features hold a core feature the trained
#    head does not use.
#
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("base_claims")

# %% [markdown]
# ```{glue:md} base_claims
# :format: myst
# ```
