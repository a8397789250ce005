# %% [markdown]
# # Definitions
#
# Every quantity this book reports, every setting a sweep can change, and the rule by which
# a claim is judged, rendered from the code that computes them (`lrsc/variables.py`,
# `lrsc/settings.py`, `lrsc/verdicts.py`), so this page cannot drift from what ran.
#
# ## The data
#
# Each dataset has a class label `y` (the *core* feature) and a bias label `b` (the
# *spurious* feature). A training sample is **bias-aligned** (BA) when the spurious feature
# agrees with the label (`b = y`) and **bias-conflicting** (BC) otherwise; `rho` is the
# fraction of BC samples in the training set (exactly `round(rho · n)` of them, chosen by the
# seed). The **unbiased test set** draws `b` uniformly and independently of `y`, so a network
# that reads the spurious feature is at chance there. Each seed derives its own streams for
# the data, the initialisation and the data order, so runs of one seed at different LRs
# share all three.
#
# ## Variables
#
# What each run stores, what it means, what it is computed on, and its units (accuracies
# are stored as fractions and shown in %; differences of them are percentage points).

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from lrsc import edge, settings, soup, variables, verdicts


def cell(text) -> str:
    return str(text).replace("|", "/")


def bound(v: float | None, scale: float, units: str) -> str:
    return "–" if v is None else f"{v * scale:g}{units}"


rows = ["| variable | definition | computed on | units | bounds | smallest effect of interest |", "|---|---|---|---|---|---|"]
for v in variables.declared():
    look = variables.Presentation.of(v.attrs(), v.name)
    units = v.display_units or ("1" if v.units == "1" else v.units)
    bounds = "–" if look.bounds == (None, None) else \
        f"{bound(look.bounds[0], look.scale, look.units)} to {bound(look.bounds[1], look.scale, look.units)}"
    sesoi = "–" if look.sesoi is None else f"{look.sesoi:g}{' ' + look.effect_units if look.effect_units else ''}"
    rows.append(f"| `{v.name}` | {cell(v.definition)} | {cell(v.on)} | {units} | {bounds} | {sesoi} |")
glue("definitions_variables", Markdown("\n".join(rows)), display=False)
for section, declared in (("train", settings.TRAIN), ("metrics", settings.METRICS)):
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for key, s in declared.items():
        default = list(s.default) if isinstance(s.default, tuple) else s.default
        rows.append(f"| `{section}.{key}` | `{default}` | {cell(s.doc)} |")
    glue(f"definitions_{section}", Markdown("\n".join(rows)), display=False)
for name, value in {"level": int(100 * verdicts.LEVEL), "min_seeds": verdicts.MIN_SEEDS,
                    "min_runs": verdicts.MIN_RUNS, "max_seeds": verdicts.MAX_SEEDS,
                    "learns": f"{verdicts.LEARNS_SHARE:.0%}", "fdr": f"{verdicts.FDR:.0%}",
                    "corr_sesoi": verdicts.CORRELATION_SESOI, "soup_sesoi": soup.POSITION_SESOI,
                    "edge_loss": f"{edge.EdgeSpec.loss:.0%}"}.items():
    glue(f"definitions_{name}", value, display=False)

# %% [markdown]
# ```{glue:md} definitions_variables
# :format: myst
# ```
#
# **Prunability above 1.** `P_q = Acc(f_q) / Acc(f)` exceeds 1 when the pruned network is
# *more* accurate on the unbiased test set than the whole one. It happens where the neurons
# with the smallest weights carried part of the spurious feature or noise: removing them
# makes the network lean on the core feature. The chapters say where it occurs.
#
# ## Training settings
#
# The `train` section of a sweep file; each setting can also be a grid axis by its name.
#
# ```{glue:md} definitions_train
# :format: myst
# ```
#
# ## Metric settings
#
# The `metrics` section of a sweep file.
#
# ```{glue:md} definitions_metrics
# :format: myst
# ```
#
# ## The LR protocol
#
# As in the paper, each main LR sweep runs from a small LR up to the edge of stability. A sweep
# file asks for it with an LR axis such as `lr: {edge: true, start: 0.1, factor: 2, n: 6}`: the
# LRs lie on the ladder `start · factor^k`, and the sweep probes it from `start`, upwards while
# every seed is stable and downwards while some seed is not, training every seed at one LR at a
# time. An LR is **unstable** when some seed diverges (a non-finite value, a dead network, or a
# fall back to chance accuracy in training) or keeps less than
# {glue:text}`definitions_edge_loss` of the best above-chance unbiased accuracy on the ladder
# (the paper's "drastic performance loss", whose threshold our copy of the paper lacks; ours is
# `loss`). The **edge** is the largest stable LR; the sweep's LRs are the `n` ladder LRs up to
# it, and the first unstable LR above it, which is shown in the figures and never compared. The
# probe's own sweeps are kept beside the sweep (`probe/`), and every page states the span it ran
# beside the paper's. Small LRs need more steps to fit: with `train.cap_lr` set, the step cap
# `train.max_steps` holds at that LR and above and grows as 1/LR below it.
#
# ## Verdicts
#
# Every verdict in this book comes from `lrsc.verdicts`. Runs of one seed share their
# initialisation, so each seed gives one paired effect — for a trend with the LR, its mean
# over the upper half of the compared LRs minus its mean over the lower half (the middle LR
# of an odd number goes to neither) — and the uncertainty is a
# {glue:text}`definitions_level`% Student-t interval over seeds. Each variable declares a
# smallest effect of interest (the table above): a change smaller than it is no effect worth
# the name. Then, in this order:
#
# - **untestable**, with its reason: fewer than {glue:text}`definitions_min_seeds` seeds or
#   fewer than two compared LRs (the reason names the LRs left out); a setting that does not
#   learn its task — its best unbiased accuracy (seed mean, over the compared LRs) is less than
#   {glue:text}`definitions_learns` of the way from chance to 100%; a variable that is undefined
#   for these runs (no seed has a value, e.g. the CSI of signed activations); for a model soup,
#   two members that do not clearly differ (the soup then has no span to sit in); or a variable
#   pinned at one of its bounds — every compared value within its smallest effect of interest
#   of its floor or ceiling — when the interval contains zero. A bound never overrides an
#   interval that excludes zero.
# - **no effect**: the interval lies wholly inside plus or minus the smallest effect of
#   interest (two one-sided tests at the same level): the claimed effect is absent here.
# - **agrees** / **disagrees**: the interval excludes zero, on the claimed side or the other.
# - **inconclusive**: anything else: the data cannot tell. The verdict says about how many
#   seeds would decide it: the fewest whose interval, with the same mean and spread, would
#   exclude zero or fall inside the smallest effect of interest (up to
#   {glue:text}`definitions_max_seeds`).
#
# An LR is *compared* when every seed reached its stopping criterion (100% training accuracy
# unless a chapter says otherwise) and none diverged, as the paper compares models trained to
# 100% training accuracy. A correlation over runs is the Spearman correlation of values
# centred within each sweep, with a Fisher-z interval of the same level, judged the same way
# against a smallest correlation of interest of {glue:text}`definitions_corr_sesoi`, over at
# least {glue:text}`definitions_min_runs` runs. A claim on two variables ("both rise") agrees
# when both parts agree and disagrees when either disagrees or shows no effect; "not both"
# the other way round. A model soup's claim compares where the soup sits between its two
# members in accuracy and in prunability, against a smallest gap of
# {glue:text}`definitions_soup_sesoi` of the span between them. Where the paper does not say
# which way a setting acts like a larger LR, we chose (a smaller batch; larger momentum,
# penalties, focal γ and ASAM radius), and the hyperparameter chapter says so.
#
# **Chance decisions.** Every judged verdict has the p-value of "the effect is zero". At a
# {glue:text}`definitions_level`% level, a tenth of the verdicts on effects that do not exist
# would still exclude zero, so the claims page counts how many of this build's decisive
# verdicts survive a {glue:text}`definitions_fdr` false-discovery rate (Benjamini-Hochberg
# q-values over every verdict of the book), beside how many the level alone would give.
#
# ## Choices where the paper is silent
#
# Our copy of the paper lacks its formulas and several settings; where it is silent we chose, made the choice a setting (the tables above give its default), and say
# so where it matters: the pruning fractions over which prunability averages, q of
# q-compressibility, each variable's smallest effect of interest, the LR protocol's loss
# threshold, what counts as learning the task, how divergence is detected (a non-finite value, a dead network, or a fall
# back to chance accuracy lasting `train.collapse_patience` checks), the step cap, how often
# 100% training accuracy is checked (`train.eval_every`), the confidence threshold of a
# confident misprediction (`train.confident_prob`), and the normalisation of attribution
# entropy by the logarithm of the number of positions.
