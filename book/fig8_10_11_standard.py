# %% [markdown]
# # Fig. 8, 10, 11 — standard classification: large-LR models look at the object
#
# **Claim (paper, Fig. 8, 10, 11).** The large-LR effect is not limited to datasets built with
# a spurious feature. In standard classification (CIFAR-10, CIFAR-100, ImageNet-1k) the
# background of an image acts as one: models trained at a large LR reach a higher test
# accuracy, and their Integrated Gradients maps are more concentrated (lower **attribution
# entropy**) and put a smaller share of their mass on the background (**background share**).
# On the test images that most large-LR models classify correctly and most small-LR models do
# not, the maps show the difference (Fig. 8); DeepLift gives the same picture (Fig. 14 of the
# supplement).
#
# **Definitions** ({doc}`definitions`). Attribution entropy: the entropy of the normalised |IG|
# map over log(#positions), in [0, 1]. Background share: the share of |IG|, summed over the
# colour channels, on pixels that a mask marks as background, averaged over the
# `metrics.n_attr` attributed test images. The paper's masks come from a DeepLabV3
# segmentation model; lrsc uses DeepLabV3 when its weights are in a local file
# (`metrics.bg_mask: deeplab`) and otherwise OpenCV's GrabCut initialised on the central box
# (`grabcut`), a non-learned stand-in. Which one this run used is read from its stored config.

# %% tags=["parameters"]
sweep_params = ["params/quick/fig8_cifar10_cnn.yaml"]  # one LR sweep per dataset x model
maps_sweep = "params/quick/fig8_cifar10_cnn.yaml"  # the sweep whose lowest and highest LR give the Fig. 8 maps
high_at_least = 0.66  # a Fig. 8 sample: at least this share of the high-LR models get it right ...
low_at_most = 0.34  # ... and at most this share of the low-LR models
n_maps = 4  # samples shown
overrides = {}  # {dotted key: value} applied to every sweep
results_dir = "results/quick"  # where the sweeps store their runs and results.nc
progress = False  # progress bars (off in the rendered book)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from lrsc import attribution, claims, crosscheck, plots, report, sweepdir
from lrsc.book import resolve
from lrsc.sweep import run_sweep, run_sweeps

MASKS = {"grabcut": "GrabCut masks initialised on the central box (no DeepLabV3 weights were given)",
         "deeplab": "DeepLabV3 segmentation masks", "none": "no masks (background share not computed)"}
out = resolve(results_dir)
results = run_sweeps(sweep_params, out, overrides, progress)
maps_folder = out / resolve(maps_sweep).stem
cfg = report.config(run_sweep(resolve(maps_sweep), maps_folder, overrides, progress=progress))
test, models, (lo_lr, hi_lr) = crosscheck.end_models(maps_folder)
comparison = crosscheck.methods_table(models, test, cfg["metrics"])  # IG and DeepLift at both ends, per seed
sweepdir.save_derived(maps_folder, "attribution_methods", comparison)
claims.record(out, "fig8_10_11_standard", {"sweeps": sweep_params})
table = claims.ledger(out, chapter="fig8_10_11_standard")
held_out = cfg["dataset_params"].get("test_from_train", 0)
glue("std_data", f"{cfg['dataset']} with {cfg['model']} (width {cfg['model_params'].get('width', 1):g}), "
     f"{cfg['dataset_params'].get('n_train') or 'all'} training images", display=False)
glue("std_test", f"{held_out} training images held out with the seed" if held_out else "the official test batch",
     display=False)
glue("std_masks", MASKS[cfg["metrics"]["bg_mask"]], display=False)
report.settings_table(results)

# %% [markdown]
# The rendered run trains {glue:text}`std_data`; its test set is {glue:text}`std_test`, and the
# background share uses {glue:text}`std_masks`.

# %% tags=["hide-input"]
fig = plots.metrics_grid(results, ("test_acc", "attr_entropy", "bg_share"))
glue("std_grid", fig, display=False)
plt.close(fig)
for var, short in (("test_acc", "acc"), ("attr_entropy", "entropy"), ("bg_share", "bg")):
    glue(f"std_{short}", claims.says_each(table, var), display=False)

# %% [markdown]
# ```{glue:figure} std_grid
# :name: std-grid
# :alt: Test accuracy, attribution entropy and background share against the LR, one row per sweep.
#
# Test accuracy, attribution entropy and background share of |IG| against the learning rate,
# one row per dataset and model. Lines are seed means, bands span the seeds; filled dots mark
# the compared LRs.
# ```
#
# **What our run finds.** Test accuracy {glue:text}`std_acc`. Attribution entropy
# {glue:text}`std_entropy`. Background share {glue:text}`std_bg`. The paper finds accuracy
# rising and both attribution measures falling with the LR for ResNet18 on CIFAR-10,
# CIFAR-100 and ImageNet.
#
# ## Fig. 8: the samples large-LR models get right

# %% tags=["hide-input"]
chosen = attribution.high_lr_wins(*crosscheck.correct(models, test, (lo_lr, hi_lr)), high_at_least, low_at_most)
glue("std_n_chosen", len(chosen), display=False)
glue("std_n_test", len(test), display=False)
glue("std_lo", f"{lo_lr:g}", display=False)
glue("std_hi", f"{hi_lr:g}", display=False)
glue("std_n_seeds", len({seed for _, seed in models}), display=False)
pick = chosen[:n_maps]
first_seed = min(seed for _, seed in models)
maps = {f"LR {lr:g}": attribution.integrated_gradients(models[(lr, first_seed)], test.x[pick], test.y[pick],
                                                        n_steps=cfg["metrics"]["ig_steps"]) for lr in (lo_lr, hi_lr)}
fig = plots.attribution_maps(test.x[pick], maps)
glue("std_maps", fig, display=False)
plt.close(fig)

# %% [markdown]
# Every model is judged on the same {glue:text}`std_n_test` official test images, which no
# seed trained on. Of them, {glue:text}`std_n_chosen` are classified correctly by at least the
# stated share of the {glue:text}`std_n_seeds` models at LR {glue:text}`std_hi` and by at most
# the stated share of those at LR {glue:text}`std_lo` (the shares are parameters of this page;
# the paper's could not be read from our copy of it).
#
# ```{glue:figure} std_maps
# :name: std-maps
# :alt: Test images large-LR models get right, with |IG| maps of the smallest- and largest-LR models.
#
# Fig. 8: test images that most large-LR models classify correctly and most small-LR models do
# not (left), with the |Integrated Gradients| map of the first seed's model at the smallest and
# at the largest compared LR (brighter: more attribution).
# ```
#
# ## DeepLift as a cross-check
#
# Per seed, the attribution entropy and background share of the models at the smallest and
# the largest compared LR, by Integrated Gradients and by DeepLift, on the first `n_attr`
# official test images (seed means below; the verdicts pair the seeds). For a network without
# bias terms (the quick profile's CNN) both methods, with a zero baseline, reduce to gradient
# times input, so they agree exactly; the check has force for models with biases and
# BatchNorm, such as the full profile's ResNet18.

# %% tags=["hide-input"]
comparison.mean("seed").to_dataframe().unstack("end").round(3)

# %% [markdown]
# ## This chapter's verdicts

# %% tags=["hide-input"]
glue("std_claims", Markdown(claims.markdown(table)), display=False)

# %% [markdown]
# ```{glue:md} std_claims
# :format: myst
# ```
