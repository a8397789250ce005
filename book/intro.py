# %% [markdown]
# # lrsc
#
# **The paper's claim.** *Large Learning Rates Simultaneously Achieve Robustness to Spurious
# Correlations and Compressibility* (Barsbey, Prieto, Zafeiriou, Birdal; arXiv 2507.17748)
# claims that training with a large constant learning rate (LR) makes a network rely less
# on a spurious feature — so it does better on a test set where that feature is no longer
# predictive — and at the same time makes the network and its representations more
# compressible. **lrsc** reproduces its experiments, tests each of its claims with the runs
# of this book, and goes beyond it where a claim needs a control.
#
# **This build's verdicts.** Of the {glue:text}`intro_n_rows` claims this build could judge,
# {glue:text}`intro_n_agrees` agree with the paper, {glue:text}`intro_n_disagrees` disagree,
# {glue:text}`intro_n_inconclusive` are inconclusive (the data cannot tell) and
# {glue:text}`intro_n_untestable` are untestable with these runs (too few seeds or compared
# LRs, or a variable stuck at its ceiling). For the two headline claims over the main LR
# sweeps: unbiased accuracy rises with the LR in {glue:text}`intro_acc_agrees` of
# {glue:text}`intro_acc_n` sweeps ({glue:text}`intro_acc_disagrees` disagree,
# {glue:text}`intro_acc_open` inconclusive or untestable), and prunability in
# {glue:text}`intro_prune_agrees` of {glue:text}`intro_prune_n`
# ({glue:text}`intro_prune_disagrees` disagree, {glue:text}`intro_prune_open` inconclusive or
# untestable). {doc}`claims` lists every claim; {doc}`definitions` says how a verdict is reached.

# %% tags=["parameters"]
results_dir = "results/quick"  # the folder the chapters stored their sweeps in (one subfolder per sweep)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from lrsc import claims, plots
from lrsc.book import resolve

table = claims.ledger(resolve(results_dir))
glue("intro_n_rows", len(table), display=False)
for verdict, n in claims.counts(table).items():
    glue(f"intro_n_{verdict}", n, display=False)
main = claims.headline(table)
for short, var in (("acc", "test_acc"), ("prune", "prunability")):
    rows = main[main.variable == var]
    n = claims.counts(rows)
    glue(f"intro_{short}_n", len(rows), display=False)
    glue(f"intro_{short}_agrees", n["agrees"], display=False)
    glue(f"intro_{short}_disagrees", n["disagrees"], display=False)
    glue(f"intro_{short}_open", n["inconclusive"] + n["untestable"], display=False)
glue("intro_table", Markdown(claims.headline_markdown(main)), display=False)
for var, name in (("test_acc", "acc"), ("prunability", "prune")):
    fig = plots.verdicts(main[main.variable == var], title=f"{plots.label(None, var)}: upper minus lower half of "
                         f"the compared LRs")
    glue(f"intro_{name}_figure", fig, display=False)
    plt.close(fig)

# %% [markdown]
# ```{glue:md} intro_table
# :format: myst
# ```
#
# The table gives, for each main LR sweep of this build (one dataset and model each), the
# verdict on "unbiased accuracy rises with the LR" and on "prunability rises with the LR",
# each with its effect: the mean over seeds of each seed's upper-half minus lower-half
# difference over the compared LRs, and its 90% interval over seeds.
# {numref}`intro-acc` and {numref}`intro-prune` draw the same effects.
#
# ```{glue:figure} intro_acc_figure
# :name: intro-acc
# :alt: Unbiased accuracy effect of the LR per sweep, with 90% intervals, coloured by verdict.
#
# The LR's effect on unbiased test accuracy (percentage points) in each main sweep: dot, the
# mean paired effect; bar, its 90% interval over seeds; colour, the verdict (blue agrees,
# red disagrees, grey inconclusive, light grey and hollow untestable).
# ```
#
# ```{glue:figure} intro_prune_figure
# :name: intro-prune
# :alt: Prunability effect of the LR per sweep, with 90% intervals, coloured by verdict.
#
# The LR's effect on prunability in each main sweep, drawn as {numref}`intro-acc`.
# ```
#
# ## How to read this book
#
# Every chapter is a notebook that runs its own sweeps through the `lrsc` package and draws
# its figures and tables from those runs; no number in a chapter is typed in, and the
# paper's numbers are quoted beside ours as the paper's. Each chapter ends with a table of
# its claims and their verdicts, all made by one function; {doc}`claims` gathers them. The
# book is built with the *quick* profile (small grids that run on a laptop CPU in minutes)
# unless its parameters cells say otherwise; `params/full/` holds the paper's protocol.
#
# Code that only computes or arranges results is folded: click a cell to show it. Each
# chapter's parameters cell shows the values it ran with. Re-run a chapter with other
# parameters with `lrsc book --only <chapter> --set key=value` (see the README), or call the
# same functions from your own notebook:
#
# ```python
# from lrsc import plots, report, verdicts
# from lrsc.sweep import run_sweep
# ds = run_sweep("params/quick/parity.yaml", "results/mine/parity", {"grid.lr": [0.1, 1.0]})
# plots.metrics_vs_lr(ds)
# report.summary_table(ds)
# verdicts.trend(ds, "test_acc").text()
# ```
#
# Every run is stored once in a run store shared by the chapters, named by the hash of its
# settings; interrupt a build and run it again, and only the unfinished runs are trained.
