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
# **This build's verdicts.** The book turns the paper's claims into
# {glue:text}`intro_n_rows` verdicts on this build's runs, each by one rule (see
# {doc}`definitions`): {glue:text}`intro_n_agrees` agree with the paper,
# {glue:text}`intro_n_disagrees` disagree, {glue:text}`intro_n_no_effect` find no effect (the
# claimed effect is absent here, an interval inside the smallest effect of interest),
# {glue:text}`intro_n_inconclusive` are inconclusive (more seeds would decide them; each says
# how many) and {glue:text}`intro_n_untestable` could not be judged, each with its reason
# ({glue:text}`intro_untestable_reasons`). If no effect were real, about
# {glue:text}`intro_chance` of the tested verdicts would still come out decisive at the 90%
# level; {glue:text}`intro_survive` of the {glue:text}`intro_decisive` decisive ones survive a
# {glue:text}`intro_fdr` false-discovery rate. {doc}`claims` lists every verdict. Beyond the
# paper, {doc}`baselines` asks whether a large LR is the strong baseline the paper's discussion
# says it is, against robust-training methods; its verdicts are counted on its page, not here.
#
# ## The paper's five contributions, answered
#
# The paper lists five contributions. For each, in its words, what this build's verdicts say:
#
# ```{glue:md} intro_contributions
# :format: myst
# ```
#
# ## The headline claims
#
# ```{glue:md} intro_table
# :format: myst
# ```
#
# The table gives, for each main LR sweep of this build (one dataset and model each, LRs from a
# small one to the edge of stability), the verdict on "unbiased accuracy rises with the LR", on
# "prunability rises with the LR", and on both together, the paper's "simultaneously"; each
# with its effect: the mean over seeds of each seed's upper-half minus lower-half difference
# over the compared LRs, and its 90% interval. Over these sweeps, unbiased accuracy
# {glue:text}`intro_acc_answer`; prunability {glue:text}`intro_prune_answer`; both together
# {glue:text}`intro_both_answer`. {numref}`intro-acc` and {numref}`intro-prune` draw the effects.

# %% tags=["parameters"]
results_dir = "results/quick"  # the folder the chapters stored their sweeps in (one subfolder per sweep)

# %% tags=["hide-input"]
from lrsc import claims, plots, report, verdicts
from lrsc.chapter import Chapter
from lrsc.paths import resolve

page = Chapter("intro", results_dir)
table = claims.with_q(claims.ledger(resolve(results_dir)))
table = table[table.source == "paper"]  # the book's own questions are answered on their chapters' pages
n = claims.counts(table)
page.glue("intro_n_rows", len(table))
for verdict, count in n.items():
    page.glue(f"intro_n_{verdict.replace(' ', '_')}", count)
reasons = table[table.verdict == "untestable"].reason.map(report.reason_kind).value_counts()
page.glue("intro_untestable_reasons", "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "none")
page.glue("intro_chance", f"{claims.chance_decisions(table):.0f}")
page.glue("intro_decisive", int(table.verdict.isin(verdicts.DECISIVE).sum()))
page.glue("intro_survive", int(table.survives.sum()))
page.glue("intro_fdr", f"{verdicts.FDR:.0%}")
page.markdown("intro_contributions", report.contributions_markdown(table))
main = table[table.claim.isin(claims.HEADLINE)]
page.markdown("intro_table", report.headline_markdown(table))
for suffix, short in ((".acc", "acc"), (".prune", "prune"), (".both", "both")):
    page.glue(f"intro_{short}_answer", report.answer(claims.counts(main[main.claim.str.endswith(suffix)])))
for suffix, var, name in ((".acc", "test_acc", "acc"), (".prune", "prunability", "prune")):
    page.figure(f"intro_{name}_figure", plots.verdicts(main[main.claim.str.endswith(suffix)],
                                                       title=f"{plots.label(None, var)}: upper minus lower half of "
                                                             f"the compared LRs"))

# %% [markdown]
# ```{glue:figure} intro_acc_figure
# :name: intro-acc
# :alt: Unbiased accuracy effect of the LR per sweep, with 90% intervals, coloured by verdict.
#
# The LR's effect on unbiased test accuracy (percentage points) in each main sweep: dot, the
# mean paired effect; bar, its 90% interval over seeds; colour, the verdict (blue agrees,
# red disagrees, olive no effect, grey inconclusive, light grey and hollow untestable).
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
