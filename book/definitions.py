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

from lrsc import settings, variables, verdicts


def cell(text) -> str:
    return str(text).replace("|", "/")


rows = ["| variable | definition | computed on | units |", "|---|---|---|---|"]
for v in variables.declared():
    units = v.display_units or ("1" if v.units == "1" else v.units)
    rows.append(f"| `{v.name}` | {cell(v.definition)} | {cell(v.on)} | {units} |")
glue("definitions_variables", Markdown("\n".join(rows)), display=False)
for section, declared in (("train", settings.TRAIN), ("metrics", settings.METRICS)):
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for key, s in declared.items():
        default = list(s.default) if isinstance(s.default, tuple) else s.default
        rows.append(f"| `{section}.{key}` | `{default}` | {cell(s.doc)} |")
    glue(f"definitions_{section}", Markdown("\n".join(rows)), display=False)
glue("definitions_level", int(100 * verdicts.LEVEL), display=False)
glue("definitions_min_seeds", verdicts.MIN_SEEDS, display=False)
glue("definitions_margin", f"{verdicts.CEILING_MARGIN:.0%}", display=False)
glue("definitions_min_runs", verdicts.MIN_RUNS, display=False)
glue("definitions_permutations", verdicts.N_PERMUTATIONS, display=False)

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
# ## Verdicts
#
# Every verdict in this book comes from `lrsc.verdicts`. Runs of one seed share their
# initialisation, so each seed gives one paired effect — for a trend with the LR, its mean
# over the upper half of the compared LRs minus its mean over the lower half (the middle LR
# of an odd number goes to neither) — and the uncertainty is a
# {glue:text}`definitions_level`% Student-t interval over seeds:
#
# - **agrees**: the interval lies on the side of zero the claim expects;
# - **disagrees**: it lies on the other side;
# - **inconclusive**: it contains zero;
# - **untestable**: fewer than {glue:text}`definitions_min_seeds` seeds, fewer than two
#   compared LRs, or a variable within {glue:text}`definitions_margin` of its range of its
#   ceiling (or floor) at every compared LR (or both compared settings), where it has no room
#   to move the claimed way.
#
# An LR is *compared* when every seed reached its stopping criterion (100% training accuracy
# unless a chapter says otherwise) and none diverged, as the paper compares models trained to
# 100% training accuracy. A correlation over runs is the Spearman correlation of values
# centred within each sweep, judged by a one-sided permutation test
# ({glue:text}`definitions_permutations` permutations within sweeps) of the same level, over
# at least {glue:text}`definitions_min_runs` runs. Where the paper does not say which way a
# setting acts like a larger LR, we chose (a smaller batch; larger momentum, penalties, focal
# γ and ASAM radius), and the hyperparameter chapter says so.
#
# ## Choices where the paper is silent
#
# The text of the paper that we work from lacks its formulas and several settings; where it
# is silent we chose, made the choice a setting (the tables above give its default), and say
# so where it matters: the pruning fractions over which prunability averages, q of
# q-compressibility, how divergence is detected (a non-finite value, a dead network, or a fall
# back to chance accuracy lasting `train.collapse_patience` checks), the step cap, how often
# 100% training accuracy is checked (`train.eval_every`), the confidence threshold of a
# confident misprediction (`train.confident_prob`), and the normalisation of attribution
# entropy by the logarithm of the number of positions.
