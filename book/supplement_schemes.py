# %% [markdown]
# # Supplement — other optimisers, schedules, stopping rules and model soups
#
# **Claim (paper, supplement D.4, Fig. 23–25, 29, 30).** The large-LR effect is not an
# artefact of constant-LR SGD stopped at 100% training accuracy: it holds with Adam, with AdamW
# and a cosine schedule, with PSGD-Kron and a warmup-stable-decay (WSD) schedule, and with a
# step schedule (the paper: {glue:text}`supp_paper_step`); training on to a cross-entropy
# threshold, or longer, gives qualitatively identical results (the paper: test accuracy "changes
# very little beyond convergence"); a model that starts at a large LR and drops to a small
# one at step *t* keeps the large LR's benefit (the paper: {glue:text}`supp_paper_switch`); and
# averaging the weights of models that share an initialisation, a *model soup*, is another way
# to separate robustness from compressibility (the paper: {glue:text}`supp_paper_soups`).
#
# **Protocol.** Every scheme below is the LR sweep of the Fig. 6 chapter (same data, model and
# seeds) with one training setting changed, each over its own LR grid (Adam-type optimisers use
# far smaller LRs than SGD). The settings are parameters of this page, shown in its parameters
# cell; schedule lengths, warmup and decay shares, and the step schedule's factor and step are
# our choices for this small task, so they differ from the paper's where the page says so.
# Adam, AdamW and PSGD-Kron (from pytorch-optimizer) train one model at a time; the SGD
# variants train in the batched kernel.

# %% tags=["parameters"]
sweep_params = "params/quick/hp_parity.yaml"  # the constant-LR SGD sweep every scheme modifies
schemes = {  # {key: {label, overrides of the LR sweep}}, stored under scheme_<key>; each over its own LR grid
    "adam": {"label": "Adam", "overrides": {"train.optimizer": "adam", "grid.lr": [0.0003, 0.001, 0.003, 0.01]}},
}
scheme_seeds = [0, 1, 2]  # seeds of every scheme
switch_lrs = [0.8, 0.05]  # LR switch: start at the first LR, drop to the second after step t
switch_steps = [25, 100, 300]  # the steps t
overrides = {}  # {dotted key: value} applied to every sweep
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
from lrsc import paper, plots, report, soup, sweepdir
from lrsc.chapter import Chapter
from lrsc.paths import resolve
from lrsc.results import title

ch = Chapter("supplement_schemes", results_dir, overrides, progress)
constant = ch.sweep("constant", sweep_params)
base = title(constant)
results = {"SGD, constant LR": constant}
for key, scheme in schemes.items():
    results[scheme["label"]] = ch.sweep("schemes", sweep_params, folder=f"scheme_{key}",
                                        title_=f"{base}: {scheme['label']}",
                                        changes={"grid.seed": scheme_seeds, **scheme["overrides"]})
high, low = switch_lrs
switch = ch.sweep("switch", sweep_params, folder="scheme_switch", title_=f"{base}: LR {high:g} → {low:g} after step t",
                  changes={"grid.lr": [high], "grid.seed": scheme_seeds, "train.schedule": "step",
                           "train.schedule_factor": low / high, "grid.schedule_at": switch_steps})
constant_folder = ch.folder(resolve(sweep_params).stem)
soups = soup.pair_soups(constant_folder)
sweepdir.save_derived(constant_folder, "soups", soups)
for key in ("step_schedule", "switch", "soups"):
    ch.glue(f"supp_paper_{key.split('_')[0]}", paper.QUOTES[key].value)
ch.figure("supp_schemes", plots.metrics_grid(results, ("test_acc", "prunability", "csi")))
for claim, short in (("supp.acc", "acc"), ("supp.prune", "prune")):
    rows = ch.table[ch.table.claim == claim]
    for verdict in ("agrees", "disagrees", "no effect"):
        ch.glue(f"supp_{short}_{verdict.replace(' ', '_')}", "; ".join(rows[rows.verdict == verdict].on) or "none")
ch.glue("supp_n", len(schemes))
longer = next((results[s["label"]] for s in schemes.values() if s["overrides"].get("train.extra_steps")), None)
ch.glue("supp_longer", report.longer_training(constant, longer) if longer is not None else
        "no scheme of this build trains past the criterion")
report.settings_table(results)

# %% [markdown]
# ```{glue:figure} supp_schemes
# :name: supp-schemes
# :alt: Unbiased accuracy, prunability and CSI against the LR, one row per training scheme.
#
# Unbiased test accuracy, prunability and class selectivity (CSI) against the (initial or
# peak) learning rate, one row per training scheme. Lines are seed means, bands span the
# seeds; filled dots mark LRs at which every seed met the scheme's stopping criterion, hollow
# dots LRs at which some seed hit the step cap, red crosses divergence.
# ```
#
# **What our run finds.** Of the {glue:text}`supp_n` schemes besides constant-LR SGD, the
# claim that unbiased accuracy rises with the LR agrees under: {glue:text}`supp_acc_agrees`;
# disagrees under: {glue:text}`supp_acc_disagrees`; finds no effect under:
# {glue:text}`supp_acc_no_effect`. The claim that prunability rises agrees under:
# {glue:text}`supp_prune_agrees`; disagrees under: {glue:text}`supp_prune_disagrees`; finds no
# effect under: {glue:text}`supp_prune_no_effect`. The schemes not named are inconclusive or
# untestable in this run (the verdict table at the end gives each one's numbers).
#
# **Training longer.** {glue:text}`supp_longer`
#
# ## Switching from a large to a small LR at step *t*

# %% tags=["hide-input"]
references = {f"constant LR {lr:g}": {v: float(report.scaled(constant, v).sel(lr=lr).mean("seed"))
                                      for v in ("test_acc", "prunability", "csi")} for lr in (high, low)}
ch.figure("supp_switch", plots.lines_over({f"LR {high:g} → {low:g} after step t": switch.isel(lr=0)},
                                          ("test_acc", "prunability", "csi"), dim="schedule_at", references=references))
rows = ch.table[ch.table.claim == "fig30.switch"]
ch.glue("supp_switch_says", "; ".join(f"{r.setting}: {report.SHOWN[r.verdict]} ({r.text})" for _, r in rows.iterrows())
        or "not judged")
report.summary_table(switch.isel(lr=0), ("test_acc", "prunability", "csi"), dim="schedule_at")

# %% [markdown]
# ```{glue:figure} supp_switch
# :name: supp-switch
# :alt: Accuracy, prunability and CSI of runs switching from the large to the small LR after step t, against t.
#
# Unbiased accuracy, prunability and CSI of models trained at the large LR until step *t* and
# at the small LR after it, against *t*; dashed lines: the constant-LR runs at each LR.
# ```
#
# **What our run finds.** The claim is judged at each switch step as "keeps more than half of
# the large LR's accuracy gain", per seed against the midpoint of the two constant-LR runs of
# that seed: {glue:text}`supp_switch_says`. The paper's switch is on ResNet18 and CIFAR-10 at
# its own LRs and steps.
#
# ## Model soups
#
# Runs of one seed start from the same initial weights, whatever their LR, so their trained
# weights can be averaged. Each cell below is the soup of two models — one at each LR of the
# pair, same seed — evaluated as a model of its own (seed mean); the diagonal is each model alone.

# %% tags=["hide-input"]
ch.figure("supp_soups", plots.soup_heatmaps(soups, ("test_acc", "prunability", "csi")))
ch.glue("supp_soup_says", ch.says("fig30.soups", trend=False))

# %% [markdown]
# ```{glue:figure} supp_soups
# :name: supp-soups
# :alt: Accuracy, prunability and CSI of two-model soups over the pair of LRs averaged.
#
# Two-model soups: unbiased accuracy, prunability and CSI of the uniform weight average of a
# model trained at one LR (columns) and one at another (rows), same seed and initialisation,
# seed mean. The diagonal is each model alone.
# ```
#
# **What our run finds.** The paper presents soups as a way to separate robustness from
# compressibility. We test that reading on the soup of the smallest- and the largest-LR
# models: per seed, where the soup sits between its two members in accuracy (0 at the
# small-LR model, 1 at the large-LR one) minus where it sits in prunability; the claim holds
# when that difference is clearly not zero. It {glue:text}`supp_soup_says`.
#
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("supp_claims")

# %% [markdown]
# ```{glue:md} supp_claims
# :format: myst
# ```
