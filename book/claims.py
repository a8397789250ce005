# %% [markdown]
# # The claims, one by one
#
# This page lists every claim of the paper that this build could test, with the verdict of
# its own runs and a link to the chapter that shows it. It trains nothing: it reads what the
# chapters stored under `results_dir`, after all of them have run, and it is the union of
# the chapters' own verdict tables — each row is made by the same function there and here.
#
# **How a claim is judged** (see {doc}`definitions` for every quantity). Runs of one seed
# share their initialisation and data order, so each comparison is made within seeds: a seed
# gives one paired effect — for a trend with the learning rate, its mean over the upper half
# of the compared LRs minus its mean over the lower half (the LRs at which every seed reached
# its stopping criterion and none diverged) — and the effect's uncertainty is a
# {glue:text}`claims_level`% Student-t interval over seeds. A claim **agrees** when the
# interval lies on the claimed side of zero, **disagrees** when it lies on the other side,
# and is **inconclusive** when it contains zero: the data cannot tell. It is **untestable**,
# with the reason given, when fewer than {glue:text}`claims_min_seeds` seeds or fewer than two
# LRs are compared, or when the variable sits within {glue:text}`claims_margin` of its range
# of its ceiling (or floor) at every compared LR (or both compared settings), where it has no
# room to move the claimed way. A correlation over runs (Fig. 12) is judged by a permutation test of the same level
# over at least {glue:text}`claims_min_runs` runs, and a claim on two variables ("gets both")
# by the verdicts of both.

# %% tags=["parameters"]
results_dir = "results/quick"  # where the chapters stored their sweeps (one subfolder per sweep)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from lrsc import claims, plots, report, verdicts
from lrsc.book import chapters, project_root, resolve

glue("claims_level", int(100 * verdicts.LEVEL), display=False)
glue("claims_min_seeds", verdicts.MIN_SEEDS, display=False)
glue("claims_margin", f"{verdicts.CEILING_MARGIN:.0%}", display=False)
glue("claims_min_runs", verdicts.MIN_RUNS, display=False)
table = claims.ledger(resolve(results_dir))
glue("claims_n", len(table), display=False)
for verdict, n in claims.counts(table).items():
    glue(f"claims_n_{verdict}", n, display=False)
in_book = {c.split("/")[-1] for c in chapters(project_root())}
glue("claims_table", Markdown(claims.markdown(table[table.chapter.isin(in_book)], link=True)), display=False)

# %% [markdown]
# Of the {glue:text}`claims_n` claims judged, {glue:text}`claims_n_agrees` agree with the
# paper, {glue:text}`claims_n_disagrees` disagree, {glue:text}`claims_n_inconclusive` are
# inconclusive and {glue:text}`claims_n_untestable` are untestable with this build's runs.
#
# ```{glue:md} claims_table
# :format: myst
# ```

# %% [markdown]
# ## Where the claim holds
#
# A verdict is about one data setting. Two chapters also run a small sweep over data
# settings at the smallest and the largest LR of their main sweep: the parity chapter over
# the fraction of bias-conflicting samples `rho` and the number of core bits, the Fig. 4
# chapter over `rho` on Colored MNIST. {numref}`claims-where` maps, per setting, the paired
# effect of the large LR over the small one on unbiased accuracy and on prunability, with its
# verdict (the same rule; these rows are in the table above).

# %% tags=["hide-input"]
folders = {"parity_settings": "parity", "fig4_settings": "Colored MNIST"}
stored = {name: ds for folder, name in folders.items()
          if (ds := claims.Results(resolve(results_dir)).sweep(folder)) is not None}
maps = {name: report.settings_frame(ds) for name, ds in stored.items()}
if maps:
    fig = plots.gain_heatmaps(maps)
else:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.text(0.5, 0.5, "no settings sweep stored", ha="center", va="center")
    ax.axis("off")
glue("claims_where", fig, display=False)
plt.close(fig)
cells = [row for t in maps.values() for _, row in t.iterrows()]
glue("claims_n_settings", len(cells), display=False)
for var, short in (("test_acc", "acc"), ("prunability", "prune")):
    for verdict in verdicts.VERDICTS:
        glue(f"claims_{short}_{verdict}", sum(row[(var, "verdict")] == verdict for row in cells), display=False)

# %% [markdown]
# ```{glue:figure} claims_where
# :name: claims-where
# :alt: Heat maps of the large LR's paired effect on accuracy and prunability per data setting.
#
# Where the LR effect holds. One row per settings sweep; per data setting (cell), the paired
# effect of the largest over the smallest LR on unbiased test accuracy (left, percentage
# points) and on prunability (right), seed mean, written in the cell with its verdict's
# initial (a agrees, d disagrees, i inconclusive, u untestable): blue where the large LR is
# ahead, red where it is behind. Hatched cells had a run that did not reach 100% training
# accuracy.
# ```
#
# Over the {glue:text}`claims_n_settings` settings, the large LR's gain in unbiased accuracy
# agrees with the paper in {glue:text}`claims_acc_agrees`, disagrees in
# {glue:text}`claims_acc_disagrees`, is inconclusive in {glue:text}`claims_acc_inconclusive`
# and untestable in {glue:text}`claims_acc_untestable`; its gain in prunability agrees in
# {glue:text}`claims_prune_agrees`, disagrees in {glue:text}`claims_prune_disagrees`, is
# inconclusive in {glue:text}`claims_prune_inconclusive` and untestable in
# {glue:text}`claims_prune_untestable`.
