# %% [markdown]
# # The claims, one by one
#
# This page lists every claim of the paper that the book tests, with the verdict of this
# build's own runs and a link to the chapter that shows it. It trains nothing: it reads the
# sweeps the chapters stored under `results_dir`, after all of them have run.
#
# **How a claim is judged.** Most claims say that a quantity rises (or falls) with the
# learning rate. Each is judged by the LR effect used throughout the book, over the LRs at
# which every seed reached 100% training accuracy and none diverged (the *compared* LRs):
# the mean over the upper half of the compared LRs minus the mean over the lower half
# (`effect`; accuracies in percentage points), the standard deviation over seeds of each
# seed's own difference (`seed sd`), and the Spearman correlation of the seed mean with LR
# (`rank`). A claim **agrees** when the effect goes the claimed way, exceeds its seed
# spread and the rank correlation has its sign; it **disagrees** when the same holds the
# other way; otherwise it is **inconclusive**: the effect is within the seed spread, or the
# rank correlation has the other sign. A claim about a sweep the profile did not
# run is marked *not run in this profile*.
#
# The Fig. 12 claim is a correlation over runs, not a direction with LR: it pools every
# converged run of the stored sweeps, each sweep's values centred, and takes the Spearman
# correlation of the peak share of the loss on bias-conflicting samples with unbiased test
# accuracy. It agrees when that correlation is positive and at least
# {glue:text}`claims_min_rho` in size over at least {glue:text}`claims_min_runs` runs,
# disagrees when it is as large but negative, and is inconclusive otherwise.

# %% tags=["parameters"]
results_dir = "results/quick"  # where the chapters stored their sweeps (one subfolder per sweep)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown
from myst_nb import glue

from lrsc import claims, plots
from lrsc.book import chapters, project_root, resolve

table = claims.ledger(resolve(results_dir))
counts = table.verdict.value_counts()
glue("claims_n", len(table), display=False)
for verdict in claims.VERDICTS:
    glue(f"claims_n_{verdict.split()[0]}", int(counts.get(verdict, 0)), display=False)
glue("claims_n_run", int((table.verdict != claims.NOT_RUN).sum()), display=False)
glue("claims_min_rho", claims.MIN_RHO, display=False)
glue("claims_min_runs", claims.MIN_RUNS, display=False)


def effect_text(row) -> str:
    """The numbers behind a verdict, as one table cell."""
    if row.verdict == claims.NOT_RUN:
        return "–"
    if row.kind == "correlation":
        return f"Spearman {row.effect:+.2f} over {row.runs} runs" if np.isfinite(row.effect) else f"{row.runs} runs"
    if not np.isfinite(row.effect):
        return f"{row.LRs} LR(s) compared"
    unit = " points" if row.variable in claims.SCALE else ""
    sd = f" ± {row['seed sd']:.2g}" if np.isfinite(row["seed sd"]) else ""
    return f"{row.effect:+.3g}{unit}{sd}, rank {row['rank']:+.2f} ({row.LRs} LRs × {row.seeds} seeds)"


mark = {"agrees": "**agrees**", "disagrees": "**disagrees**", "inconclusive": "inconclusive", claims.NOT_RUN: "*not run*"}
in_book = {c.split("/")[-1] for c in chapters(project_root())}  # link only to pages this book has
lines = ["| paper | claim | verdict | effect ± seed sd, rank | shown in |", "|---|---|---|---|---|"]
for _, row in table.iterrows():
    lines.append(f"| {row.figure} | {row.statement} | {mark[row.verdict]} | {effect_text(row)} "
                 f"| {f'{{doc}}`{row.chapter}`' if row.chapter in in_book else row.chapter} |")
glue("claims_table", Markdown("\n".join(lines)), display=False)

# %% [markdown]
# Of the {glue:text}`claims_n` claims, {glue:text}`claims_n_run` read sweeps this build
# ran. Of those, {glue:text}`claims_n_agrees` agree with the paper,
# {glue:text}`claims_n_disagrees` disagree and {glue:text}`claims_n_inconclusive` are
# inconclusive; {glue:text}`claims_n_not` need sweeps this profile does not run.
#
# ```{glue:md} claims_table
# :format: myst
# ```

# %% [markdown]
# ## Where the claim fails
#
# A verdict is about one data setting. Two chapters also run a small sweep over the data
# setting at the smallest and the largest LR of their main sweep: the parity chapter over
# the fraction of bias-conflicting samples `rho` and the number of core bits, the Fig. 4
# chapter over `rho` on Colored MNIST. {numref}`claims-where` maps, per setting, the gain
# from the small to the large LR in unbiased accuracy and in prunability.

# %% tags=["hide-input"]
gains = claims.settings_gains(resolve(results_dir))
names = {"parity_settings": "parity (FCN)", "fig4_settings": "Colored MNIST (FCN)"}
gains = {names.get(k, k): v for k, v in gains.items()}
if gains:
    fig = plots.gain_heatmaps(gains)
else:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.text(0.5, 0.5, "no settings sweep stored", ha="center", va="center")
    ax.axis("off")
glue("claims_where", fig, display=False)
plt.close(fig)
cells = [t for t in gains.values()]
acc_up = sum(int((t["test_acc gain"] > 0).sum()) for t in cells)
prune_up = sum(int((t["prunability gain"] > 0).sum()) for t in cells)
both_up = sum(int(((t["test_acc gain"] > 0) & (t["prunability gain"] > 0)).sum()) for t in cells)
beyond = sum(int((t["test_acc gain"] > t["test_acc seed sd"]).sum()) for t in cells)
glue("claims_n_settings", sum(len(t) for t in cells), display=False)
glue("claims_n_settings_sweeps", len(cells), display=False)
glue("claims_n_acc_up", acc_up, display=False)
glue("claims_n_prune_up", prune_up, display=False)
glue("claims_n_both_up", both_up, display=False)
glue("claims_n_acc_beyond", beyond, display=False)

# %% [markdown]
# ```{glue:figure} claims_where
# :name: claims-where
#
# Where the LR effect holds. One row per settings sweep; per data setting (cell), the
# high-LR minus low-LR value of unbiased test accuracy (left, percentage points) and of
# prunability (right), seed means, written in the cell: blue where the large LR is ahead,
# red where it is behind (colour scale centred on zero per panel). Hatched cells had a run
# that did not reach 100% training accuracy.
# ```
#
# Over the {glue:text}`claims_n_settings` settings of the {glue:text}`claims_n_settings_sweeps`
# settings sweep(s) stored, the large LR reaches higher unbiased accuracy in
# {glue:text}`claims_n_acc_up` ({glue:text}`claims_n_acc_beyond` by more than the seed
# spread), higher prunability in {glue:text}`claims_n_prune_up`, and both in
# {glue:text}`claims_n_both_up`. These sweeps compare only two LRs with few seeds, so they
# locate where the effect is large rather than judge it; the verdicts in the table above
# come from the main sweeps over the whole LR range.
