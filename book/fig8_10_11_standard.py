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
from lrsc import attribution, crosscheck, mechanism, plots, report, sweepdir
from lrsc.chapter import Chapter
from lrsc.results import config
from lrsc.paths import resolve

MASKS = {"grabcut": "GrabCut masks initialised on the central box (no DeepLabV3 weights were given)",
         "deeplab": "DeepLabV3 segmentation masks", "none": "no masks (background share not computed)"}
ch = Chapter("fig8_10_11_standard", results_dir, overrides, progress)
results = ch.sweeps("sweeps", sweep_params)
maps_folder = ch.folder(resolve(maps_sweep).stem)
cfg = config(ch.sweep("sweeps", maps_sweep))  # one of sweep_params: read back from the run store
test, models, (lo_lr, hi_lr) = crosscheck.end_models(maps_folder)
comparison = crosscheck.methods_table(models, test, cfg["metrics"])  # IG and DeepLift at both ends, per seed
sweepdir.save_derived(maps_folder, "attribution_methods", comparison)
held_out = cfg["dataset_params"].get("test_from_train", 0)
ch.glue("std_data", f"{cfg['dataset']} with {cfg['model']} (width {cfg['model_params'].get('width', 1):g}), "
        f"{cfg['dataset_params'].get('n_train') or 'all'} training images")
ch.glue("std_test", f"{held_out} training images held out with each seed (so each seed's test images are its own)"
        if held_out else "the official test batch")
ch.glue("std_masks", MASKS[cfg["metrics"]["bg_mask"]])
ch.markdown("std_protocols", "\n".join(f"- **{name}**: {report.lr_protocol(ds)}" for name, ds in results.items()))
report.settings_table(results)

# %% [markdown]
# The rendered run trains {glue:text}`std_data`. Its variables (accuracy, attribution entropy,
# background share) are measured on {glue:text}`std_test`; the background share uses
# {glue:text}`std_masks`.
#
# ```{glue:md} std_protocols
# :format: myst
# ```

# %% tags=["hide-input"]
ch.figure("std_grid", plots.metrics_grid(results, ("test_acc", "attr_entropy", "bg_share")))
for claim, short in (("fig8.acc", "acc"), ("fig8.entropy", "entropy"), ("fig8.bg", "bg")):
    ch.glue(f"std_{short}", "; ".join(f"{r.on}: {ch.says(claim, r.folder)}"
                                      for _, r in ch.table[ch.table.claim == claim].iterrows()) or "not judged")

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
right_low, right_high = crosscheck.correct(models, test, (lo_lr, hi_lr))
chosen = attribution.high_lr_wins(right_low, right_high, high_at_least, low_at_most)
reverse = attribution.high_lr_wins(right_high, right_low, high_at_least, low_at_most)  # the control: small LR wins
ch.glue("std_n_chosen", len(chosen))
ch.glue("std_n_reverse", len(reverse))
ch.glue("std_n_test", len(test))
ch.glue("std_acc_lo", f"{100 * right_low.float().mean():.1f}%")
ch.glue("std_acc_hi", f"{100 * right_high.float().mean():.1f}%")
ch.glue("std_lo", f"{lo_lr:g}")
ch.glue("std_hi", f"{hi_lr:g}")
ch.glue("std_n_seeds", len({seed for _, seed in models}))
pick = chosen[:n_maps]
first_seed = min(seed for _, seed in models)
maps = {f"LR {lr:g}": attribution.integrated_gradients(models[(lr, first_seed)], test.x[pick], test.y[pick],
                                                        n_steps=cfg["metrics"]["ig_steps"]) for lr in (lo_lr, hi_lr)}
ch.figure("std_maps", plots.attribution_maps(test.x[pick], maps))

# %% [markdown]
# For this selection every model is judged on the same {glue:text}`std_n_test` official test
# images, which no seed trained on (unlike the held-out images above, which differ by seed). The
# models at LR {glue:text}`std_lo` get {glue:text}`std_acc_lo` of them right, those at LR
# {glue:text}`std_hi` {glue:text}`std_acc_hi`. Of the images, {glue:text}`std_n_chosen` are
# classified correctly by at least the stated share of the {glue:text}`std_n_seeds` models at
# LR {glue:text}`std_hi` and by at most the stated share of those at LR {glue:text}`std_lo`
# (the shares are parameters of this page; the paper's could not be read from our copy of it).
# The control, the same rule with the two LRs swapped, finds {glue:text}`std_n_reverse` images
# that the small-LR models win: only a count well above the control's says that large-LR
# models get right what small-LR ones miss, rather than that the models differ by chance.
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
# official test images (seed means below; the verdicts pair the seeds). For a ReLU network
# without bias terms both methods, with a zero baseline, are in theory proportional to gradient
# times input, so their shares and entropies coincide; here the two methods' values differ by at
# most {glue:text}`std_methods_gap` (the Riemann sum of Integrated Gradients and captum's
# DeepLift rules are approximations). The check has force for models with biases and BatchNorm,
# such as the full profile's ResNet18.

# %% tags=["hide-input"]
gap = (comparison.sel(attribution="IG") - comparison.sel(attribution="DeepLift"))
ch.glue("std_methods_gap", f"{float(max(abs(gap[v]).max() for v in gap.data_vars)):.2g}")
mechanism.readable(comparison.mean("seed").to_dataframe().unstack("end").round(3))

# %% [markdown]
# ## This chapter's verdicts

# %% tags=["hide-input"]
ch.verdicts("std_claims")

# %% [markdown]
# ```{glue:md} std_claims
# :format: myst
# ```
