# %% [markdown]
# # The claims, one by one
#
# This page lists every claim of the paper that this book tests, grouped by the paper's
# contribution it bears on and by figure, with the verdict of this build's runs and a link to
# the chapter that shows it; after them, the questions the book asks beyond the paper, judged
# by the same rule and counted apart. It trains nothing: it reads what the chapters stored under
# `results_dir`, after all of them have run, and its rows are the chapters' own verdict tables
# — each row is made by the same function there and here.
#
# **How a claim is judged** (see {doc}`definitions` for every quantity and the full rule).
# Runs of one seed share their initialisation and data order, so each comparison is made
# within seeds: a seed gives one paired effect — for a trend with the learning rate, its mean
# over the upper half of the compared LRs minus its mean over the lower half — and the
# effect's uncertainty is a {glue:text}`claims_level`% Student-t interval over seeds. Each
# variable declares a smallest effect of interest. A claim **agrees** when the interval
# excludes zero on the claimed side, **disagrees** when it excludes zero on the other side,
# finds **no effect** when it lies wholly inside the smallest effect of interest, and is
# **inconclusive** otherwise, with about how many seeds would decide it. It is **untestable**,
# with its reason, when its preconditions fail: too few seeds or compared LRs, a setting that
# does not learn its task, an undefined variable, or a variable pinned at a bound when the
# interval does not decide.

# %% tags=["parameters"]
results_dir = "results/quick"  # where the chapters stored their sweeps (one subfolder per sweep)

# %% tags=["hide-input"]
import os

from lrsc import claims, paper, plots, report, verdicts
from lrsc.chapter import Chapter
from lrsc.judges import Results
from lrsc.paths import project_root, resolve
from lrsc.results import title

page = Chapter("claims", results_dir)
page.glue("claims_level", int(100 * verdicts.LEVEL))
table = claims.with_q(claims.ledger(resolve(results_dir)))
csv = claims.write_csv(table, resolve(results_dir) / "claims.csv")
page.glue("claims_csv", f"{{download}}`the ledger as CSV <{os.path.relpath(csv, project_root() / 'book')}>`")
theirs, own = table[table.source == "paper"], table[table.source == "book"]
n = claims.counts(theirs)
page.glue("claims_n", len(theirs))
for verdict, count in n.items():
    page.glue(f"claims_n_{verdict.replace(' ', '_')}", count)
page.glue("claims_n_judged", len(theirs) - n["untestable"])
page.glue("claims_n_tested", int(theirs.p.notnull().sum()))
page.glue("claims_chance", f"{claims.chance_decisions(theirs):.0f}")
page.glue("claims_decisive", int(theirs.verdict.isin(verdicts.DECISIVE).sum()))
page.glue("claims_survive", int(theirs.survives.sum()))
page.glue("claims_fdr", f"{verdicts.FDR:.0%}")
sections = []
for k, words in paper.CONTRIBUTIONS.items():
    rows = table[table.contribution == k]
    sections.append(f"### Contribution {k}\n\n*The paper: {words}.* This build: {report.answer(claims.counts(rows))}."
                    + "".join(f"\n\n**{figure}**\n\n" + report.ledger_markdown(group, link=True, q=True)
                              for figure, group in rows.groupby("figure", sort=False)))
if len(own):
    sections.append(f"### {claims.BEYOND}\n\n*Questions this book asks; the paper states none of them.* This build: "
                    f"{report.answer(claims.counts(own))}.\n\n" + report.ledger_markdown(own, link=True, q=True))
page.markdown("claims_tables", "\n\n".join(sections))

# %% [markdown]
# Of the {glue:text}`claims_n` verdicts on the paper's claims, {glue:text}`claims_n_agrees` agree with the paper,
# {glue:text}`claims_n_disagrees` disagree, {glue:text}`claims_n_no_effect` find no effect,
# {glue:text}`claims_n_inconclusive` are inconclusive and {glue:text}`claims_n_untestable` are
# untestable with this build's runs, so {glue:text}`claims_n_judged` were judged.
#
# **How many decisions could be chance.** Of the judged verdicts, {glue:text}`claims_n_tested`
# test an effect with a p-value; if no effect were real, about {glue:text}`claims_chance` of
# them would still come out decisive at this level. Of the {glue:text}`claims_decisive`
# decisive verdicts (agrees or disagrees), {glue:text}`claims_survive` survive a
# {glue:text}`claims_fdr` false-discovery rate (their Benjamini-Hochberg q-value, column `q`,
# is at most that). Every verdict, with its numbers, p and q, is also {glue:text}`claims_csv`.
#
# ```{glue:md} claims_tables
# :format: myst
# ```

# %% [markdown]
# ## Where the claim holds
#
# A verdict is about one data setting. Two chapters also run a small sweep over data settings
# at two LRs of their main sweep, its largest compared LR and a smaller one that each chapter
# names (the parity chapter over the fraction of bias-conflicting samples `rho` and the number of
# core bits, the Fig. 4 chapter over `rho`). {numref}`claims-where` maps, per setting, the paired effect of the large LR over
# the small one on unbiased accuracy and on prunability, with its verdict (the same rule; these
# rows are the `settings` rows of the tables above, accuracy and prunability alike).

# %% tags=["hide-input"]
res = Results(resolve(results_dir))
stored = {title(ds): ds for claim in ("fig3.settings.acc", "fig4.settings.acc")
          for folder in claims.roles(res.root, claims.get(claim).chapter).get(claims.get(claim).role, [])
          if (ds := res.sweep(folder)) is not None}
maps = {name: report.settings_frame(ds) for name, ds in stored.items()}
page.figure("claims_where", plots.gain_heatmaps(maps) if maps else plots.nothing("no settings sweep stored"))
settings_rows = table[table.claim.str.contains(".settings.", regex=False)]
page.glue("claims_n_settings", int((settings_rows.variable == "test_acc").sum()))
for var, short in (("test_acc", "acc"), ("prunability", "prune")):
    page.glue(f"claims_{short}_answer", report.answer(claims.counts(settings_rows[settings_rows.variable == var])))

# %% [markdown]
# ```{glue:figure} claims_where
# :name: claims-where
# :alt: Heat maps of the large LR's paired effect on accuracy and prunability per data setting.
#
# Where the LR effect holds. One row per settings sweep; per data setting (cell), the paired
# effect of the largest over the smallest LR on unbiased test accuracy (left, percentage
# points) and on prunability (right), seed mean, written in the cell with its verdict's
# initial (a agrees, d disagrees, n no effect, i inconclusive, u untestable): blue where the
# large LR is ahead, red where it is behind, as the colour bars read. Hatched cells had a run
# that did not reach 100% training accuracy.
# ```
#
# Over the {glue:text}`claims_n_settings` settings, the large LR's gain in unbiased accuracy
# {glue:text}`claims_acc_answer`; its gain in prunability {glue:text}`claims_prune_answer`.
